/**
 * ONNX export: onnxruntime-node runs the exported graph and its outputs match encode() (every
 * element within 1e-4) at two batch sizes, for both poolings and both GELU forms, on weights that
 * are random everywhere (layer-norm gains, biases, cls token, position embeddings included) and
 * after real training steps; the file declares what it uses (standard operators only, each
 * available at the declared opset); the CLI writes it, refuses to overwrite without --force, and
 * names the tensor when a checkpoint does not fit.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AbortError, AdamW, CMAE, Classifier, IOError, ValueError, encodeOnnx, exportOnnx, readSafetensors, writeSafetensors, type CreateOptions } from '../../src/index';
import { ModelProto, encodeModelParts, tensorValueInfo } from '../../src/export/onnx-proto';
import { cliPath, runCli } from '../helpers/fixtures';
import { randn } from '../helpers/check';

const dir = mkdtempSync(path.join(tmpdir(), 'cmae-onnx-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TOL = 1e-4;

/** Every tensor of the model (buffers too) replaced by seeded random values of a sensible scale. */
async function randomModel(options: CreateOptions, seed: number, size = 1): Promise<CMAE> {
  const model = await CMAE.create(options);
  const state = new Map<string, Float32Array>();
  let s = seed;
  for (const p of model.parameters()) {
    const noise = randn(p.numel, s++);
    const isNorm = /norm\d?\.weight$|\.bn\.weight$/.test(p.name);
    const isMatrix = p.shape.length >= 2 && !/token|pos_embed/.test(p.name);
    const scale = (isMatrix ? 1 / Math.sqrt(p.numel / p.shape[0]) : isNorm ? 0.3 : 0.2) * (isNorm ? 1 : size);
    state.set(p.name, noise.map((v) => (isNorm ? 1 : 0) + scale * v));
  }
  model.loadStateDict(state);
  return model;
}

/** A classifier whose every tensor (head and fc_norm included) is seeded random, as randomModel's. */
async function randomClassifier(pool: 'cls' | 'mean', seed: number): Promise<Classifier> {
  const model = await Classifier.create({ preset: 'micro', numClasses: 4, pool, seed });
  const state = new Map<string, Float32Array>();
  let s = seed;
  for (const [name, values] of model.stateDict()) {
    const isNorm = /norm\d?\.weight$/.test(name);
    const noise = randn(values.length, s++);
    state.set(name, noise.map((v) => (isNorm ? 1 + 0.3 * v : (name.endsWith('.weight') ? 0.25 : 0.2) * v)));
  }
  model.loadStateDict(state);
  return model;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= worst)) worst = Number.isNaN(d) ? Infinity : d; // a NaN anywhere fails the bound
  }
  return worst;
}

async function runOnnx(file: string, images: Float32Array, shape: number[], optimized = true): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(file, { graphOptimizationLevel: optimized ? 'all' : 'disabled' });
  try {
    const out = await session.run({ images: new ort.Tensor('float32', images, shape) });
    expect(session.outputNames).toHaveLength(1);
    return out[session.outputNames[0]];
  } finally {
    await session.release();
  }
}

/** For each pooling and batch size: the ONNX file's features vs encode(), every element. */
async function expectMatchesEncode(model: CMAE, label: string, opsets: number[] = [17, 20], branch: 'online' | 'momentum' = 'online'): Promise<void> {
  const { channels: C, imageSize: S, dim: D } = model.config;
  for (const opset of opsets) {
    for (const pool of ['cls', 'mean'] as const) {
      const file = path.join(dir, `${label}-${pool}-${opset}-${branch}.onnx`);
      await exportOnnx(model, file, { pool, opset, branch });
      for (const [n, seed] of [[1, 11], [5, 12]]) {
        const images = randn(n * C * S * S, seed + opset);
        const want = await model.encode(images, { pool, branch });
        // Unoptimised: the graph as written runs; optimised (ORT's fusions) as users run it.
        for (const optimized of [false, true]) {
          const got = await runOnnx(file, images, [n, C, S, S], optimized);
          expect(got.dims, `${label} ${pool}`).toEqual([n, D]);
          expect(got.type).toBe('float32');
          const diff = maxAbsDiff(got.data as Float32Array, want);
          expect(diff, `${label} ${branch} ${pool} opset ${opset} batch ${n} optimized ${optimized}: max |onnx - encode|`).toBeLessThanOrEqual(TOL);
        }
      }
    }
  }
}

describe('encodeModelParts', () => {
  it('gives the bytes of the same ModelProto as a one-shot protobufjs encoding, initializers framed one by one', async () => {
    const model = { irVersion: 8, opsetImport: [{ domain: '', version: 17 }], producerName: 'cmae', metadataProps: [{ key: 'k', value: 'v' }] };
    const graph = {
      name: 'g',
      node: [{ input: ['x', 'w'], output: ['y'], name: 'n', opType: 'MatMul', domain: '', attribute: [{ name: 'a', type: 2, i: 3 }] }],
      input: [tensorValueInfo('x', ['batch', 2])],
      output: [tensorValueInfo('y', ['batch', 300])],
    };
    // One initializer past 128 bytes (a two-byte length varint) and one past 16 KiB (three bytes).
    const initializer = [
      { name: 'w', dims: [2, 300], dataType: 1, rawData: new Uint8Array(2400).map((_, i) => i % 251) },
      { name: 'b', dims: [5000], dataType: 1, rawData: new Uint8Array(20000).map((_, i) => (7 * i) % 253) },
      { name: 'i', dims: [], dataType: 7, rawData: new Uint8Array(8).fill(1) },
    ];
    let pauses = 0;
    const parts = await encodeModelParts(model, graph, initializer, async () => void pauses++);
    expect(pauses).toBe(3);
    const whole = ModelProto.encode(ModelProto.fromObject({ ...model, graph: { ...graph, initializer } })).finish();
    const asObject = (bytes: Uint8Array) => ModelProto.toObject(ModelProto.decode(bytes), { longs: Number, bytes: Array });
    const joined = Buffer.concat(parts);
    expect(joined.length).toBe(whole.length);
    expect(asObject(joined)).toEqual(asObject(whole));
  });
});

describe('exportOnnx', () => {
  let random: CMAE;
  beforeAll(async () => {
    random = await randomModel({ preset: 'micro', seed: 1 }, 100);
  });
  afterAll(() => random.dispose());

  it('matches encode() within 1e-4 on random weights: cls and mean, batch 1 and 5, Erf GELU (opset 17) and Gelu (opset 20)', async () => {
    // The features are far from zero and differ between images: a graph that ignored its input
    // or a weight would not pass by accident.
    const f = await random.encode(randn(2 * 3 * 16 * 16, 5));
    expect(maxAbsDiff(f.subarray(0, 32), f.subarray(32))).toBeGreaterThan(0.1);
    await expectMatchesEncode(random, 'random');
  });

  it('uses the native LayerNorm epsilon: matches encode() where activations are as small as it (variance ~1e-6)', async () => {
    const small = await randomModel({ preset: 'micro', seed: 3 }, 200, 1e-3);
    await expectMatchesEncode(small, 'small', [17]);
    small.dispose();
  });

  it("pool 'avg' (mean of the patch tokens, then the final norm) matches encode(), and is the default of a model whose own pool it is", async () => {
    const file = path.join(dir, 'avg.onnx');
    const info = await exportOnnx(random, file, { pool: 'avg' });
    expect(info.outputs).toEqual([{ name: 'features', shape: ['batch', 32] }]);
    for (const n of [1, 5]) {
      const images = randn(n * 3 * 16 * 16, 95 + n);
      expect(maxAbsDiff((await runOnnx(file, images, [n, 3, 16, 16])).data as Float32Array, await random.encode(images, { pool: 'avg' })), `batch ${n}`).toBeLessThanOrEqual(TOL);
    }
    random.featurePool = 'avg';
    try {
      const byDefault = path.join(dir, 'avg-default.onnx');
      await exportOnnx(random, byDefault);
      const m = ModelProto.toObject(ModelProto.decode(readFileSync(byDefault))) as { metadataProps: { key: string; value: string }[] };
      expect(m.metadataProps.find((e) => e.key === 'cmae.pool')!.value).toBe('avg');
    } finally {
      random.featurePool = 'cls';
    }
    await expect(exportOnnx(random, file, { pool: 'avg', branch: 'momentum', force: true })).rejects.toThrow(/pool 'avg' needs the final norm/);
  });

  it('matches encode() on the momentum branch (no final norm) of a cmae model', async () => {
    await expectMatchesEncode(random, 'random', [17], 'momentum');
  });

  it('matches encode() after training steps, and on another shape (1 channel, 24² images in 6² patches, 4 heads, MLP ratio 2, 3 blocks)', async () => {
    const model = await CMAE.create({ preset: 'micro', seed: 2, channels: 1, heads: 4, mlpRatio: 2, depth: 3, imageSize: 24, patchSize: 6 });
    const opt = new AdamW(model, { lr: 3e-2, weightDecay: 0 });
    for (let step = 0; step < 3; step++) {
      await model.lossAndGrad({ images: randn(4 * 576, 20 + step), targetImages: randn(4 * 576, 30 + step) });
      await opt.step();
      await model.updateMomentum(0.5);
    }
    opt.dispose();
    // Training moved the layer-norm gains and the final norm off their initial ones and zeros.
    const state = model.stateDict();
    for (const name of ['blocks.0.norm1.weight', 'blocks.2.norm2.weight', 'norm.weight', 'norm.bias']) {
      const init = name.endsWith('bias') ? 0 : 1;
      expect(Math.max(...Array.from(state.get(name)!, (v) => Math.abs(v - init))), name).toBeGreaterThan(1e-3);
    }
    await expectMatchesEncode(model, 'trained', [17]);
    await expectMatchesEncode(model, 'trained', [17], 'momentum');
    model.dispose();
  });

  it('writes a graph of standard operators at the declared opset, with a dynamic batch axis and the float32 weights', async () => {
    // Each operator the export may use, with the opset that introduced its current form.
    const since: Record<string, number> = {
      Conv: 11, Reshape: 14, Transpose: 13, Add: 14, Mul: 14, Shape: 15, Concat: 13, Expand: 13, LayerNormalization: 17, MatMul: 13,
      Gather: 13, Softmax: 13, Erf: 13, Gelu: 20, Slice: 13, ReduceMean: 1, Gemm: 13,
    };
    const state = random.stateDict();
    for (const [opset, ir] of [[17, 8], [18, 8], [20, 9], [21, 10]]) {
      for (const pool of ['cls', 'mean'] as const) {
        const file = path.join(dir, `graph-${pool}-${opset}.onnx`);
        const info = await exportOnnx(random, file, { pool, opset });
        const bytes = readFileSync(file);
        expect(info.bytes).toBe(bytes.length);
        const m = ModelProto.toObject(ModelProto.decode(bytes), { longs: Number, bytes: Buffer, defaults: false }) as {
          irVersion: number; opsetImport: { domain?: string; version: number }[];
          graph: { node: { opType: string; domain?: string }[]; initializer: { name: string; dims?: number[]; dataType: number; rawData: Buffer }[]; input: { name: string; type: unknown }[]; output: { name: string; type: unknown }[] };
          metadataProps: { key: string; value: string }[];
        };
        expect(m.irVersion).toBe(ir);
        expect(m.opsetImport).toEqual([{ version: opset }]);
        const ops = new Set(m.graph.node.map((n) => n.opType));
        for (const n of m.graph.node) {
          expect(n.domain ?? '', n.opType).toBe('');
          expect(since[n.opType], `${n.opType} is not in the expected set`).toBeDefined();
          expect(since[n.opType], n.opType).toBeLessThanOrEqual(opset);
        }
        expect(ops.has('Gelu')).toBe(opset >= 20);
        expect(ops.has('Erf')).toBe(opset < 20);
        expect(ops.has('LayerNormalization') && ops.has('Softmax')).toBe(true);
        // The only graph input is the images, batch axis symbolic; the output is [batch, dim].
        expect(m.graph.input.map((v) => v.name)).toEqual(['images']);
        expect(m.graph.input[0].type).toEqual({ tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'batch' }, { dimValue: 3 }, { dimValue: 16 }, { dimValue: 16 }] } } });
        expect(m.graph.output[0].type).toEqual({ tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'batch' }, { dimValue: 32 }] } } });
        expect(info.inputs).toEqual([{ name: 'images', shape: ['batch', 3, 16, 16] }]);
        expect(info.outputs).toEqual([{ name: 'features', shape: ['batch', 32] }]);
        // Weights are float32 initializers holding the model's values (Linear weights transposed for MatMul).
        const init = new Map(m.graph.initializer.map((t) => [t.name, t]));
        // Each constant is stored once (the builder renames a repeated name to name:N).
        expect(m.graph.initializer.map((t) => t.name).filter((n) => n.includes(':'))).toEqual([]);
        const floats = (name: string): Float32Array => {
          const t = init.get(name)!;
          expect(t.dataType, name).toBe(1);
          return new Float32Array(new Uint8Array(t.rawData).buffer);
        };
        expect(Array.from(floats('blocks.1.norm2.weight'))).toEqual(Array.from(state.get('blocks.1.norm2.weight')!));
        expect(Array.from(floats('patch_embed.proj.weight'))).toEqual(Array.from(state.get('patch_embed.proj.weight')!));
        expect(init.get('patch_embed.proj.weight')!.dims).toEqual([32, 3, 4, 4]);
        const qkvT = floats('blocks.0.attn.qkv.weight.T');
        const qkv = state.get('blocks.0.attn.qkv.weight')!; // [96, 32]
        expect(init.get('blocks.0.attn.qkv.weight.T')!.dims).toEqual([32, 96]);
        for (const [o, i] of [[0, 0], [95, 31], [40, 7]]) expect(qkvT[i * 96 + o]).toBe(qkv[o * 32 + i]);
        expect(Object.fromEntries(m.metadataProps.map((e) => [e.key, e.value]))).toMatchObject({ 'cmae.pool': pool, 'cmae.branch': 'online' });
      }
    }
  });

  it('adds a linear classifier head: logits = features · Wᵀ + b, matching encode() within 1e-4', async () => {
    const D = 32;
    const K = 3;
    const weight = { shape: [K, D], data: randn(K * D, 7, 0.3) };
    const bias = { shape: [K], data: randn(K, 8) };
    for (const pool of ['cls', 'mean'] as const) {
      const file = path.join(dir, `head-${pool}.onnx`);
      const info = await exportOnnx(random, file, { pool, classifier: { weight, bias } });
      expect(info.outputs).toEqual([{ name: 'logits', shape: ['batch', K] }]);
      for (const n of [1, 5]) {
        const images = randn(n * 3 * 16 * 16, 40 + n);
        const f = await random.encode(images, { pool });
        const want = new Float64Array(n * K);
        for (let r = 0; r < n; r++) {
          for (let k = 0; k < K; k++) {
            let acc = bias.data[k];
            for (let d = 0; d < D; d++) acc += f[r * D + d] * weight.data[k * D + d];
            want[r * K + k] = acc;
          }
        }
        const got = await runOnnx(file, images, [n, 3, 16, 16]);
        expect(got.dims).toEqual([n, K]);
        expect(maxAbsDiff(got.data as Float32Array, want), `${pool} batch ${n}`).toBeLessThanOrEqual(TOL);
      }
    }
  });

  it('with fc_norm (MAE\'s global-pool head) the final norm moves after the pooling: logits = LN_fc(mean of patch tokens) · Wᵀ + b', async () => {
    // The reference: the momentum branch of a model whose momentum encoder is a copy of the online
    // one is encode() without the final norm; fc_norm and the head are applied here in float64.
    const model = await CMAE.create({ preset: 'micro' });
    model.loadStateDict(new Map([...random.stateDict()].filter(([name]) => !name.startsWith('momentum_'))), { strict: false });
    const D = 32;
    const K = 5;
    const head = {
      weight: { shape: [K, D], data: randn(K * D, 13, 0.3) },
      bias: { shape: [K], data: randn(K, 14) },
      norm: { weight: { shape: [D], data: randn(D, 15, 0.3).map((v) => 1 + v) }, bias: { shape: [D], data: randn(D, 16, 0.2) } },
    };
    const file = path.join(dir, 'head-fc-norm.onnx');
    await exportOnnx(model, file, { pool: 'mean', classifier: head });
    const m = ModelProto.toObject(ModelProto.decode(readFileSync(file))) as { graph: { initializer: { name: string }[] } };
    const names = m.graph.initializer.map((t) => t.name);
    expect(names).toContain('fc_norm.weight');
    expect(names).not.toContain('norm.weight');
    for (const n of [1, 5]) {
      const images = randn(n * 3 * 16 * 16, 80 + n);
      const pooled = await model.encode(images, { pool: 'mean', branch: 'momentum' });
      const want = new Float64Array(n * K);
      for (let r = 0; r < n; r++) {
        const row = Array.from(pooled.subarray(r * D, (r + 1) * D));
        const mean = row.reduce((a, b) => a + b, 0) / D;
        const rstd = 1 / Math.sqrt(row.reduce((a, b) => a + (b - mean) ** 2, 0) / D + 1e-6);
        const normed = row.map((v, d) => (v - mean) * rstd * head.norm.weight.data[d] + head.norm.bias.data[d]);
        for (let k = 0; k < K; k++) want[r * K + k] = normed.reduce((acc, v, d) => acc + v * head.weight.data[k * D + d], head.bias.data[k]);
      }
      expect(maxAbsDiff((await runOnnx(file, images, [n, 3, 16, 16])).data as Float32Array, want), `batch ${n}`).toBeLessThanOrEqual(TOL);
    }
    model.dispose();
  });

  it('exports a fine-tuned Classifier whole: logits match predict() within 1e-4, for each pool, batch 1 and 5', async () => {
    for (const pool of ['cls', 'mean'] as const) {
      const clf = await randomClassifier(pool, 500);
      const file = path.join(dir, `classifier-${pool}.onnx`);
      const info = await exportOnnx(clf, file);
      expect(info.outputs).toEqual([{ name: 'logits', shape: ['batch', 4] }]);
      for (const n of [1, 5]) {
        const images = randn(n * 3 * 16 * 16, 80 + n);
        const got = await runOnnx(file, images, [n, 3, 16, 16]);
        expect(got.dims).toEqual([n, 4]);
        expect(maxAbsDiff(got.data as Float32Array, await clf.predict(images)), `${pool} batch ${n}`).toBeLessThanOrEqual(TOL);
      }
      const other = pool === 'cls' ? 'mean' : 'cls';
      await expect(exportOnnx(clf, file, { pool: other, force: true })).rejects.toThrow(new RegExp(`options\\.pool: this Classifier pools with '${pool}'`));
      await expect(exportOnnx(clf, file, { branch: 'momentum', force: true })).rejects.toThrow(/options\.branch: a Classifier has the online encoder only/);
      await expect(exportOnnx(clf, file, { classifier: { weight: { shape: [4, 32], data: new Float32Array(128) }, bias: { shape: [4], data: new Float32Array(4) } }, force: true }))
        .rejects.toThrow(/options\.classifier: a Classifier exports its own head/);
      clf.dispose();
    }
  });

  it('rejects bad options and heads with a typed error naming what is wrong', async () => {
    const file = path.join(dir, 'never.onnx');
    const head = (w: number[], b: number[]) => ({ weight: { shape: w, data: new Float32Array(w.reduce((x, y) => x * y, 1)) }, bias: { shape: b, data: new Float32Array(b[0]) } });
    const cases: [object, RegExp][] = [
      [{ pool: 'max' }, /options\.pool must be 'cls', 'mean' or 'avg', got "max"/],
      [{ opset: 16 }, /options\.opset must be one of 17, 18, 19, 20, 21, got 16/],
      [{ branch: 'teacher' }, /options\.branch/],
      [{ classifier: head([3, 33], [3]) }, /head\.weight is \[3, 33\], the encoder's width 32 needs \[numClasses, 32\]/],
      [{ classifier: head([3, 32], [4]) }, /head\.bias is \[4\], head\.weight \[3, 32\] needs \[3\]/],
      [{ classifier: { weight: { shape: [3, 32], data: [1, 2] }, bias: head([3, 32], [3]).bias } }, /classifier\.weight must be/],
      [{ classifier: { ...head([3, 32], [3]), norm: { weight: { shape: [31], data: new Float32Array(31) }, bias: { shape: [32], data: new Float32Array(32) } } } }, /fc_norm\.weight is \[31\], the encoder's width needs \[32\]/],
      [{ force: 'yes' }, /options\.force must be a boolean/],
      [{ normalization: { mean: [0.5], std: [0.2, 0.2, 0.2] } }, /options\.normalization\.mean must be 3 finite numbers \(one per channel\), got \[0\.5\]/],
      [{ normalization: { mean: [0, 0, 0], std: [0.2, 0, 0.2] } }, /options\.normalization\.std must be 3 finite numbers > 0/],
    ];
    for (const [options, message] of cases) await expect(exportOnnx(random, file, options as never)).rejects.toThrow(message);
    await expect(exportOnnx(random, file, { pool: 'max' } as never)).rejects.toBeInstanceOf(ValueError);
    expect(existsSync(file)).toBe(false);
    const mae = await CMAE.create({ preset: 'micro', mode: 'mae' });
    await expect(exportOnnx(mae, file, { branch: 'momentum' })).rejects.toThrow(/a mae model has no momentum branch/);
    mae.dispose();
    // A state that does not fit the configuration names the tensor.
    const state = random.stateDict();
    state.set('blocks.1.mlp.fc1.weight', new Float32Array(10));
    await expect(encodeOnnx(random.config, state)).rejects.toThrow(/tensor 'blocks\.1\.mlp\.fc1\.weight' has 10 values, the encoder needs \[128, 32\]/);
    state.set('blocks.1.mlp.fc1.weight', random.stateDict().get('blocks.1.mlp.fc1.weight')!);
    state.delete('norm.bias');
    await expect(encodeOnnx(random.config, random.stateDict().set('norm.bias', new Float32Array(0)))).rejects.toThrow(/tensor 'norm\.bias' has 0 values/);
    await expect(encodeOnnx(random.config, state)).rejects.toThrow(/the state has no float32 tensor 'norm\.bias' \[32\]/);
  });

  it('can be cancelled through an AbortSignal: an AbortError, nothing written', async () => {
    const file = path.join(dir, 'aborted.onnx');
    const controller = new AbortController();
    const pending = exportOnnx(random, file, { signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(AbortError);
    expect(existsSync(file)).toBe(false);
    await expect(exportOnnx(random, file, { signal: 'stop' as never })).rejects.toThrow(/options\.signal must be an AbortSignal/);
  });

  it('never overwrites an existing file unless force, and leaves no temporary files', async () => {
    const sub = mkdtempSync(path.join(dir, 'force-'));
    const file = path.join(sub, 'model.onnx');
    writeFileSync(file, 'precious');
    const err = await exportOnnx(random, file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IOError);
    expect((err as Error).message).toMatch(/model\.onnx already exists/);
    expect(readFileSync(file, 'utf8')).toBe('precious');
    await exportOnnx(random, file, { force: true });
    expect((await runOnnx(file, randn(3 * 16 * 16, 1), [1, 3, 16, 16])).dims).toEqual([1, 32]);
    expect(readdirSync(sub)).toEqual(['model.onnx']);
  });
});

describe('cmae export', () => {
  let ckpt: string;
  let model: CMAE;
  const normalization = { mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] };
  beforeAll(async () => {
    if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: build the TypeScript first (npm run build:ts)`);
    model = await randomModel({ preset: 'micro', seed: 4 }, 300);
    ckpt = path.join(dir, 'ckpt.safetensors');
    await model.save(ckpt, { metadata: { normalization: JSON.stringify(normalization) } });
  });
  afterAll(() => model.dispose());

  /** A copy of the checkpoint with tensors added or replaced. */
  async function variant(name: string, tensors: Record<string, { shape: number[]; data: Float32Array }>): Promise<string> {
    const file = await readSafetensors(ckpt);
    for (const [k, v] of Object.entries(tensors)) file.tensors.set(k, { dtype: 'F32', ...v });
    const out = path.join(dir, name);
    await writeSafetensors(out, file.tensors, file.metadata);
    return out;
  }

  it('writes an ONNX file that onnxruntime runs with features matching encode(), and says what it wrote', async () => {
    const out = path.join(dir, 'cli-mean.onnx');
    const r = runCli('export', '--checkpoint', ckpt, '--onnx', out, '--pool', 'mean');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^wrote .*cli-mean\.onnx \(\d+\.\d KiB, opset 17, IR version 8, \d+ nodes, \d+ initializers\)/);
    expect(r.stdout).toMatch(/input +images \[batch, 3, 16, 16\] float32/);
    expect(r.stdout).toMatch(/output +features \[batch, 32\] float32 \(mean features\)/);
    expect(r.stdout).toContain('mean [0.5,0.4,0.3], std [0.2,0.25,0.3]');
    for (const n of [1, 5]) {
      const images = randn(n * 3 * 16 * 16, 60 + n);
      expect(maxAbsDiff((await runOnnx(out, images, [n, 3, 16, 16])).data as Float32Array, await model.encode(images, { pool: 'mean' }))).toBeLessThanOrEqual(TOL);
    }
    // --json: one line; the file records the normalisation.
    const j = runCli('export', '--checkpoint', ckpt, '--onnx', path.join(dir, 'cli.onnx'), '--opset', '20', '--json');
    expect(j.code, j.stderr).toBe(0);
    const summary = JSON.parse(j.stdout);
    expect(summary).toMatchObject({ opset: 20, irVersion: 9, pool: 'cls', classifier: false, normalization, outputs: [{ name: 'features', shape: ['batch', 32] }] });
    const m = ModelProto.toObject(ModelProto.decode(readFileSync(path.join(dir, 'cli.onnx')))) as { metadataProps: { key: string; value: string }[] };
    expect(JSON.parse(m.metadataProps.find((e) => e.key === 'cmae.normalization')!.value)).toEqual(normalization);
  });

  it('refuses to overwrite an existing file without --force', () => {
    const out = path.join(dir, 'cli-exists.onnx');
    writeFileSync(out, 'keep me');
    const r = runCli('export', '--checkpoint', ckpt, '--onnx', out);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`cmae: ${out} already exists (pass --force to overwrite it)\n`);
    expect(readFileSync(out, 'utf8')).toBe('keep me');
    const f = runCli('export', '--checkpoint', ckpt, '--onnx', out, '--force');
    expect(f.code, f.stderr).toBe(0);
    expect(readFileSync(out).length).toBeGreaterThan(10_000);
  });

  it('--classifier exports the checkpoint\'s head.weight / head.bias: logits match encode() · Wᵀ + b', async () => {
    const W = randn(4 * 32, 9, 0.3);
    const b = randn(4, 10);
    const withHead = await variant('with-head.safetensors', { 'head.weight': { shape: [4, 32], data: W }, 'head.bias': { shape: [4], data: b } });
    const out = path.join(dir, 'cli-head.onnx');
    const r = runCli('export', '--checkpoint', withHead, '--onnx', out, '--classifier');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/output +logits \[batch, 4\] float32 \(linear head on cls features\)/);
    const images = randn(5 * 3 * 16 * 16, 70);
    const f = await model.encode(images);
    const want = Array.from({ length: 20 }, (_, i) => {
      const [row, k] = [Math.floor(i / 4), i % 4];
      let acc = b[k];
      for (let d = 0; d < 32; d++) acc += f[row * 32 + d] * W[k * 32 + d];
      return acc;
    });
    expect(maxAbsDiff((await runOnnx(out, images, [5, 3, 16, 16])).data as Float32Array, want)).toBeLessThanOrEqual(TOL);
  });

  it('--classifier exports a cmae finetune checkpoint with its own pool and head: logits match predict()', async () => {
    for (const pool of ['cls', 'mean'] as const) {
      const clf = await randomClassifier(pool, 600);
      const file = path.join(dir, `finetuned-${pool}.safetensors`);
      await clf.save(file);
      const out = path.join(dir, `cli-finetuned-${pool}.onnx`);
      const r = runCli('export', '--checkpoint', file, '--onnx', out, '--classifier');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`output +logits \\[batch, 4\\] float32 \\(linear head on ${pool} features${pool === 'mean' ? ' after fc_norm' : ''}\\)`));
      const images = randn(5 * 3 * 16 * 16, 90);
      expect(maxAbsDiff((await runOnnx(out, images, [5, 3, 16, 16])).data as Float32Array, await clf.predict(images))).toBeLessThanOrEqual(TOL);
      // Without --classifier, or with the other pool: one line, exit code 2, nothing written.
      const other = pool === 'cls' ? 'mean' : 'cls';
      for (const [flags, message] of [
        [[], /is a classifier checkpoint \(cmae finetune wrote it\): pass --classifier/],
        [['--classifier', '--pool', other], new RegExp(`--pool ${other}: .* is a classifier fine-tuned on '${pool}' features`)],
      ] as [string[], RegExp][]) {
        const refused = path.join(dir, `refused-${pool}-${flags.length}.onnx`);
        const e = runCli('export', '--checkpoint', file, '--onnx', refused, ...flags);
        expect(e.code, flags.join(' ')).toBe(2);
        expect(e.stderr.split('\n').filter(Boolean)).toHaveLength(1);
        expect(e.stderr).toMatch(message);
        expect(existsSync(refused)).toBe(false);
      }
      clf.dispose();
    }
  });

  it('a checkpoint that does not fit the export is one line naming the tensor, exit code 2, nothing written', async () => {
    const cases: [string, Record<string, { shape: number[]; data: Float32Array }>, string[], RegExp][] = [
      ['bad-qkv.safetensors', { 'blocks.0.attn.qkv.weight': { shape: [96, 33], data: new Float32Array(96 * 33) } }, [], /'blocks\.0\.attn\.qkv\.weight' is \[96, 33\], the config needs \[96, 32\]/],
      ['no-head.safetensors', {}, ['--classifier'], /no tensor 'head\.weight' \(--classifier needs head\.weight \[numClasses, dim\] and head\.bias \[numClasses\]\)/],
      ['half-fc-norm.safetensors', { 'head.weight': { shape: [4, 32], data: new Float32Array(128) }, 'head.bias': { shape: [4], data: new Float32Array(4) }, 'fc_norm.weight': { shape: [32], data: new Float32Array(32) } }, ['--classifier'], /no tensor 'fc_norm\.bias'/],
      ['bad-head.safetensors', { 'head.weight': { shape: [4, 16], data: new Float32Array(64) }, 'head.bias': { shape: [4], data: new Float32Array(4) } }, ['--classifier'], /head\.weight is \[4, 16\], the encoder's width 32 needs \[numClasses, 32\]/],
    ];
    for (const [name, tensors, flags, message] of cases) {
      const file = await variant(name, tensors);
      const out = path.join(dir, `${name}.onnx`);
      const r = runCli('export', '--checkpoint', file, '--onnx', out, ...flags);
      expect(r.code, name).toBe(2);
      expect(r.stderr.split('\n').filter(Boolean), name).toHaveLength(1);
      expect(r.stderr, name).toMatch(message);
      expect(existsSync(out), name).toBe(false);
    }
    const usage: [string[], RegExp][] = [
      [['--onnx', 'x.onnx'], /--checkpoint FILE is required/],
      [['--checkpoint', ckpt], /--onnx FILE is required/],
      [['--checkpoint', ckpt, '--onnx', 'x.onnx', '--pool', 'max'], /--pool must be cls, mean or avg, got 'max'/],
      [['--checkpoint', ckpt, '--onnx', 'x.onnx', '--opset', '13'], /--opset must be one of 17, 18, 19, 20, 21, got '13'/],
    ];
    for (const [args, message] of usage) {
      const r = runCli('export', ...args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});
