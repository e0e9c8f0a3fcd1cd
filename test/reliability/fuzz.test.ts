/**
 * Seeded fuzzing of the file readers: valid checkpoints, IDX files (raw and gzipped), CIFAR-10
 * batches and PNG / JPEG images of an image folder, mutated the ways hostile or damaged files are
 * (bit flips, truncation, header-length and JSON edits, duplicated keys, dtype/shape/offset edits,
 * forged dims, chunk and segment lengths, CRCs, trailing garbage). Every case must end in a
 * correct load or one of the package's typed errors — never another exception, a crash or a hang —
 * and the process must not grow by more than the files could hold. Thousands of cases, seconds.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CMAE, CmaeError, FormatError, IOError } from '../../src/index';
import { encodeIdx, loadIdx, readIdx } from '../../src/data/idx';
import { parseCifar10Batch } from '../../src/data/cifar';
import { loadImageFolder, MAX_IMAGE_PIXELS, type ImageFolderDataset } from '../../src/data/image-folder';
import { readSafetensors } from '../../src/io/safetensors';
import { makeRng } from '../helpers/check';

const dir = mkdtempSync(path.join(tmpdir(), 'cmae-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Rng = () => number;
const int = (rng: Rng, n: number) => Math.floor(rng() * n);

// CI runs the cases below as written. Offline, longer runs draw other cases: CMAE_FUZZ_SCALE=k runs
// k times as many, CMAE_FUZZ_SEED=s shifts every seed, and CMAE_FUZZ_FINDINGS=DIR keeps the input
// of any case that fails (README, "Fuzzing").
const scale = Math.max(1, Math.floor(Number(process.env.CMAE_FUZZ_SCALE ?? 1)));
const seedShift = Math.floor(Number(process.env.CMAE_FUZZ_SEED ?? 0));
const timeout = 120_000 * scale;

/** Runs `load` on each mutated file; returns how many cases ran, loaded and were typed errors. */
async function fuzz(
  cases: number,
  seed: number,
  base: Uint8Array,
  mutate: (b: Uint8Array, rng: Rng) => Uint8Array,
  load: (file: string) => Promise<unknown>,
  file = path.join(dir, `case-${seed}`),
) {
  const rng = makeRng(seed + seedShift);
  const outcome = { cases: cases * scale, loaded: 0, typed: 0 };
  const rssBefore = process.memoryUsage.rss();
  let rssPeak = rssBefore;
  for (let c = 0; c < outcome.cases; c++) {
    const bytes = mutate(base, rng);
    writeFileSync(file, bytes);
    try {
      await load(file);
      outcome.loaded++;
    } catch (e) {
      if (!(e instanceof CmaeError)) {
        const name = `seed-${seed + seedShift}-case-${c}${path.extname(file)}`;
        if (process.env.CMAE_FUZZ_FINDINGS) writeFileSync(path.join(process.env.CMAE_FUZZ_FINDINGS, name), bytes);
        throw new Error(`${name}: ${(e as Error).constructor.name}: ${(e as Error).message}`);
      }
      outcome.typed++;
    }
    rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
  }
  // Nothing allocated beyond what such small files could hold (GC noise aside).
  expect(rssPeak - rssBefore).toBeLessThan(256 * 2 ** 20);
  return outcome;
}

function flipBits(b: Uint8Array, rng: Rng, region: number): Uint8Array {
  const out = Uint8Array.from(b);
  for (let k = 1 + int(rng, 8); k > 0; k--) {
    const i = int(rng, Math.min(region, out.length));
    out[i] ^= 1 << int(rng, 8);
  }
  return out;
}

describe('fuzzed checkpoints', () => {
  let valid: Uint8Array;
  let headerLength: number;
  beforeAll(async () => {
    const model = await CMAE.create({ preset: 'micro', seed: 3 });
    const file = path.join(dir, 'valid.safetensors');
    await model.save(file);
    model.dispose();
    valid = new Uint8Array(readFileSync(file));
    headerLength = Number(new DataView(valid.buffer).getBigUint64(0, true));
  });

  /** Edits of the JSON header, re-encoded with a consistent length prefix (so the JSON is what is tested). */
  function editHeader(b: Uint8Array, rng: Rng): Uint8Array {
    const json = new TextDecoder().decode(b.subarray(8, 8 + headerLength));
    const header = JSON.parse(json) as Record<string, { dtype: string; shape: number[]; data_offsets: number[] } | Record<string, string>>;
    const names = Object.keys(header).filter((n) => n !== '__metadata__');
    const name = names[int(rng, names.length)];
    const entry = header[name] as { dtype: string; shape: number[]; data_offsets: number[] };
    const big = [-1, 0, 1, 2 ** 31, 2 ** 32 + 3, 2 ** 53, 1e308, 0.5][int(rng, 8)];
    let text: string;
    switch (int(rng, 7)) {
      case 0: entry.dtype = ['F16', 'I64', 'U8', 'F64', 'X9', ''][int(rng, 6)]; break;
      case 1: entry.shape[int(rng, entry.shape.length)] = big; break;
      case 2: entry.shape.push(int(rng, 5)); break;
      case 3: entry.data_offsets[int(rng, 2)] = big; break;
      case 4: {
        const meta = header.__metadata__ as Record<string, string>;
        const config = JSON.parse(meta.config) as Record<string, number>;
        const keys = Object.keys(config);
        config[keys[int(rng, keys.length)]] = big;
        meta.config = JSON.stringify(config);
        break;
      }
      case 5: {
        // A duplicated key: JSON.parse keeps the last, as every reader of the format must.
        const dup = `"${name}":${JSON.stringify({ ...entry, shape: [1] })},`;
        text = `{${dup}${JSON.stringify(header).slice(1)}`;
        return withHeader(b, text);
      }
      default: delete header[name];
    }
    return withHeader(b, JSON.stringify(header));
  }

  function withHeader(b: Uint8Array, json: string): Uint8Array {
    const head = new TextEncoder().encode(json);
    const out = new Uint8Array(8 + head.length + (b.length - 8 - headerLength));
    new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
    out.set(head, 8);
    out.set(b.subarray(8 + headerLength), 8 + head.length);
    return out;
  }

  it('2,000 mutations: every one loads or is a typed error', async () => {
    const mutations = [
      (b: Uint8Array, rng: Rng) => flipBits(b, rng, 8 + headerLength), // the header (and its length)
      (b: Uint8Array, rng: Rng) => flipBits(b, rng, b.length), // anywhere, mostly the data
      (b: Uint8Array, rng: Rng) => b.subarray(0, int(rng, b.length)), // truncation
      (b: Uint8Array, rng: Rng) => {
        const out = Uint8Array.from(b);
        const lengths = [0n, 1n, 7n, BigInt(headerLength - 1), BigInt(headerLength + 1), 2n ** 32n, 2n ** 63n, 2n ** 64n - 1n];
        new DataView(out.buffer).setBigUint64(0, lengths[int(rng, lengths.length)], true);
        return out;
      },
      editHeader,
    ];
    const outcome = await fuzz(2000, 11, valid, (b, rng) => mutations[int(rng, mutations.length)](b, rng), async (f) => {
      const model = await CMAE.load(f);
      model.dispose();
    });
    expect(outcome.typed).toBeGreaterThan(outcome.cases / 2); // most mutations are caught...
    expect(outcome.loaded).toBeGreaterThan(outcome.cases / 200); // ...and bit flips in the weights still load
  }, timeout);
});

describe('fuzzed datasets', () => {
  const n = 12;
  const pixels = Uint8Array.from({ length: n * 8 * 8 }, (_, i) => (i * 29) % 256);
  const raw = encodeIdx(pixels, [n, 8, 8]);

  it('1,500 mutated IDX files, raw and gzipped: every one loads or is a typed error', async () => {
    const mutate = (b: Uint8Array, rng: Rng) => {
      const kind = int(rng, 4);
      const m = kind === 0 ? flipBits(b, rng, 16) : kind === 1 ? flipBits(b, rng, b.length) : kind === 2 ? b.subarray(0, int(rng, b.length)) : Uint8Array.from([...b, ...new Uint8Array(int(rng, 9))]);
      return rng() < 0.5 ? m : (rng() < 0.2 ? flipBits(gzipSync(m), rng, 64) : gzipSync(m));
    };
    const outcome = await fuzz(1500, 12, raw, mutate, (f) => readIdx(f));
    expect(outcome.typed).toBeGreaterThan(outcome.cases / 5);
    expect(outcome.loaded).toBeGreaterThan(outcome.cases / 15);
  }, timeout);

  it('a gzip bomb is refused without inflating it: a forged header, or more data than the header declares', async () => {
    // 64 MiB of zeros behind a header that declares 1 byte of data: inflation stops after 2 bytes.
    const bomb = gzipSync(Buffer.concat([Buffer.from(encodeIdx(new Uint8Array(1), [1, 1, 1])), Buffer.alloc(64 * 2 ** 20)]));
    const bombFile = path.join(dir, 'bomb.idx.gz');
    writeFileSync(bombFile, bomb);
    const rss = process.memoryUsage().rss;
    await expect(readIdx(bombFile)).rejects.toThrow(/inflates to more than the 17 bytes its header declares/);
    expect(process.memoryUsage().rss - rss).toBeLessThan(32 * 2 ** 20);
    // A 60-byte file whose header claims 10^11 pixels: refused from the header alone.
    const forged = path.join(dir, 'forged.idx.gz');
    const header = new Uint8Array(16);
    header.set([0, 0, 8, 3]);
    new DataView(header.buffer).setUint32(4, 100000, false);
    new DataView(header.buffer).setUint32(8, 1000, false);
    new DataView(header.buffer).setUint32(12, 1000, false);
    writeFileSync(forged, gzipSync(header));
    await expect(readIdx(forged)).rejects.toThrow(FormatError);
    await expect(readIdx(forged)).rejects.toThrow(/declares 100000000016 bytes, more than a \d+-byte gzip file can hold/);
  });

  it('500 mutated CIFAR-10 batches parse or are a typed error', async () => {
    const record = 1 + 3 * 32 * 32;
    const batch = Uint8Array.from({ length: 4 * record }, (_, i) => (i % record === 0 ? i % 10 : (i * 7) % 256));
    const outcome = await fuzz(500, 13, batch, (b, rng) => (rng() < 0.5 ? b.subarray(0, int(rng, b.length + 1)) : flipBits(b, rng, b.length)), async (f) =>
      parseCifar10Batch(new Uint8Array(readFileSync(f)), f),
    );
    expect(outcome.typed + outcome.loaded).toBe(outcome.cases);
    expect(outcome.typed).toBeGreaterThan(outcome.cases / 10);
  }, timeout);

  it('a FIFO or a directory is an IOError at once, never a blocked read', async () => {
    const fifo = path.join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    await expect(readSafetensors(fifo)).rejects.toThrow(IOError);
    await expect(readSafetensors(fifo)).rejects.toThrow(/cannot read .*pipe: not a regular file/);
    await expect(loadIdx({ images: fifo })).rejects.toThrow(/not a regular file/);
    await expect(readSafetensors(dir)).rejects.toThrow(/is a directory/);
  });
});

/** PNG's CRC-32 (ISO 3309), so that a forged IHDR passes the CRC check and reaches the size check. */
function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** The chunks of a PNG: offset of each length field, its type and data length. */
function pngChunks(b: Uint8Array): { at: number; type: string; length: number }[] {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = [];
  for (let at = 8; at + 12 <= b.length; ) {
    const length = view.getUint32(at);
    out.push({ at, type: String.fromCharCode(...b.subarray(at + 4, at + 8)), length });
    at += 12 + length;
  }
  return out;
}

/** The segments of a JPEG up to its scan: offset of each marker, the marker and its length field. */
function jpegSegments(b: Uint8Array): { at: number; marker: number; length: number }[] {
  const out = [];
  for (let at = 2; at + 4 <= b.length && b[at] === 0xff; ) {
    const marker = b[at + 1];
    const length = (b[at + 2] << 8) | b[at + 3];
    out.push({ at, marker, length });
    if (marker === 0xda) break; // start of scan: entropy-coded data follows
    at += 2 + length;
  }
  return out;
}

/** A PNG whose IHDR claims width × height, with a correct CRC (or not). */
function forgePngSize(b: Uint8Array, width: number, height: number, fixCrc = true): Uint8Array {
  const out = Uint8Array.from(b);
  const view = new DataView(out.buffer);
  view.setUint32(16, width); // IHDR data starts at 16: signature 8, length 4, type 4
  view.setUint32(20, height);
  if (fixCrc) view.setUint32(29, crc32(out.subarray(12, 29)));
  return out;
}

/** A JPEG whose start-of-frame claims width × height (16 bits each). */
function forgeJpegSize(b: Uint8Array, width: number, height: number): Uint8Array {
  const out = Uint8Array.from(b);
  const sof = jpegSegments(out).find((s) => s.marker >= 0xc0 && s.marker <= 0xc3)!;
  const view = new DataView(out.buffer);
  view.setUint16(sof.at + 5, height); // marker 2, length 2, precision 1, then height, width
  view.setUint16(sof.at + 7, width);
  return out;
}

describe('fuzzed image folders (PNG, JPEG)', () => {
  const size = 8;
  let png: Uint8Array, pngAlpha: Uint8Array, pngGrey: Uint8Array, jpeg: Uint8Array, jpegProgressive: Uint8Array;
  beforeAll(async () => {
    // 12×10 pixels of a pattern (not flat: every decoder path and filter type has work to do).
    const rgba = Buffer.from(Uint8Array.from({ length: 12 * 10 * 4 }, (_, i) => (i * 37 + (i >> 5) * 11) % 256));
    const image = (channels: 3 | 4) => sharp(channels === 4 ? rgba : Buffer.from(rgba.filter((_, i) => i % 4 !== 3)), { raw: { width: 12, height: 10, channels } });
    const bytes = async (s: ReturnType<typeof image>) => new Uint8Array(await s.toBuffer());
    png = await bytes(image(3).png());
    pngAlpha = await bytes(image(4).png({ compressionLevel: 9 }));
    pngGrey = await bytes(image(3).greyscale().png());
    jpeg = await bytes(image(3).jpeg({ quality: 90 }));
    jpegProgressive = await bytes(image(3).jpeg({ quality: 75, progressive: true, chromaSubsampling: '4:4:4' }));
  });

  /** A folder of its own for the one image `name` of a test. */
  const imageIn = (folder: string, name: string) => {
    mkdirSync(path.join(dir, folder));
    return path.join(dir, folder, name);
  };

  /** The one image of its folder, loaded as a user would; a typed error must name the file. */
  async function loadImage(file: string, options: { maxPixels?: number } = {}, ds?: ImageFolderDataset): Promise<Uint8Array> {
    try {
      const pixels = await (ds ?? (await loadImageFolder(path.dirname(file), { size, cacheSize: 0, ...options }))).getPixels([0]);
      expect(pixels.length).toBe(size * size * 3);
      return pixels;
    } catch (e) {
      if (e instanceof CmaeError && !e.message.includes(file)) throw new Error(`a ${e.name} that does not name ${file}: ${e.message}`);
      throw e;
    }
  }

  it('valid files load; a header claiming 100000x100000, more than maxPixels or more than the file can hold is refused before decoding, naming the file and the sizes', async () => {
    const file = imageIn('forged-png', 'case.png');
    for (const b of [png, pngAlpha, pngGrey]) {
      writeFileSync(file, b);
      expect((await loadImage(file)).some((v) => v !== 0)).toBe(true);
    }
    writeFileSync(file, forgePngSize(png, 100000, 100000));
    const huge = new RegExp(`case\\.png: its header claims 100000x100000 = 10000000000 pixels, more than maxPixels ${MAX_IMAGE_PIXELS} \\(refused before decoding\\)`);
    await expect(loadImage(file)).rejects.toThrow(FormatError);
    await expect(loadImage(file)).rejects.toThrow(huge);
    // The limit is the option's: 12×10 = 120 pixels pass at 120 and are refused at 119.
    writeFileSync(file, png);
    await loadImage(file, { maxPixels: 120 });
    await expect(loadImage(file, { maxPixels: 119 })).rejects.toThrow(/claims 12x10 = 120 pixels, more than maxPixels 119/);
    await expect(loadImageFolder(path.dirname(file), { size, maxPixels: 0 })).rejects.toThrow(/maxPixels must be a positive integer, got 0/);

    const jfile = imageIn('forged-jpeg', 'case.jpg');
    writeFileSync(jfile, jpeg);
    await loadImage(jfile);
    writeFileSync(jfile, forgeJpegSize(jpeg, 65500, 65500)); // the largest libjpeg reads
    await expect(loadImage(jfile)).rejects.toThrow(/case\.jpg: its header claims 65500x65500 = 4290250000 pixels, more than maxPixels/);
    // Under maxPixels but more than the file can hold: a progressive JPEG's decoder would allocate
    // every coefficient of 16000×16000 (1.5 GB) before finding the data missing.
    writeFileSync(jfile, forgeJpegSize(jpegProgressive, 16000, 16000));
    const rss = process.memoryUsage().rss;
    await expect(loadImage(jfile)).rejects.toThrow(/case\.jpg: its header claims 16000x16000 = 256000000 pixels, more than a \d+-byte image file can hold \(forged or truncated; refused before decoding\)/);
    expect(process.memoryUsage().rss - rss).toBeLessThan(64 * 2 ** 20);
    // Formats without such a bound are limited by maxPixels only: an 88-byte lossless WebP holds a flat 1024×1024.
    const webp = imageIn('flat-webp', 'flat.webp');
    writeFileSync(webp, await sharp({ create: { width: 1024, height: 1024, channels: 3, background: { r: 9, g: 9, b: 9 } } }).webp({ lossless: true }).toBuffer());
    expect((await loadImage(webp)).every((v) => v === 9)).toBe(true);
  });

  it('1,200 mutated PNG and JPEG files: every one loads or is a typed error naming the file', async () => {
    const dims = [0, 1, 3, 12, 4000, 16000, 65535, 100000, 2 ** 31 - 1, 2 ** 32 - 1];
    const pick = <T,>(rng: Rng, list: readonly T[]) => list[int(rng, list.length)];
    const common = (b: Uint8Array, rng: Rng): Uint8Array => {
      switch (int(rng, 4)) {
        case 0: return flipBits(b, rng, 64); // the signature and headers
        case 1: return flipBits(b, rng, b.length);
        case 2: return b.subarray(0, int(rng, b.length));
        default: return Uint8Array.from([...b, ...Array.from({ length: 1 + int(rng, 64) }, () => int(rng, 256))]); // trailing garbage
      }
    };
    const pngMutation = (b: Uint8Array, rng: Rng): Uint8Array => {
      const out = Uint8Array.from(b);
      const view = new DataView(out.buffer);
      const chunk = pick(rng, pngChunks(out));
      switch (int(rng, 5)) {
        case 0: return common(b, rng);
        case 1: return forgePngSize(b, pick(rng, dims), pick(rng, dims), rng() < 0.8);
        case 2: view.setUint32(chunk.at, pick(rng, [0, 1, chunk.length - 1, chunk.length + 1, 2 ** 31 - 1, 2 ** 32 - 1])); return out; // chunk length
        case 3: out[chunk.at + 8 + chunk.length + int(rng, 4)] ^= 1 + int(rng, 255); return out; // that chunk's CRC
        default: out[24 + int(rng, 5)] = int(rng, 256); return out; // IHDR bit depth, colour type, compression, filter, interlace
      }
    };
    const jpegMutation = (b: Uint8Array, rng: Rng): Uint8Array => {
      const out = Uint8Array.from(b);
      const segment = pick(rng, jpegSegments(out));
      switch (int(rng, 4)) {
        case 0:
        case 1: return common(b, rng);
        case 2: return forgeJpegSize(b, pick(rng, dims) & 0xffff, pick(rng, dims) & 0xffff);
        default: new DataView(out.buffer).setUint16(segment.at + 2, pick(rng, [0, 1, 2, segment.length - 1, segment.length + 1, 0xffff])); return out; // segment length
      }
    };
    const sources = [
      { name: 'case.png', cases: 700, seed: 21, bases: [png, pngAlpha, pngGrey], mutate: pngMutation },
      { name: 'case.jpg', cases: 500, seed: 22, bases: [jpeg, jpegProgressive], mutate: jpegMutation },
    ];
    for (const { name, cases, seed, bases, mutate } of sources) {
      // One dataset over a folder of one file, rewritten for each case (cacheSize 0: always decoded).
      const file = imageIn(`fuzz-${seed}`, name);
      writeFileSync(file, bases[0]);
      const ds = await loadImageFolder(path.dirname(file), { size, cacheSize: 0 });
      const outcome = await fuzz(cases, seed, bases[0], (_, rng) => mutate(pick(rng, bases), rng), () => loadImage(file, {}, ds), file);
      expect(outcome.typed).toBeGreaterThan(outcome.cases / 4); // most damage is caught...
      expect(outcome.loaded).toBeGreaterThan(outcome.cases / 20); // ...and some mutations still decode (trailing data, ancillary bits)
    }
  }, timeout);
});
