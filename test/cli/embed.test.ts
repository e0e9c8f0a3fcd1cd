/**
 * `cmae embed` end to end (the compiled CLI in dist/): a folder of real PNG and JPEG files to .npy
 * and .jsonl, equal to the library's stream; the corrupt file named and counted; --force; Ctrl-C;
 * bad checkpoints and arguments as one line and exit code 2.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CMAE, embed, readSafetensors, writeSafetensors, type Embedding } from '../../src/index';
import { cliPath, interruptCli, runCli as run, writeIdxDataset, writeImageFolder } from '../helpers/fixtures';

const root = mkdtempSync(path.join(tmpdir(), 'cmae-cli-embed-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const folder = path.join(root, 'photos');
const checkpoint = path.join(root, 'micro.safetensors');
const greyCheckpoint = path.join(root, 'micro-grey.safetensors');
let broken: string;
let expected: Embedding[];

beforeAll(async () => {
  if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: build the TypeScript first (npm ci or npm run build:ts)`);
  ({ broken } = await writeImageFolder(folder, 4));
  const model = await CMAE.create({ preset: 'micro', channels: 3, seed: 11 });
  await model.save(checkpoint, { metadata: { normalization: JSON.stringify({ mean: [0.5, 0.45, 0.4], std: [0.25, 0.25, 0.3] }) } });
  model.dispose();
  const grey = await CMAE.create({ preset: 'micro', channels: 1, seed: 11 });
  await grey.save(greyCheckpoint, { metadata: { normalization: JSON.stringify({ mean: [0.13], std: [0.31] }) } });
  grey.dispose();
  expected = [];
  for await (const row of embed(checkpoint, folder, { onSkip: () => undefined })) expected.push(row);
});

function readNpyRows(file: string): { shape: number[]; values: number[] } {
  const bytes = readFileSync(file);
  const headerLength = bytes.readUInt16LE(8);
  const header = bytes.subarray(10, 10 + headerLength).toString('latin1');
  expect(header).toMatch(/^\{'descr': '<f4', 'fortran_order': False, 'shape': \(\d+, \d+\), \} *\n$/);
  const shape = /\((\d+), (\d+)\)/.exec(header)!.slice(1).map(Number);
  const values: number[] = [];
  for (let o = 10 + headerLength; o < bytes.length; o += 4) values.push(bytes.readFloatLE(o));
  return { shape, values };
}

const relative = (file: string) => path.relative(folder, file).split(path.sep).join('/');

describe('cmae embed', () => {
  it('writes .npy (+ rows.jsonl) and .jsonl for a folder of PNG and JPEG files, naming and counting the unreadable one', () => {
    const npy = path.join(root, 'out', 'embeddings.npy');
    mkdirSync(path.dirname(npy));
    const r = run('embed', '--checkpoint', checkpoint, '--data', `folder:${folder}`, '--out', npy, '--batch-size', '3');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`warning: skipped image 4: ${broken}: cannot decode image`);
    expect(r.stderr).toMatch(/\] 9\/9 \d+ img\/s, 1 skipped/);
    expect(r.stdout).toMatch(/embedded 8 images \(dim 32, cls\) in [\d.]+ s to .*embeddings\.npy \+ .*embeddings\.rows\.jsonl\nskipped 1 unreadable file\n$/);
    const { shape, values } = readNpyRows(npy);
    expect(shape).toEqual([8, 32]);
    expect(values).toEqual(expected.flatMap((e) => Array.from(e.embedding)));
    const rows = readFileSync(path.join(root, 'out', 'embeddings.rows.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows).toEqual(expected.map((e) => ({ index: e.index, path: relative(e.path!), label: e.label })));
    expect(rows.map((x) => x.path)).toEqual(['cats/img0.png', 'cats/img1.png', 'cats/img2.png', 'cats/img3.png', 'dogs/img0.jpg', 'dogs/img1.jpg', 'dogs/img2.jpg', 'dogs/more/img3.png']);

    const jsonl = path.join(root, 'out', 'embeddings.jsonl');
    const j = run('embed', '--checkpoint', checkpoint, '--data', `folder:${folder}`, '--out', jsonl, '--pool', 'mean', '--json');
    expect(j.code, j.stderr).toBe(0);
    expect(JSON.parse(j.stdout)).toMatchObject({ images: 9, embedded: 8, skipped: 1, dim: 32, pool: 'mean', files: [jsonl] });
    const lines = readFileSync(jsonl, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.index, l.path, l.label])).toEqual(expected.map((e) => [e.index, relative(e.path!), e.label]));
    expect(lines.every((l) => l.embedding.length === 32)).toBe(true);
    // Mean pooling: other numbers than the cls rows of the .npy.
    expect(lines[0].embedding).not.toEqual(values.slice(0, 32));
    expect(readdirSync(path.join(root, 'out')).sort()).toEqual(['embeddings.jsonl', 'embeddings.npy', 'embeddings.rows.jsonl']);
    // --blocks 2: embeddings of the last two blocks side by side
    const two = path.join(root, 'two-blocks.jsonl');
    const t = run('embed', '--checkpoint', checkpoint, '--data', `folder:${folder}`, '--out', two, '--pool', 'mean', '--blocks', '2', '--json');
    expect(t.code, t.stderr).toBe(0);
    expect(JSON.parse(t.stdout)).toMatchObject({ embedded: 8, dim: 64, pool: 'mean', blocks: 2 });
    const twoLines = readFileSync(two, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(twoLines.map((l) => l.embedding.slice(32))).toEqual(lines.map((l) => l.embedding));
    const tooMany = run('embed', '--checkpoint', checkpoint, '--data', `folder:${folder}`, '--out', path.join(root, 'no.npy'), '--blocks', '9');
    expect(tooMany.code).toBe(2);
    expect(tooMany.stderr).toMatch(/--blocks 9: the encoder has 2 blocks/);
  });

  it('never overwrites an existing output without --force', () => {
    const out = path.join(root, 'kept.npy');
    writeFileSync(out, 'mine');
    const r = run('embed', '--checkpoint', checkpoint, '--data', `folder:${folder}`, '--out', out);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`cmae: ${out} exists (pass --force to overwrite it)\n`);
    expect(readFileSync(out, 'utf8')).toBe('mine');
    const forced = run('embed', '--checkpoint', checkpoint, '--data', `folder:${folder}`, '--out', out, '--force');
    expect(forced.code, forced.stderr).toBe(0);
    expect(readNpyRows(out).shape).toEqual([8, 32]);
  });

  it('Ctrl-C stops after the current batch: exit 130 and no file, not even a temporary', async () => {
    const dir = path.join(root, 'interrupted');
    mkdirSync(dir);
    // The bundled MNIST digits (10,000 images) at batch 8: long enough to be interrupted.
    const { code, stdout, stderr } = await interruptCli(/\] \d+\/10000/, 'embed', '--checkpoint', greyCheckpoint, '--data', 'mnist', '--out', path.join(dir, 'e.jsonl'), '--batch-size', '8');
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/interrupted: stopping after the current batch; no output is written/);
    expect(stdout).toMatch(/^interrupted after \d+ of 10000 images; nothing written\n$/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('embeds IDX files, the split chosen by --split, with their labels and no paths', () => {
    const dir = path.join(root, 'idx');
    writeIdxDataset(dir, 12, 3);
    const out = path.join(root, 'idx.jsonl');
    const r = run('embed', '--checkpoint', greyCheckpoint, '--data', `idx:${dir}`, '--split', 'test', '--out', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ data: `idx:${dir}[test]`, images: 12, embedded: 12, skipped: 0 });
    const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => Object.keys(l))).toEqual(Array(12).fill(['index', 'label', 'embedding']));
    expect(lines.map((l) => [l.index, l.label])).toEqual(Array.from({ length: 12 }, (_, i) => [i, i % 3]));
  });

  it('bad checkpoints and arguments: one line, exit code 2, nothing written', async () => {
    // An encoder tensor of the wrong shape is named.
    const file = await readSafetensors(checkpoint);
    const qkv = file.tensors.get('blocks.0.attn.qkv.weight')!;
    file.tensors.set('blocks.0.attn.qkv.weight', { dtype: 'F32', shape: [qkv.shape[0] / 2, qkv.shape[1]], data: (qkv.data as Float32Array).subarray(0, qkv.data.length / 2) });
    const bad = path.join(root, 'bad.safetensors');
    await writeSafetensors(bad, file.tensors, file.metadata);
    const out = path.join(root, 'never.npy');
    const r = run('embed', '--checkpoint', bad, '--data', `folder:${folder}`, '--out', out);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^cmae: .*bad\.safetensors: the tensors do not match metadata\.config \(1 problem\): 'blocks\.0\.attn\.qkv\.weight' is \[48, 32\], the config needs \[96, 32\]\n$/);
    const cases: [string[], RegExp][] = [
      [['--data', `folder:${folder}`, '--out', out], /--checkpoint FILE is required/],
      [['--checkpoint', checkpoint, '--out', out], /--data is required/],
      [['--checkpoint', checkpoint, '--data', `folder:${folder}`], /--out FILE.npy or FILE.jsonl is required/],
      [['--checkpoint', checkpoint, '--data', `folder:${folder}`, '--out', path.join(root, 'e.csv')], /--out must name a .npy or .jsonl file, got/],
      [['--checkpoint', checkpoint, '--data', `folder:${folder}`, '--out', out, '--pool', 'max'], /--pool must be cls, mean or avg/],
      [['--checkpoint', checkpoint, '--data', `folder:${folder}`, '--out', out, '--split', 'test'], /--split is for data with official splits/],
      [['--checkpoint', checkpoint, '--data', 'mnist', '--out', out], /the checkpoint expects 3-channel images, mnist has 1/],
      [['--checkpoint', checkpoint, '--data', `folder:${path.join(root, 'nowhere')}`, '--out', out], /nowhere/],
    ];
    for (const [args, message] of cases) {
      const c = run('embed', ...args);
      expect(c.code, args.join(' ')).toBe(2);
      expect(c.stderr, args.join(' ')).toMatch(message);
      expect(c.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
    expect(existsSync(out)).toBe(false);
    // A folder where no image can be read.
    const junk = path.join(root, 'junk');
    mkdirSync(junk);
    writeFileSync(path.join(junk, 'a.png'), 'no');
    const none = run('embed', '--checkpoint', checkpoint, '--data', `folder:${junk}`, '--out', out);
    expect(none.code).toBe(2);
    expect(none.stdout).toBe('');
    expect(none.stderr).toMatch(/warning: skipped image 0: .*a\.png: cannot decode image[^\n]*\n.*\] 1\/1 .*1 skipped.*\ncmae: no image could be embedded, so nothing was written\n$/);
    expect(existsSync(out)).toBe(false);
  });

  it("a timm fc_norm encoder converted to a cmae checkpoint embeds and exports with its own pool ('avg') unless --pool says otherwise", async () => {
    const { model } = await CMAE.loadEncoder(path.join(__dirname, '..', 'fixtures', 'timm_vit_micro_avg.safetensors'), { heads: 2 });
    const converted = path.join(root, 'converted-avg.safetensors');
    await model.save(converted, { metadata: { normalization: JSON.stringify({ mean: [0.5, 0.45, 0.4], std: [0.25, 0.25, 0.3] }) } });
    model.dispose();
    const rowsOf = async (pool: 'avg' | 'cls') => {
      const rows: Embedding[] = [];
      for await (const row of embed(converted, folder, { pool, onSkip: () => undefined })) rows.push(row);
      return rows.map((e) => Array.from(e.embedding));
    };
    const out = path.join(root, 'converted.jsonl');
    const r = run('embed', '--checkpoint', converted, '--data', `folder:${folder}`, '--out', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).pool).toBe('avg');
    // JSONL holds the shortest decimal of each float32: read back through a Float32Array.
    const read = () => readFileSync(out, 'utf8').trim().split('\n').map((l) => Array.from(Float32Array.from(JSON.parse(l).embedding as number[])));
    const lines = read();
    const avg = await rowsOf('avg');
    expect(lines).toEqual(avg);
    const cls = run('embed', '--checkpoint', converted, '--data', `folder:${folder}`, '--out', out, '--pool', 'cls', '--force', '--json');
    expect(cls.code, cls.stderr).toBe(0);
    const clsLines = read();
    expect(clsLines).toEqual(await rowsOf('cls'));
    expect(clsLines).not.toEqual(avg);
    const onnx = run('export', '--checkpoint', converted, '--onnx', path.join(root, 'converted.onnx'), '--json');
    expect(onnx.code, onnx.stderr).toBe(0);
    expect(JSON.parse(onnx.stdout).pool).toBe('avg');
    const bad = run('embed', '--checkpoint', converted, '--data', `folder:${folder}`, '--out', out, '--pool', 'max', '--force');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe("cmae: --pool must be cls, mean or avg, got 'max'\n");
  });
});
