/**
 * model.embedImages(): real PNG and JPEG files, given by path or as bytes, decoded as an image
 * folder is and normalised with the checkpoint's own statistics (CMAE.load exposes them), equal to
 * encode() of the same normalised pixels; bad input is a typed error naming what is wrong.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CMAE, DataLoader, DisposedError, FormatError, IOError, ValueError, kernels, loadImageFolder, train } from '../../src/index';
import { resizeOnly } from '../../src/data/loader';
import { noiseDataset, writeImageFolder } from '../helpers/fixtures';

const root = mkdtempSync(path.join(tmpdir(), 'cmae-embed-images-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const folder = path.join(root, 'images');
const checkpoint = path.join(root, 'micro.safetensors');
const normalization = { mean: [0.45, 0.5, 0.55], std: [0.2, 0.25, 0.3] };
let created: CMAE;
let model: CMAE;
let files: string[];

beforeAll(async () => {
  const written = await writeImageFolder(folder, 3);
  files = written.files.filter((f) => f !== written.broken);
  created = await CMAE.create({ preset: 'micro', channels: 3, seed: 7 });
  await created.save(checkpoint, { metadata: { normalization: JSON.stringify(normalization), data: 'folder:images' } });
  model = await CMAE.load(checkpoint);
});
afterAll(() => {
  created?.dispose();
  model?.dispose();
});

/** The reference: the folder's own decode (at cmae's decode size, 64), resized and normalised by the views kernel, encoded in one call. */
async function reference(order: string[], pool: 'cls' | 'mean'): Promise<Float32Array> {
  const ds = await loadImageFolder(folder, { size: 64, cacheSize: 0 });
  const per = 64 * 64 * 3;
  const pixels = new Uint8Array(order.length * per);
  for (const [row, file] of order.entries()) pixels.set(await ds.getPixels([ds.files.indexOf(file)]), row * per);
  const views = kernels.makeViews({ pixels, size: order.length, height: 64, width: 64, channels: 3 }, Int32Array.from(order.keys()), { ...resizeOnly(16), ...normalization, twoViews: false }, 0, 0);
  try {
    return await model.encode(views.online, { pool });
  } finally {
    views.online.dispose();
    views.shifts.dispose();
  }
}

describe('CMAE.load metadata', () => {
  it("exposes the checkpoint's metadata and its normalisation; a created model has neither", () => {
    expect(model.metadata).toMatchObject({ format: 'cmae-checkpoint', data: 'folder:images', normalization: JSON.stringify(normalization) });
    expect(model.normalization).toEqual(normalization);
    expect(Object.isFrozen(model.metadata)).toBe(true);
    expect(created.metadata).toEqual({});
    expect(created.normalization).toBeUndefined();
  });

  it("train() records a DataLoader's normalisation in its checkpoints, so that the loaded model embeds as it trained", async () => {
    const trained = await CMAE.create({ preset: 'micro', channels: 3, seed: 3 });
    try {
      const loader = new DataLoader(noiseDataset(8), { batchSize: 4, augment: { outSize: 16 } });
      const outDir = path.join(root, 'trained');
      const result = await train({ model: trained, data: loader, steps: 1, outDir });
      const loaded = await CMAE.load(result.checkpointPath!);
      expect(loaded.normalization).toEqual(await loader.normalization());
      expect(loaded.normalization!.mean).toHaveLength(3);
      loaded.dispose();
    } finally {
      trained.dispose();
    }
  });

  it('refuses a checkpoint whose recorded normalisation is not {mean, std} for its channels, naming the file', async () => {
    const bad = path.join(root, 'bad-normalization.safetensors');
    await created.save(bad, { metadata: { normalization: JSON.stringify({ mean: [0.5], std: [0] }) } });
    await expect(CMAE.load(bad)).rejects.toThrow(FormatError);
    await expect(CMAE.load(bad)).rejects.toThrow(/bad-normalization\.safetensors: metadata\.normalization\.std entries must be > 0/);
    await created.save(bad, { metadata: { normalization: '{mean' } });
    await expect(CMAE.load(bad)).rejects.toThrow(/metadata\.normalization is not valid JSON/);
  });
});

describe('model.embedImages()', () => {
  it('embeds PNG and JPEG files by path and by bytes, equal to encode() of the same normalised pixels', async () => {
    const order = [...files].reverse(); // not the folder's order: the result follows the input
    const dim = model.config.dim;
    for (const pool of ['cls', 'mean'] as const) {
      const expected = await reference(order, pool);
      const byPath = await model.embedImages(order, { pool });
      expect(byPath).toBeInstanceOf(Float32Array);
      expect(byPath.length).toBe(order.length * dim);
      expect(Array.from(byPath)).toEqual(Array.from(expected));
      // Buffers, Uint8Arrays and paths mixed, in batches smaller than the list.
      const mixed = order.map((f, i) => (i % 3 === 0 ? f : i % 3 === 1 ? readFileSync(f) : new Uint8Array(readFileSync(f))));
      expect(Array.from(await model.embedImages(mixed, { pool, batchSize: 2, concurrency: 1 }))).toEqual(Array.from(expected));
    }
    expect(order.some((f) => f.endsWith('.png')) && order.some((f) => f.endsWith('.jpg'))).toBe(true);
    // blocks 2: N·2·dim, the last slice of each row the one-block embedding
    const one = await model.embedImages(order, { pool: 'mean' });
    const two = await model.embedImages(order, { pool: 'mean', blocks: 2 });
    expect(two.length).toBe(order.length * 2 * dim);
    for (let i = 0; i < order.length; i++) expect(Array.from(two.subarray((2 * i + 1) * dim, (2 * i + 2) * dim))).toEqual(Array.from(one.subarray(i * dim, (i + 1) * dim)));
    await expect(model.embedImages(order, { blocks: 99 })).rejects.toThrow(/options.blocks must be an integer from 1 to the encoder's depth/);
  });

  it("applies the checkpoint's normalisation: a flat colour gives encode() of (value / 255 − mean) / std everywhere", async () => {
    const rgb = [51, 128, 204];
    const flat = await sharp({ create: { width: 40, height: 30, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toBuffer();
    const S = model.config.imageSize;
    const pixels = new Float32Array(3 * S * S);
    for (let c = 0; c < 3; c++) pixels.fill((rgb[c] / 255 - normalization.mean[c]) / normalization.std[c], c * S * S, (c + 1) * S * S);
    const expected = await model.encode(pixels);
    const got = await model.embedImages([flat]);
    for (let i = 0; i < expected.length; i++) expect(got[i], `feature ${i}`).toBeCloseTo(expected[i], 5);
    // options.normalization overrides the checkpoint's.
    const other = { mean: [0.5], std: [0.5] };
    const overridden = await model.embedImages([flat], { normalization: other });
    const otherPixels = new Float32Array(3 * S * S);
    for (let c = 0; c < 3; c++) otherPixels.fill((rgb[c] / 255 - 0.5) / 0.5, c * S * S, (c + 1) * S * S);
    const otherExpected = await model.encode(otherPixels);
    for (let i = 0; i < otherExpected.length; i++) expect(overridden[i], `feature ${i}`).toBeCloseTo(otherExpected[i], 5);
    expect(await model.embedImages([])).toEqual(new Float32Array(0));
  });

  it('bad input: a typed error naming the argument, the file or the buffer', async () => {
    const missing = path.join(root, 'nope.png');
    await expect(model.embedImages([files[0], missing])).rejects.toThrow(IOError);
    await expect(model.embedImages([missing])).rejects.toThrow(`cannot read ${missing}: no such file`);
    await expect(model.embedImages([folder])).rejects.toThrow(/is a directory/);
    await expect(model.embedImages(files[0] as unknown as string[])).rejects.toThrow(
      /images must be an array of file paths or encoded image bytes \(Buffer or Uint8Array\), got the string/,
    );
    await expect(model.embedImages([files[0], 42 as unknown as string])).rejects.toThrow(/images\[1\] must be a file path or the bytes of an encoded image .*got number 42/);
    await expect(model.embedImages([new Float32Array(4) as unknown as Uint8Array])).rejects.toThrow(ValueError);
    const garbage = Buffer.from('no image in here');
    await expect(model.embedImages([files[0], garbage])).rejects.toThrow(FormatError);
    await expect(model.embedImages([files[0], garbage])).rejects.toThrow(/images\[1\] \(16 bytes\): cannot decode image/);
    const renamed = path.join(root, 'text.jpg');
    writeFileSync(renamed, 'plain text');
    await expect(model.embedImages([renamed])).rejects.toThrow(`${renamed}: cannot decode image`);
    await expect(model.embedImages(files, { batchSize: 0 })).rejects.toThrow(/options\.batchSize must be a positive integer, got number 0/);
    await expect(model.embedImages(files, { normalization: { mean: [0, 0], std: [1, 1] } })).rejects.toThrow(/options\.normalization\.mean must be an array of 3 finite numbers/);
    await expect(created.embedImages(files)).rejects.toThrow(/options\.normalization is required: this model records none/);
    const gone = await CMAE.load(checkpoint);
    gone.dispose();
    await expect(gone.embedImages(files)).rejects.toThrow(DisposedError);
  });
});
