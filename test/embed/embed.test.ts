/**
 * embed(): streamed embeddings of a folder of real PNG/JPEG files (and of in-memory data), equal to
 * encode() on the same decoded images; unreadable files skipped and named; order, bounded
 * prefetch, cancellation; the .npy and .jsonl writers, read back by independent parsers.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AbortError, CMAE, FormatError, IOError, ValueError, embed, formatFloat32, kernels, loadImageFolder, writeEmbeddings,
  type Embedding, type LazyDataset, type SkippedImage,
} from '../../src/index';
import { resizeOnly } from '../../src/data/loader';
import { writeImageFolder, noiseDataset } from '../helpers/fixtures';

const root = mkdtempSync(path.join(tmpdir(), 'cmae-embed-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const folder = path.join(root, 'images');
const checkpoint = path.join(root, 'micro.safetensors');
const normalization = { mean: [0.45, 0.5, 0.55], std: [0.2, 0.25, 0.3] };
let model: CMAE;
let broken: string;

beforeAll(async () => {
  ({ broken } = await writeImageFolder(folder));
  model = await CMAE.create({ preset: 'micro', channels: 3, seed: 7 });
  await model.save(checkpoint, { metadata: { normalization: JSON.stringify(normalization) } });
});
afterAll(() => model?.dispose());

async function collect(stream: AsyncIterable<Embedding>): Promise<Embedding[]> {
  const rows: Embedding[] = [];
  for await (const row of stream) rows.push(row);
  return rows;
}

/**
 * The reference: each readable image decoded on its own (the folder dataset at the decode size
 * cmae uses, 64), resized and normalised with the given statistics, and encoded in one call.
 */
async function reference(pool: 'cls' | 'mean'): Promise<{ files: readonly string[]; good: number[]; features: Float32Array }> {
  const ds = await loadImageFolder(folder, { size: 64, cacheSize: 0 });
  const good = ds.files.map((_, i) => i).filter((i) => ds.files[i] !== broken);
  const per = 64 * 64 * 3;
  const pixels = new Uint8Array(good.length * per);
  for (const [row, k] of good.entries()) pixels.set(await ds.getPixels([k]), row * per);
  const views = kernels.makeViews(
    { pixels, size: good.length, height: 64, width: 64, channels: 3 },
    Int32Array.from(good, (_, i) => i),
    { ...resizeOnly(16), ...normalization, twoViews: false },
    0,
    0,
  );
  const features = await model.encode(views.online, { pool });
  views.online.dispose();
  views.shifts.dispose();
  return { files: ds.files, good, features };
}

describe('embed()', () => {
  it('streams a folder of PNG and JPEG files in order, equal to encode() element by element, skipping the corrupt file by name', async () => {
    for (const pool of ['cls', 'mean'] as const) {
      const skipped: SkippedImage[] = [];
      const progress: number[] = [];
      // From a checkpoint path and a folder path: the checkpoint's own normalisation is applied.
      const stream = embed(checkpoint, folder, { pool, batchSize: 4, onSkip: (s) => skipped.push(s), onProgress: (p) => progress.push(p.done) });
      const rows = await collect(stream);
      const ref = await reference(pool);
      expect(ref.files.length).toBe(11);
      expect(rows.map((r) => r.index)).toEqual(ref.good);
      expect(rows.map((r) => r.path)).toEqual(ref.good.map((k) => ref.files[k]));
      expect(rows.map((r) => r.label)).toEqual(ref.good.map((k) => (ref.files[k].includes(`${path.sep}dogs${path.sep}`) ? 1 : 0)));
      const dim = model.config.dim;
      for (const [i, row] of rows.entries()) {
        expect(row.embedding).toBeInstanceOf(Float32Array);
        expect(row.embedding.length).toBe(dim);
        expect(Array.from(row.embedding), `row ${i}`).toEqual(Array.from(ref.features.subarray(i * dim, (i + 1) * dim)));
      }
      expect(skipped).toHaveLength(1);
      expect(skipped[0].path).toBe(broken);
      expect(skipped[0].error).toBeInstanceOf(FormatError);
      expect(skipped[0].error.message).toContain(broken);
      expect(stream.skipped).toHaveLength(1);
      expect([stream.total, stream.embedded]).toEqual([11, 10]);
      expect(progress).toEqual([4, 8, 11]);
    }
  });

  it('takes a model object with an explicit normalisation, and in-memory data with labels', async () => {
    const data = noiseDataset(9);
    const rows = await collect(embed(model, data, { normalization, batchSize: 4 }));
    const views = kernels.makeViews(data, Int32Array.from({ length: 9 }, (_, i) => i), { ...resizeOnly(16), ...normalization, twoViews: false }, 0, 0);
    const expected = await model.encode(views.online);
    views.online.dispose();
    views.shifts.dispose();
    expect(rows.map((r) => [r.index, r.label, r.path])).toEqual(Array.from({ length: 9 }, (_, i) => [i, i % 4, undefined]));
    expect(Array.from(rows.flatMap((r) => Array.from(r.embedding)))).toEqual(Array.from(expected));
    // blocks 2: the last two blocks' features side by side, as encode() gives them
    const views2 = kernels.makeViews(data, Int32Array.from({ length: 9 }, (_, i) => i), { ...resizeOnly(16), ...normalization, twoViews: false }, 0, 0);
    const expected2 = await model.encode(views2.online, { blocks: 2 });
    views2.online.dispose();
    views2.shifts.dispose();
    const rows2 = await collect(embed(model, data, { normalization, batchSize: 4, blocks: 2 }));
    expect(rows2.every((r) => r.embedding.length === 2 * model.config.dim)).toBe(true);
    expect(Array.from(rows2.flatMap((r) => Array.from(r.embedding)))).toEqual(Array.from(expected2));
    expect(() => embed(model, data, { normalization, blocks: model.config.depth + 1 })).toThrow(`blocks must be an integer from 1 to the encoder's depth (${model.config.depth})`);
    expect(() => embed(model, data, { normalization, blocks: 0 })).toThrow(ValueError);
    // Another normalisation gives other embeddings: the one given is the one applied.
    const other = await collect(embed(model, data, { normalization: { mean: [0.5], std: [0.5] }, batchSize: 4 }));
    expect(Array.from(other[0].embedding)).not.toEqual(Array.from(rows[0].embedding));
  });

  it('prefetches one batch and no more: a slow consumer never has more than two batches of images requested', async () => {
    const data = noiseDataset(40);
    const batchSize = 5;
    let maxRequested = -1;
    let inFlight = 0;
    let maxInFlight = 0;
    const lazy: LazyDataset = {
      name: 'counted', size: data.size, height: 20, width: 20, channels: 3, labels: data.labels, numClasses: 4,
      getPixels: async (indices) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        for (const k of Array.from(indices)) maxRequested = Math.max(maxRequested, k);
        await new Promise((r) => setTimeout(r, 1));
        inFlight--;
        const k = indices[0];
        return data.pixels.slice(k * 1200, (k + 1) * 1200);
      },
    };
    const order: number[] = [];
    for await (const row of embed(model, lazy, { normalization, batchSize, concurrency: 3 })) {
      // Row r belongs to batch ⌊r/5⌋; only the batch after it may have been requested yet.
      expect(maxRequested, `at row ${row.index}`).toBeLessThan((Math.floor(row.index / batchSize) + 2) * batchSize);
      order.push(row.index);
      await new Promise((r) => setTimeout(r, 2));
    }
    expect(order).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(maxInFlight).toBeLessThanOrEqual(3);
    // The embeddings equal those of the in-memory data set.
    const direct = await collect(embed(model, data, { normalization, batchSize: 40 }));
    const lazyRows = await collect(embed(model, lazy, { normalization, batchSize: 7 }));
    expect(lazyRows.map((r) => Array.from(r.embedding))).toEqual(direct.map((r) => Array.from(r.embedding)));
  });

  it('stops at the next batch when its AbortSignal fires, with an AbortError, and leaves no output file', async () => {
    const controller = new AbortController();
    const seen: number[] = [];
    const stream = embed(model, noiseDataset(30), {
      normalization,
      batchSize: 5,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.done === 10) controller.abort();
      },
    });
    const out = path.join(root, 'aborted', 'e.npy');
    rmSync(path.dirname(out), { recursive: true, force: true });
    (await import('node:fs')).mkdirSync(path.dirname(out));
    const counting = (async function* () {
      for await (const row of stream) {
        seen.push(row.index);
        yield row;
      }
    })();
    await expect(writeEmbeddings(counting, out)).rejects.toBeInstanceOf(AbortError);
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    expect(readdirSync(path.dirname(out))).toEqual([]); // no output, no temporaries
    // Already aborted: nothing is produced at all.
    await expect(collect(embed(model, noiseDataset(3), { normalization, signal: AbortSignal.abort() }))).rejects.toBeInstanceOf(AbortError);
  });

  it('rejects bad arguments with typed errors naming them', async () => {
    expect(() => embed(model, noiseDataset(2))).toThrow(/normalization is required with a model object/);
    expect(() => embed(model, noiseDataset(2), { normalization, pool: 'max' as 'cls' })).toThrow(ValueError);
    expect(() => embed(model, noiseDataset(2), { normalization, batchSize: 0 })).toThrow(/batchSize must be a positive integer, got 0/);
    expect(() => embed(model, noiseDataset(2), { normalization: { mean: [0, 0], std: [1, 1] } })).toThrow(/normalization.mean must be an array of 3 finite numbers/);
    const grey = { ...noiseDataset(2), channels: 1, pixels: new Uint8Array(2 * 400) };
    expect(() => embed(model, grey, { normalization })).toThrow(/has 1-channel images, the model expects 3/);
    const stream = embed(model, noiseDataset(2), { normalization });
    await collect(stream);
    expect(() => stream[Symbol.asyncIterator]()).toThrow(/iterated once/);
    // A checkpoint path that is no checkpoint, and one without normalisation metadata.
    const junk = path.join(root, 'junk.safetensors');
    writeFileSync(junk, 'not a safetensors file');
    await expect(collect(embed(junk, folder))).rejects.toBeInstanceOf(FormatError);
    const bare = path.join(root, 'bare.safetensors');
    await model.save(bare);
    await expect(collect(embed(bare, folder))).rejects.toThrow(/records no normalization/);
    await expect(collect(embed(checkpoint, path.join(root, 'missing')))).rejects.toBeInstanceOf(IOError);
  });
});

/** A minimal .npy reader, written from the format's description (NEP 1), independent of src/io/npy.ts. */
function parseNpy(bytes: Buffer): { version: [number, number]; header: string; headerBytes: number; descr: string; fortran: boolean; shape: number[]; data: Float32Array } {
  expect(Array.from(bytes.subarray(0, 6))).toEqual([0x93, ...Buffer.from('NUMPY')]);
  const version: [number, number] = [bytes[6], bytes[7]];
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + headerLength).toString('latin1');
  const descr = /'descr': '([^']*)'/.exec(header)![1];
  const fortran = /'fortran_order': (True|False)/.exec(header)![1] === 'True';
  const shape = /'shape': \(([^)]*)\)/.exec(header)![1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const start = 10 + headerLength;
  const body = bytes.subarray(start);
  const data = new Float32Array(body.length / 4);
  for (let i = 0; i < data.length; i++) data[i] = body.readFloatLE(4 * i);
  return { version, header, headerBytes: start, descr, fortran, shape, data };
}

describe('embedding files', () => {
  let rows: Embedding[];
  beforeAll(async () => {
    rows = await collect(embed(checkpoint, folder, { batchSize: 3, onSkip: () => undefined }));
  });

  it('.npy: NumPy format 1.0, <f4, C order, shape (N, dim), header padded to 64 bytes; a rows.jsonl names each row', async () => {
    const out = path.join(root, 'e.npy');
    const written = await writeEmbeddings(rows, out, { pathsRelativeTo: folder });
    expect(written).toEqual({ rows: 10, dim: 32, files: [out, path.join(root, 'e.rows.jsonl')] });
    const npy = parseNpy(readFileSync(out));
    expect(npy.version).toEqual([1, 0]);
    expect([npy.descr, npy.fortran, npy.shape]).toEqual(['<f4', false, [10, 32]]);
    expect(npy.headerBytes % 64).toBe(0);
    expect(npy.header.endsWith('\n')).toBe(true);
    expect(npy.header.startsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (10, 32), }")).toBe(true);
    expect(Array.from(npy.data)).toEqual(rows.flatMap((r) => Array.from(r.embedding)));
    const side = readFileSync(path.join(root, 'e.rows.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(side).toEqual(rows.map((r) => ({ index: r.index, path: path.relative(folder, r.path!).split(path.sep).join('/'), label: r.label })));
    expect(side.map((s) => s.path)).toContain('dogs/more/img4.png');
  });

  it('.jsonl: one object per image whose numbers read back as the same float32 values', async () => {
    const out = path.join(root, 'e.jsonl');
    await writeEmbeddings(rows, out);
    const lines = readFileSync(out, 'utf8').split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(10);
    for (const [i, line] of lines.entries()) {
      const o = JSON.parse(line);
      expect(Object.keys(o)).toEqual(['index', 'path', 'label', 'embedding']);
      expect([o.index, o.path, o.label]).toEqual([rows[i].index, rows[i].path, rows[i].label]);
      expect(Array.from(Float32Array.from(o.embedding))).toEqual(Array.from(rows[i].embedding));
    }
  });

  it('never replaces an existing file unless asked, and writes nothing when no image could be read', async () => {
    const out = path.join(root, 'keep.jsonl');
    writeFileSync(out, 'precious');
    await expect(writeEmbeddings(rows, out)).rejects.toThrow(/keep.jsonl exists/);
    expect(readFileSync(out, 'utf8')).toBe('precious');
    await writeEmbeddings(rows, out, { overwrite: true });
    expect(readFileSync(out, 'utf8').split('\n')).toHaveLength(11);
    // The .npy's row file counts as an output too.
    const npy = path.join(root, 'side.npy');
    writeFileSync(path.join(root, 'side.rows.jsonl'), 'precious');
    await expect(writeEmbeddings(rows, npy)).rejects.toThrow(/side.rows.jsonl exists/);
    expect(existsSync(npy)).toBe(false);
    const empty = path.join(root, 'none', 'e.npy');
    (await import('node:fs')).mkdirSync(path.dirname(empty));
    await expect(writeEmbeddings([], empty)).rejects.toThrow(/no image could be embedded/);
    expect(readdirSync(path.dirname(empty))).toEqual([]);
    await expect(writeEmbeddings(rows, path.join(root, 'e.csv'))).rejects.toThrow(/must end in .npy or .jsonl/);
  });

  it('formatFloat32 prints the shortest decimal that reads back as the same float32', () => {
    expect(formatFloat32(Math.fround(0.1))).toBe('0.1');
    expect(formatFloat32(Math.fround(-1.5))).toBe('-1.5');
    expect(formatFloat32(0)).toBe('0');
    expect(formatFloat32(Math.fround(3.4028234663852886e38))).toBe('3.4028235e+38');
    const values = new Float32Array(20000);
    const bits = new Uint32Array(values.buffer);
    let s = 99;
    for (let i = 0; i < bits.length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      bits[i] = s;
    }
    bits[0] = 1; // the smallest subnormal
    for (const x of values) {
      if (!Number.isFinite(x)) continue;
      const text = formatFloat32(x);
      expect(Math.fround(JSON.parse(text)), text).toBe(x);
      // Shortest: one significant digit fewer does not read back (where there are digits to drop).
      const digits = text.replace(/^-/, '').replace(/e.*$/, '').replace('.', '').replace(/^0+/, '').replace(/0+$/, '').length;
      if (digits > 1) expect(Math.fround(Number(x.toPrecision(digits - 1))), text).not.toBe(x);
    }
    expect(() => formatFloat32(NaN)).toThrow(ValueError);
  });
});
