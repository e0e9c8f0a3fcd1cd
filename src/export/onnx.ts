/**
 * ONNX export of the ViT encoder (optionally with a linear classification head): a graph of
 * standard ONNX operators that computes what CMAE.encode() computes, with float32 weights as
 * initializers and a dynamic batch axis, encoded by protobufjs (./onnx-proto.ts holds the schema).
 *
 * The graph mirrors the native encoder (native/model/cmae_model.cc embed_tokens + encode,
 * native/model/vit.cc TransformerStack::forward), step by step:
 *   patch embedding   Conv(kernel = stride = patch) → [N, D, g, g] → [N, L, D] (the conv weight is
 *                     the native patch Linear's, channels-first, patches in row-major order)
 *   + pos_embed[1:]   (row 0, the cls row, is not added: the native model copies the cls token alone)
 *   cls token         Expand to [N, 1, D], Concat in front → [N, 1 + L, D]
 *   depth × timm Block (pre-norm): x += proj(attention(qkv(LN1(x)))); x += fc2(GELU(fc1(LN2(x))))
 *                     LayerNormalization eps 1e-6 (native kLayerNormEps); attention softmax(q·kᵀ·hd^-0.5)·v
 *                     with timm's qkv layout; GELU exact (erf), as native/core/math.h: Erf-based
 *                     below opset 20, the Gelu operator from 20
 *   final norm        online branch only (encode()'s momentum branch has none)
 *   pool              'cls': row 0; 'mean': the mean of the patch rows 1..L (the cls row excluded)
 *   head (optional)   Gemm(features, head.weight, head.bias, transB = 1) → logits [N, K]; with
 *                     fc_norm (MAE's global-pool fine-tuning) the final norm moves after the pooling
 */
import { AbortError, ValueError } from '../errors';
import { objectArg, stringArg } from '../args';
import { writeFileAtomic } from '../io/atomic';
import { littleEndianBytes } from '../io/safetensors';
import { methods, type ModelConfig } from '../models/config';
import { info } from '../runtime';
import type { CMAE } from '../models/cmae';
import { Classifier, type ClassifierConfig } from '../models/classifier';
import type { FeaturePool } from '../models/cmae';
import {
  AttributeType, DataType, encodeModelParts, tensorValueInfo,
  type Attribute, type Dim, type Initializer, type Node, type ValueInfo,
} from './onnx-proto';

/** The opsets an export may declare, with the oldest IR version that carries each. */
const IR_VERSION_FOR_OPSET: Readonly<Record<number, number>> = { 17: 8, 18: 8, 19: 9, 20: 9, 21: 10 };
export const SUPPORTED_OPSETS: readonly number[] = Object.keys(IR_VERSION_FOR_OPSET).map(Number);
export const DEFAULT_OPSET = 17;

/** The native encoder's LayerNorm epsilon (native/model/vit.h kLayerNormEps). */
const LAYER_NORM_EPS = 1e-6;

/** A tensor with its shape, as a checkpoint holds it (e.g. a SafeTensorEntry). */
export interface ShapedTensor {
  shape: readonly number[];
  data: Float32Array;
}

/** A linear classification head on the pooled features: logits = features · weightᵀ + bias. */
export interface OnnxClassifierHead {
  /** [numClasses, dim], PyTorch's nn.Linear layout (`head.weight`). */
  weight: ShapedTensor;
  /** [numClasses] (`head.bias`). */
  bias: ShapedTensor;
  /**
   * MAE's fine-tuning with global pooling (`fc_norm`, [dim] each): the encoder's final norm is
   * left out and this LayerNorm is applied to the pooled features instead, before the head.
   */
  norm?: { weight: ShapedTensor; bias: ShapedTensor };
}

export interface OnnxExportOptions {
  /**
   * Features as encode() pools them: the cls token ('cls', the default), the mean of the patch
   * tokens ('mean'), or their mean, then the final norm ('avg': a timm fc_norm encoder's).
   */
  pool?: FeaturePool;
  /** Which encoder, as encode()'s option: 'online' (the default, with the final norm) or 'momentum'. */
  branch?: 'online' | 'momentum';
  /** The ONNX opset to declare: 17 (the default) to 21. From 20 GELU is the Gelu operator. */
  opset?: number;
  /** Adds a linear head after the pooling; the graph's output is then `logits` instead of `features`. */
  classifier?: OnnxClassifierHead;
  /** Per-channel normalisation the model was trained with (recorded in the file's metadata). */
  normalization?: { mean: number[]; std: number[] };
  /** Overwrite an existing file at the path. Default false: an existing file is an IOError. */
  force?: boolean;
  /** Cancels the export (an AbortError; nothing is written). */
  signal?: AbortSignal;
}

/** What an export wrote: for a caller's report (the CLI prints it). */
export interface OnnxExportInfo {
  path: string;
  bytes: number;
  opset: number;
  irVersion: number;
  inputs: { name: string; shape: Dim[] }[];
  outputs: { name: string; shape: Dim[] }[];
  nodes: number;
  initializers: number;
}

/** Graph-building helpers: nodes with unique generated output names, initializers. */
class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly initializers: Initializer[] = [];
  private readonly used = new Set<string>();
  private counter = 0;

  /** `hint`, or `hint:N` if taken: every value of the graph has one name (initializers and node outputs share a namespace). */
  private fresh(hint: string): string {
    let name = hint;
    while (this.used.has(name)) name = `${hint}:${++this.counter}`;
    this.used.add(name);
    return name;
  }

  /** A float32 initializer (the data is copied into the file as little-endian bytes). */
  float(name: string, dims: readonly number[], data: Float32Array): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (data.length !== n) throw new ValueError(`internal: initializer '${name}' has ${data.length} values for [${dims.join(', ')}]`);
    const out = this.fresh(name);
    this.initializers.push({ name: out, dims: [...dims], dataType: DataType.FLOAT, rawData: littleEndianBytes(data) });
    return out;
  }

  /** An int64 initializer (shapes, axes, indices); dims [] for a scalar. */
  int64(name: string, values: readonly (number | bigint)[], dims: readonly number[] = [values.length]): string {
    const out = this.fresh(name);
    const data = BigInt64Array.from(values, (v) => BigInt(v));
    this.initializers.push({ name: out, dims: [...dims], dataType: DataType.INT64, rawData: littleEndianBytes(data) });
    return out;
  }

  /** Appends a node; returns the name of its (single) output. */
  node(opType: string, inputs: string[], output: string, attribute: Attribute[] = []): string {
    const out = this.fresh(output);
    this.nodes.push({ input: inputs, output: [out], name: `${opType}_${this.nodes.length}`, opType, domain: '', attribute });
    return out;
  }
}

const attr = {
  int: (name: string, i: number): Attribute => ({ name, type: AttributeType.INT, i }),
  float: (name: string, f: number): Attribute => ({ name, type: AttributeType.FLOAT, f }),
  ints: (name: string, ints: number[]): Attribute => ({ name, type: AttributeType.INTS, ints }),
  string: (name: string, s: string): Attribute => ({ name, type: AttributeType.STRING, s: new TextEncoder().encode(s) }),
};

/** [rows, cols] row-major → [cols, rows]: nn.Linear's [out, in] weight as MatMul's right operand [in, out]. */
function transpose2d(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

/**
 * The encoder (and head) as an ONNX ModelProto, encoded as the consecutive parts of one file
 * (`bytes` in all). `state` holds the model's tensors by timm
 * name (CMAE.stateDict()); the tensors the graph reads are checked against `config` by element
 * count, naming the first that does not fit. Most callers want exportOnnx().
 */
export async function encodeOnnx(config: ModelConfig | ClassifierConfig, state: ReadonlyMap<string, Float32Array>, options: Omit<OnnxExportOptions, 'force'> = {}): Promise<{ parts: Uint8Array[]; bytes: number; info: Omit<OnnxExportInfo, 'path' | 'bytes'> }> {
  const { pool = 'cls', branch = 'online', opset = DEFAULT_OPSET, classifier, normalization, signal } = objectArg(options, 'options', true);
  if (pool !== 'cls' && pool !== 'mean' && pool !== 'avg') throw new ValueError(`options.pool must be 'cls', 'mean' or 'avg', got ${JSON.stringify(pool)}`);
  if (branch !== 'online' && branch !== 'momentum') throw new ValueError(`options.branch must be 'online' or 'momentum', got ${JSON.stringify(branch)}`);
  if (!SUPPORTED_OPSETS.includes(opset)) throw new ValueError(`options.opset must be one of ${SUPPORTED_OPSETS.join(', ')}, got ${String(opset)}`);
  if (normalization !== undefined) {
    objectArg(normalization, 'options.normalization');
    for (const key of ['mean', 'std'] as const) {
      const v = normalization[key];
      if (!Array.isArray(v) || v.length !== config.channels || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && (key === 'mean' || x > 0))) {
        throw new ValueError(`options.normalization.${key} must be ${config.channels} finite numbers${key === 'std' ? ' > 0' : ''} (one per channel), got ${JSON.stringify(v)}`);
      }
    }
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new ValueError('options.signal must be an AbortSignal');
  if (branch === 'momentum' && (config.mode === 'classifier' || !methods[config.mode].momentum)) throw new ValueError(`options.branch: a ${config.mode} model has no momentum branch`);
  // 'avg' normalises after the pooling, with the online branch's final norm.
  const normAfterPool = pool === 'avg';
  if (normAfterPool && branch === 'momentum') throw new ValueError("options.pool 'avg' needs the final norm, which only the online branch has");
  if (normAfterPool && classifier?.norm) throw new ValueError("options.classifier.norm: pool 'avg' already normalises the pooled features (leave the norm out, or pool 'mean')");
  if (branch === 'momentum' && classifier) throw new ValueError('options.classifier: a classifier head sits on the online encoder (branch \'online\')');

  const { imageSize: S, channels: C, patchSize: p, dim: D, heads: H, depth, mlpRatio } = config;
  const grid = Math.floor(S / p);
  const L = grid * grid;
  const hd = D / H;
  const hidden = D * mlpRatio;
  const shapes = new Map<string, number[]>();
  const prefix = branch === 'momentum' ? 'momentum_encoder.' : '';
  shapes.set(`${prefix}patch_embed.proj.weight`, [D, C, p, p]).set(`${prefix}patch_embed.proj.bias`, [D]).set(`${prefix}cls_token`, [1, 1, D]).set('pos_embed', [1, 1 + L, D]);
  for (let i = 0; i < depth; i++) {
    const b = `${prefix}blocks.${i}.`;
    shapes.set(`${b}norm1.weight`, [D]).set(`${b}norm1.bias`, [D]).set(`${b}attn.qkv.weight`, [3 * D, D]).set(`${b}attn.qkv.bias`, [3 * D]);
    shapes.set(`${b}attn.proj.weight`, [D, D]).set(`${b}attn.proj.bias`, [D]).set(`${b}norm2.weight`, [D]).set(`${b}norm2.bias`, [D]);
    shapes.set(`${b}mlp.fc1.weight`, [hidden, D]).set(`${b}mlp.fc1.bias`, [hidden]).set(`${b}mlp.fc2.weight`, [D, hidden]).set(`${b}mlp.fc2.bias`, [D]);
  }
  const fcNorm = classifier?.norm;
  if (branch === 'online' && !fcNorm) shapes.set('norm.weight', [D]).set('norm.bias', [D]);
  const tensor = (name: string): Float32Array => {
    const data = state.get(name);
    const shape = shapes.get(name)!;
    const n = shape.reduce((a, b) => a * b, 1);
    if (!(data instanceof Float32Array)) throw new ValueError(`the state has no float32 tensor '${name}' [${shape.join(', ')}]`);
    if (data.length !== n) throw new ValueError(`tensor '${name}' has ${data.length} values, the encoder needs [${shape.join(', ')}] (${n})`);
    return data;
  };
  for (const name of shapes.keys()) tensor(name);
  let numClasses = 0;
  if (classifier) {
    objectArg(classifier, 'options.classifier');
    numClasses = checkHead(classifier, D);
  }

  const g = new GraphBuilder();
  const INPUT = 'images';
  // ---- patch embedding, cls token, position embeddings
  const conv = g.node('Conv', [INPUT, g.float(`${prefix}patch_embed.proj.weight`, [D, C, p, p], tensor(`${prefix}patch_embed.proj.weight`)), g.float(`${prefix}patch_embed.proj.bias`, [D], tensor(`${prefix}patch_embed.proj.bias`))], 'patch_embed', [
    attr.ints('kernel_shape', [p, p]), attr.ints('strides', [p, p]),
  ]);
  const flat = g.node('Reshape', [conv, g.int64('shape_N_D_L', [0, D, L])], 'patch_embed_flat');
  const tokens = g.node('Transpose', [flat], 'patch_tokens', [attr.ints('perm', [0, 2, 1])]);
  // pos_embed rows 1..L: the native model adds them to the patch tokens only (its cls row is never added).
  const pos = tensor('pos_embed').subarray(D);
  const placed = g.node('Add', [tokens, g.float('pos_embed.patches', [1, L, D], pos)], 'patch_tokens_pos');
  const batch = g.node('Shape', [INPUT], 'batch_size', [attr.int('start', 0), attr.int('end', 1)]);
  const clsShape = g.node('Concat', [batch, g.int64('shape_1_D', [1, D])], 'cls_shape', [attr.int('axis', 0)]);
  const cls = g.node('Expand', [g.float(`${prefix}cls_token`, [1, 1, D], tensor(`${prefix}cls_token`)), clsShape], 'cls_rows');
  let x = g.node('Concat', [cls, placed], 'tokens', [attr.int('axis', 1)]);

  // ---- transformer blocks
  const layerNorm = (inp: string, name: string, weight = tensor(`${name}.weight`), bias = tensor(`${name}.bias`)): string =>
    g.node('LayerNormalization', [inp, g.float(`${name}.weight`, [D], weight), g.float(`${name}.bias`, [D], bias)], name, [
      attr.int('axis', -1), attr.float('epsilon', LAYER_NORM_EPS),
    ]);
  const linear = (inp: string, name: string, inDim: number, outDim: number): string => {
    const w = g.float(`${name}.weight.T`, [inDim, outDim], transpose2d(tensor(`${name}.weight`), outDim, inDim));
    return g.node('Add', [g.node('MatMul', [inp, w], `${name}.matmul`), g.float(`${name}.bias`, [outDim], tensor(`${name}.bias`))], name);
  };
  // 0.5·x·(1 + erf(x/√2)): nn.GELU's exact form, as the kernels compute it (native/core/math.h).
  const erfConstants = opset >= 20 ? undefined : ([Math.SQRT1_2, 1, 0.5] as const).map((v, j) => g.float(['inv_sqrt2', 'one', 'half'][j], [], Float32Array.of(v)));
  const gelu = (inp: string, name: string): string => {
    if (!erfConstants) return g.node('Gelu', [inp], name, [attr.string('approximate', 'none')]);
    const [invSqrt2, one, half] = erfConstants;
    const erf = g.node('Erf', [g.node('Mul', [inp, invSqrt2], `${name}.scaled`)], `${name}.erf`);
    const onePlus = g.node('Add', [erf, one], `${name}.one_plus`);
    return g.node('Mul', [g.node('Mul', [inp, onePlus], `${name}.x_times`), half], name);
  };
  const qkvShape = g.int64('shape_N_T_3_H_hd', [0, 0, 3, H, hd]);
  const mergeShape = g.int64('shape_N_T_D', [0, 0, D]);
  const index = [0, 1, 2].map((i) => g.int64(`index_${i}`, [i], []));
  const scale = g.float('attn_scale', [], Float32Array.of(1 / Math.sqrt(hd)));
  for (let i = 0; i < depth; i++) {
    // Between blocks the event loop runs (a base model's weights take seconds to lay out), and a
    // cancellation is seen.
    await pause(signal);
    const b = `${prefix}blocks.${i}`;
    // attention: qkv [N, T, 3D] → [N, T, 3, H, hd] → [3, N, H, T, hd] (timm's reshape/permute)
    const qkv = linear(layerNorm(x, `${b}.norm1`), `${b}.attn.qkv`, D, 3 * D);
    const heads = g.node('Transpose', [g.node('Reshape', [qkv, qkvShape], `${b}.attn.qkv_split`)], `${b}.attn.qkv_heads`, [attr.ints('perm', [2, 0, 3, 1, 4])]);
    const [q, k, v] = ['q', 'k', 'v'].map((n, j) => g.node('Gather', [heads, index[j]], `${b}.attn.${n}`, [attr.int('axis', 0)]));
    const kT = g.node('Transpose', [k], `${b}.attn.k_T`, [attr.ints('perm', [0, 1, 3, 2])]);
    const scores = g.node('Mul', [g.node('MatMul', [q, kT], `${b}.attn.qk`), scale], `${b}.attn.scores`);
    const probs = g.node('Softmax', [scores], `${b}.attn.probs`, [attr.int('axis', -1)]);
    const ctx = g.node('MatMul', [probs, v], `${b}.attn.context`);
    const merged = g.node('Reshape', [g.node('Transpose', [ctx], `${b}.attn.context_T`, [attr.ints('perm', [0, 2, 1, 3])]), mergeShape], `${b}.attn.merged`);
    const x1 = g.node('Add', [x, linear(merged, `${b}.attn.proj`, D, D)], `${b}.residual1`);
    // MLP
    const h = gelu(linear(layerNorm(x1, `${b}.norm2`), `${b}.mlp.fc1`, D, hidden), `${b}.mlp.gelu`);
    x = g.node('Add', [x1, linear(h, `${b}.mlp.fc2`, hidden, D)], `${b}.residual2`);
  }
  if (branch === 'online' && !fcNorm && !normAfterPool) x = layerNorm(x, 'norm');

  // ---- pooling (and head)
  const FEATURES = 'features';
  const featuresName = classifier || normAfterPool ? 'pooled' : FEATURES;
  let features: string;
  if (pool === 'cls') {
    features = g.node('Gather', [x, index[0]], featuresName, [attr.int('axis', 1)]);
  } else {
    const body = g.node('Slice', [x, g.int64('start_1', [1]), g.int64('end_max', [BigInt('9223372036854775807')]), g.int64('axis_1', [1])], 'patch_rows');
    // ReduceMean took its axes as an attribute until opset 18, as an input since.
    features = opset >= 18
      ? g.node('ReduceMean', [body, g.int64('axes_1', [1])], featuresName, [attr.int('keepdims', 0)])
      : g.node('ReduceMean', [body], featuresName, [attr.ints('axes', [1]), attr.int('keepdims', 0)]);
  }
  if (normAfterPool) {
    features = g.node('LayerNormalization', [features, g.float('norm.weight', [D], tensor('norm.weight')), g.float('norm.bias', [D], tensor('norm.bias'))],
      classifier ? 'pooled_norm' : FEATURES, [attr.int('axis', -1), attr.float('epsilon', LAYER_NORM_EPS)]);
  }
  let output = features;
  let outputShape: Dim[] = ['batch', D];
  if (classifier) {
    if (fcNorm) features = layerNorm(features, 'fc_norm', fcNorm.weight.data, fcNorm.bias.data);
    output = appendLinearHead(g, features, classifier, numClasses, D);
    outputShape = ['batch', numClasses];
  }

  const inputs: ValueInfo[] = [tensorValueInfo(INPUT, ['batch', C, S, S], normalizationDoc(normalization))];
  const outputs: ValueInfo[] = [tensorValueInfo(output, outputShape)];
  const irVersion = IR_VERSION_FOR_OPSET[opset];
  const metadata: Record<string, string> = { 'cmae.config': JSON.stringify(config), 'cmae.pool': pool, 'cmae.branch': branch };
  if (normalization) metadata['cmae.normalization'] = JSON.stringify(normalization);
  const model = {
    irVersion,
    opsetImport: [{ domain: '', version: opset }],
    producerName: 'cmae',
    producerVersion: info().version,
    docString: `cmae ${config.mode} ViT encoder (${classifier ? `+ linear head, ${numClasses} classes` : `${pool} features`})`,
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
  };
  const graph = { name: 'cmae_encoder', node: g.nodes, input: inputs, output: outputs };
  const parts = await encodeModelParts(model, graph, g.initializers, () => pause(signal));
  const shapeOf = (v: ValueInfo): Dim[] => v.type.tensorType.shape.dim.map((d) => ('dimParam' in d ? d.dimParam : d.dimValue));
  return {
    parts,
    bytes: parts.reduce((n, part) => n + part.length, 0),
    info: {
      opset, irVersion,
      inputs: inputs.map((v) => ({ name: v.name, shape: shapeOf(v) })),
      outputs: outputs.map((v) => ({ name: v.name, shape: shapeOf(v) })),
      nodes: g.nodes.length,
      initializers: g.initializers.length,
    },
  };
}

/** Lets the event loop run; an AbortError once `signal` is aborted. */
async function pause(signal: AbortSignal | undefined): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  if (signal?.aborted) throw new AbortError('the ONNX export was cancelled');
}

/** Checks a head against the encoder width D; returns the number of classes. The one rule of heads. */
function checkHead(head: OnnxClassifierHead, D: number): number {
  const { weight, bias } = head;
  const shape = (t: ShapedTensor | undefined): string => (t && Array.isArray(t.shape) ? `[${t.shape.join(', ')}]` : String(t));
  if (!weight || !(weight.data instanceof Float32Array) || !Array.isArray(weight.shape)) throw new ValueError('options.classifier.weight must be { shape, data: Float32Array } (head.weight)');
  if (!bias || !(bias.data instanceof Float32Array) || !Array.isArray(bias.shape)) throw new ValueError('options.classifier.bias must be { shape, data: Float32Array } (head.bias)');
  const K = weight.shape[0];
  if (weight.shape.length !== 2 || weight.shape[1] !== D || !Number.isInteger(K) || K < 1 || weight.data.length !== K * D) {
    throw new ValueError(`head.weight is ${shape(weight)}, the encoder's width ${D} needs [numClasses, ${D}]`);
  }
  if (bias.shape.length !== 1 || bias.shape[0] !== K || bias.data.length !== K) throw new ValueError(`head.bias is ${shape(bias)}, head.weight ${shape(weight)} needs [${K}]`);
  if (head.norm !== undefined) {
    objectArg(head.norm, 'options.classifier.norm');
    for (const part of ['weight', 'bias'] as const) {
      const t = head.norm[part];
      if (!t || !(t.data instanceof Float32Array) || !Array.isArray(t.shape)) throw new ValueError(`options.classifier.norm.${part} must be { shape, data: Float32Array } (fc_norm.${part})`);
      if (t.shape.length !== 1 || t.shape[0] !== D || t.data.length !== D) throw new ValueError(`fc_norm.${part} is ${shape(t)}, the encoder's width needs [${D}]`);
    }
  }
  return K;
}

/**
 * The classifier hook: logits = Gemm(features, head.weight, head.bias, transB = 1), the head's
 * tensors in PyTorch's layout under their own names.
 */
function appendLinearHead(g: GraphBuilder, features: string, head: OnnxClassifierHead, K: number, D: number): string {
  const w = g.float('head.weight', [K, D], head.weight.data);
  const b = g.float('head.bias', [K], head.bias.data);
  return g.node('Gemm', [features, w, b], 'logits', [attr.int('transB', 1)]);
}

function normalizationDoc(normalization: OnnxExportOptions['normalization']): string {
  const how = normalization
    ? `per channel (x - mean) / std with mean ${JSON.stringify(normalization.mean)}, std ${JSON.stringify(normalization.std)}`
    : 'per channel (x - mean) / std with the statistics the model was trained with';
  return `NCHW float32 images, pixels scaled to [0, 1] then normalised ${how}`;
}

/** A fine-tuned classifier's head for encodeOnnx: head.*, and fc_norm.* with global pooling. */
function classifierHeadOf(state: ReadonlyMap<string, Float32Array>, config: Readonly<ClassifierConfig>): OnnxClassifierHead {
  const { numClasses, dim } = config;
  const shaped = (name: string, shape: number[]): ShapedTensor => ({ shape, data: state.get(name)! });
  const head: OnnxClassifierHead = { weight: shaped('head.weight', [numClasses, dim]), bias: shaped('head.bias', [numClasses]) };
  if (config.globalPool) head.norm = { weight: shaped('fc_norm.weight', [dim]), bias: shaped('fc_norm.bias', [dim]) };
  return head;
}

/**
 * Writes the model's encoder (online by default; optionally with a linear classifier head) as an
 * ONNX file, atomically; an existing file is an IOError unless `force`. The graph's input is
 * `images` [batch, C, H, W] (normalised as for encode()), its output `features` [batch, dim] (or
 * `logits` [batch, numClasses] with a head), and onnxruntime computes what encode() does (tested
 * within 1e-4). A fine-tuned `Classifier` exports whole (its pool and head, `logits` as predict()
 * gives them): `options.classifier` and `options.branch` are then its own, and `options.pool`, when
 * given, must be its pool.
 */
export async function exportOnnx(model: CMAE | Classifier, path: string, options: OnnxExportOptions = {}): Promise<OnnxExportInfo> {
  stringArg(path, 'path');
  const { force = false, ...rest } = objectArg(options, 'options', true);
  if (typeof force !== 'boolean') throw new ValueError(`options.force must be a boolean, got ${typeof force}`);
  const state = await model.readStateDict();
  if (model instanceof Classifier) {
    const { pool } = model;
    if (rest.classifier !== undefined) throw new ValueError('options.classifier: a Classifier exports its own head (leave it out)');
    if (rest.branch !== undefined && rest.branch !== 'online') throw new ValueError(`options.branch: a Classifier has the online encoder only, got ${JSON.stringify(rest.branch)}`);
    if (rest.pool !== undefined && rest.pool !== pool) throw new ValueError(`options.pool: this Classifier pools with '${pool}' (its head was trained on it), got ${JSON.stringify(rest.pool)}`);
    rest.pool = pool;
    rest.classifier = classifierHeadOf(state, model.config);
  } else if (rest.pool === undefined) {
    rest.pool = model.featurePool;
  }
  const { parts, bytes, info: summary } = await encodeOnnx(model.config, state, rest);
  await pause(rest.signal);
  await writeFileAtomic(path, parts, { overwrite: force });
  return { path, bytes, ...summary };
}
