/**
 * Seeded fuzzing of the file readers: valid checkpoints, IDX files (raw and gzipped) and CIFAR-10
 * batches, mutated the ways hostile or damaged files are (bit flips, truncation, header-length and
 * JSON edits, duplicated keys, dtype/shape/offset edits, forged dims). Every case must end in a
 * correct load or one of the package's typed errors — never another exception, a crash or a hang —
 * and the process must not grow by more than the files could hold. Thousands of cases, seconds.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CMAE, CmaeError, FormatError, IOError } from '../../src/index';
import { encodeIdx, loadIdx, readIdx } from '../../src/data/idx';
import { parseCifar10Batch } from '../../src/data/cifar';
import { readSafetensors } from '../../src/io/safetensors';
import { makeRng } from '../helpers/check';

const dir = mkdtempSync(path.join(tmpdir(), 'cmae-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Rng = () => number;
const int = (rng: Rng, n: number) => Math.floor(rng() * n);

/** Runs `load` on each mutated file; returns how many loaded and how many were typed errors. */
async function fuzz(cases: number, seed: number, base: Uint8Array, mutate: (b: Uint8Array, rng: Rng) => Uint8Array, load: (file: string) => Promise<unknown>) {
  const rng = makeRng(seed);
  const file = path.join(dir, `case-${seed}`);
  const outcome = { loaded: 0, typed: 0 };
  const rssBefore = process.memoryUsage().rss;
  for (let c = 0; c < cases; c++) {
    const bytes = mutate(base, rng);
    writeFileSync(file, bytes);
    try {
      await load(file);
      outcome.loaded++;
    } catch (e) {
      if (!(e instanceof CmaeError)) throw new Error(`case ${c} (seed ${seed}): ${(e as Error).constructor.name}: ${(e as Error).message}`);
      outcome.typed++;
    }
  }
  // Nothing allocated beyond what such small files could hold (GC noise aside).
  expect(process.memoryUsage().rss - rssBefore).toBeLessThan(256 * 2 ** 20);
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
    expect(outcome.typed).toBeGreaterThan(1000); // most mutations are caught...
    expect(outcome.loaded).toBeGreaterThan(10); // ...and bit flips in the weights still load
  }, 120_000);
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
    expect(outcome.typed).toBeGreaterThan(300);
    expect(outcome.loaded).toBeGreaterThan(100);
  }, 120_000);

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
    expect(outcome.typed + outcome.loaded).toBe(500);
    expect(outcome.typed).toBeGreaterThan(50);
  });

  it('a FIFO or a directory is an IOError at once, never a blocked read', async () => {
    const fifo = path.join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    await expect(readSafetensors(fifo)).rejects.toThrow(IOError);
    await expect(readSafetensors(fifo)).rejects.toThrow(/cannot read .*pipe: not a regular file/);
    await expect(loadIdx({ images: fifo })).rejects.toThrow(/not a regular file/);
    await expect(readSafetensors(dir)).rejects.toThrow(/is a directory/);
  });
});
