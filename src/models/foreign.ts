/**
 * Foreign checkpoints: ViT encoders saved by timm (`VisionTransformer.state_dict()`) or the official
 * MAE code, as safetensors with timm's names, loaded into a cmae model (CMAE.loadEncoder).
 *
 * What maps onto cmae's encoder, and how (timm's semantics, vision_transformer.py):
 * - `patch_embed.proj.*`, `cls_token`, `blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1,
 *   mlp.fc2}.*`: the same names and layouts as ours.
 * - `pos_embed` [1, 1 + HW, D] (timm's default: added after the cls token is prepended): cmae's
 *   encoder keeps the cls row of its table zero (native/model: sin-cos has a zero row there), so
 *   the row is folded into `cls_token` (the cls token only ever enters as cls_token + row 0, as
 *   timm's own JAX loader folds it). [1, HW, D] (`no_embed_class`: added to the patch tokens
 *   only) loads as it is. A grid other than the model's is resampled
 *   (./resample.ts) with a warning. A model without a cls token (`class_token=False`) cannot be
 *   represented: cmae's cls token attends to every patch and changes their features.
 * - `norm.*` (global_pool 'token', or 'avg' with fc_norm=False) is applied to every token: pool
 *   'cls' or 'mean'. `fc_norm.*` (global_pool 'avg': norm is an identity, the mean of the patch
 *   tokens is normalised) loads as cmae's final norm and is used with pool 'avg', which pools
 *   first; 'cls' then equals timm's token pool with fc_norm (a norm of one row is the same either way).
 * - `head.*` is returned as a classifier (cmae's encoder has no head).
 * Everything else cmae's model has (decoders, projector, predictor) is created fresh from the seed
 * as in CMAE.create; the momentum encoder starts as a copy of the loaded encoder.
 */
import { getBinding } from '../native';
import { FormatError, ValueError } from '../errors';
import { objectArg, stringArg } from '../args';
import type { Device } from '../tensor';
import { CMAE } from './cmae';
import { presets, resolveConfig, stripUndefined, type ModelConfig, type PresetName } from './config';
import { readSafetensors, type SafeTensorEntry } from '../io/safetensors';
import { resampleBicubic } from './resample';

export interface LoadEncoderOptions extends Partial<ModelConfig> {
  /**
   * Sizes of the parts created fresh (decoders, heads; default 'tiny'), and the encoder's heads
   * when neither `heads` nor the file gives them. The encoder's shapes always come from the file.
   */
  preset?: PresetName;
  seed?: number;
  device?: Device;
  /** Unexpected tensors outside the encoder (an MAE decoder, ...) are an error (true, default) or ignored with a note. */
  strict?: boolean;
  /**
   * How a position table of another grid is resampled: bicubic with antialias (true, default: timm's
   * resample_abs_pos_embed / checkpoint_filter_fn) or without (false: the MAE code's interpolate_pos_embed).
   */
  antialias?: boolean;
}

/** A checkpoint's classifier: logits = features · weightᵀ + bias, weight [numClasses, dim] row-major. */
export interface ClassifierHead {
  weight: Float32Array;
  bias: Float32Array;
  numClasses: number;
}

export interface LoadedEncoder {
  model: CMAE;
  /** The pool that reproduces the checkpoint's features: 'cls' for a `norm` model, 'avg' for an `fc_norm` one. */
  pool: 'cls' | 'avg';
  head?: ClassifierHead;
  /** What was inferred, resampled, created fresh or ignored, one sentence each. */
  notes: string[];
}

/** cmae's encoder tensors (online branch, unprefixed names). */
const ENCODER_NAME = /^(patch_embed\.|cls_token$|pos_embed$|blocks\.\d+\.|norm\.)/;
/** Names in timm's ViT namespace that change the features: never ignored, even when not strict. */
const VIT_NAMESPACE = /^(patch_embed\.|cls_token$|reg_token$|dist_token$|pos_embed$|blocks\.|norm_pre\.|norm\.|fc_norm\.|attn_pool\.|head_dist\.)/;

const shapeText = (s: readonly number[]): string => `[${s.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/** The tensor as float32: F32 as stored, F64 rounded, F16 / BF16 widened exactly; undefined for integer dtypes. */
function toFloat32(entry: SafeTensorEntry): Float32Array | undefined {
  const { dtype, data } = entry;
  if (dtype === 'F32') return data as Float32Array;
  if (dtype === 'F64') return Float32Array.from(data as Float64Array);
  if (dtype === 'BF16') {
    const bits = new Uint32Array(data.length);
    for (let i = 0; i < data.length; i++) bits[i] = (data as Uint16Array)[i] << 16;
    return new Float32Array(bits.buffer);
  }
  if (dtype === 'F16') return Float32Array.from(data as Uint16Array, halfToFloat);
  return undefined;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** g when n = g² (a whole number), else undefined. */
function squareRoot(n: number): number | undefined {
  const g = Math.round(Math.sqrt(n));
  return g >= 1 && g * g === n ? g : undefined;
}

/** The encoder fields a file's shapes determine (those it can), and the pos_embed layout. */
function inferEncoder(tensors: Map<string, SafeTensorEntry>, metadata: Record<string, string>) {
  const found: Partial<ModelConfig> = {};
  const pe = tensors.get('patch_embed.proj.weight')?.shape;
  if (pe && pe.length === 4 && pe[2] === pe[3]) Object.assign(found, { dim: pe[0], channels: pe[1], patchSize: pe[2] });
  found.dim ??= tensors.get('cls_token')?.shape.at(-1) ?? tensors.get('pos_embed')?.shape.at(-1);
  let depth = 0;
  for (const name of tensors.keys()) {
    const m = /^blocks\.(\d+)\./.exec(name);
    if (m) depth = Math.max(depth, Number(m[1]) + 1);
  }
  if (depth > 0) found.depth = depth;
  const fc1 = tensors.get('blocks.0.mlp.fc1.weight')?.shape;
  if (fc1 && fc1.length === 2 && fc1[1] > 0) found.mlpRatio = fc1[0] / fc1[1];
  // pos_embed rows: g² (no cls row) or 1 + g²; both are square only for g = 0, so never ambiguous.
  const rows = tensors.get('pos_embed')?.shape[1];
  let grid: number | undefined;
  let clsRow = true;
  if (rows !== undefined) {
    grid = squareRoot(rows - 1);
    if (grid === undefined) {
      grid = squareRoot(rows);
      clsRow = false;
    }
  }
  if (grid !== undefined && found.patchSize !== undefined) found.imageSize = grid * found.patchSize;
  // A cmae checkpoint names its heads in metadata.config; timm's files ({format: 'pt'}) do not.
  let heads: number | undefined;
  try {
    const config = JSON.parse(metadata.config ?? 'null') as { heads?: unknown } | null;
    if (typeof config?.heads === 'number') heads = config.heads;
  } catch {
    // Not JSON: no heads from metadata.
  }
  return { found, grid, clsRow, heads };
}

/**
 * Loads the ViT encoder of a timm / MAE safetensors file into a new cmae model (see the module
 * comment for the layouts). Throws one FormatError listing every missing, unexpected, mis-shaped,
 * non-float or non-finite tensor; a ValueError when the heads cannot be known.
 */
export async function loadEncoder(path: string, options?: LoadEncoderOptions): Promise<LoadedEncoder> {
  stringArg(path, 'path');
  const { preset, seed = 0, device, strict = true, antialias = true, ...overrides } = objectArg(options, 'options', true);
  if (typeof strict !== 'boolean') throw new ValueError(`options.strict must be a boolean, got ${String(strict)}`);
  if (typeof antialias !== 'boolean') throw new ValueError(`options.antialias must be a boolean, got ${String(antialias)}`);
  if (preset !== undefined) resolveConfig(preset); // an unknown preset is a ValueError before any reading
  const file = await readSafetensors(path);
  const tensors = file.tensors;
  const { found, grid: fileGrid, clsRow, heads: metaHeads } = inferEncoder(tensors, file.metadata);
  const notes: string[] = [];
  const needed = ['dim', 'channels', 'patchSize', 'depth', 'mlpRatio', 'imageSize'] as const;
  const unknown = needed.filter((k) => overrides[k] === undefined && found[k] === undefined);
  if (unknown.length > 0) {
    const from = { dim: 'patch_embed.proj.weight, cls_token or pos_embed', channels: 'patch_embed.proj.weight', patchSize: 'patch_embed.proj.weight', depth: 'blocks.N.*', mlpRatio: 'blocks.0.mlp.fc1.weight', imageSize: 'pos_embed and patch_embed.proj.weight' };
    throw new FormatError(`${path}: not a ViT encoder cmae can read: cannot infer ${unknown.map((k) => `${k} (from ${from[k]})`).join(', ')}`);
  }
  if (overrides.mlpRatio === undefined && !Number.isInteger(found.mlpRatio)) {
    const [hidden, dim] = tensors.get('blocks.0.mlp.fc1.weight')!.shape;
    throw new FormatError(`${path}: 'blocks.0.mlp.fc1.weight' is [${hidden}, ${dim}]: cmae's MLP width must be a whole multiple of the width (mlpRatio ${hidden}/${dim} is not)`);
  }
  const heads = overrides.heads ?? metaHeads ?? (preset !== undefined ? presets[preset].heads : undefined);
  if (heads === undefined) {
    throw new ValueError(`${path}: the number of attention heads cannot be inferred from tensor shapes: pass options.heads (timm's ViT-Ti 3, ViT-S 6, ViT-B 12, ViT-L 16) or a preset`);
  }
  const config = resolveConfig(preset, { ...found, ...stripUndefined(overrides), heads });
  const grid = config.imageSize / config.patchSize;
  if (overrides.maskGroup === undefined && config.maskGroup > 1 && Number.isInteger(grid) && grid % config.maskGroup !== 0) {
    // CMAE's 2×2 group masking needs an even grid (timm's 224/16 = 14 is, 384/16 = 24 is; 5 is not).
    notes.push(`maskGroup ${config.maskGroup} does not divide the ${grid}×${grid} grid: maskGroup 1 (per-patch masking) for further pre-training`);
    config.maskGroup = 1;
  }
  const expected = getBinding()
    .planParameters(config)
    .filter((p) => p.role !== 'momentum' && ENCODER_NAME.test(p.name));

  // Every problem, not the first: the error lists them all.
  const missing: string[] = [];
  const misShaped: string[] = [];
  const unexpected: string[] = [];
  const badValues: string[] = [];
  const used = new Set<string>();
  let clsRowOf: Float32Array | undefined;
  const state = new Map<string, Float32Array>();
  const take = (source: string, shapeOk: boolean, want: string): Float32Array | undefined => {
    const entry = tensors.get(source)!;
    used.add(source);
    if (!shapeOk) {
      misShaped.push(`'${source}' is ${shapeText(entry.shape)}, expected ${want}`);
      return undefined;
    }
    const data = toFloat32(entry);
    if (!data) {
      badValues.push(`'${source}' is ${entry.dtype}, expected a float tensor (F32, F64, F16 or BF16)`);
      return undefined;
    }
    const bad = data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      badValues.push(`'${source}' has a non-finite value (${data[bad]}) at flat index ${bad}`);
      return undefined;
    }
    return data;
  };

  const finalNorm = tensors.has('fc_norm.weight') || tensors.has('fc_norm.bias') ? 'fc_norm' : 'norm';
  if (finalNorm === 'fc_norm' && (tensors.has('norm.weight') || tensors.has('norm.bias'))) {
    unexpected.push(`'norm.*' beside 'fc_norm.*': timm has one or the other, and cmae's encoder one final norm`);
    used.add('norm.weight').add('norm.bias');
  }
  for (const p of expected) {
    const source = p.name.startsWith('norm.') ? `${finalNorm}.${p.name.slice(5)}` : p.name;
    const entry = tensors.get(source);
    if (!entry) {
      let hint = '';
      if (p.name === 'cls_token' && !clsRow) hint = ` (a class_token=False model: cmae's encoder always has a cls token, which every patch attends to)`;
      if (p.name.startsWith('norm.')) hint = ` (or 'fc_norm.${p.name.slice(5)}')`;
      missing.push(`'${source}' ${shapeText(p.shape)}${hint}`);
      continue;
    }
    if (p.name === 'pos_embed') {
      const d = config.dim;
      const ok = entry.shape.length === 3 && entry.shape[0] === 1 && entry.shape[2] === d && fileGrid !== undefined;
      const data = take(source, ok, `[1, 1 + g², ${d}] or [1, g², ${d}] (a square grid g×g, with or without the cls row)`);
      if (data) {
        state.set('pos_embed', positionTable(data, fileGrid!, clsRow, grid, d, antialias, notes));
        if (clsRow) clsRowOf = data.subarray(0, d);
      }
      continue;
    }
    const data = take(source, sameShape(entry.shape, p.shape), shapeText(p.shape));
    if (data) state.set(p.name, data);
  }
  let head: ClassifierHead | undefined;
  const hw = tensors.get('head.weight');
  const hb = tensors.get('head.bias');
  if (hw || hb) {
    const k = (hw ?? hb)!.shape[0];
    const weight = hw ? take('head.weight', sameShape(hw.shape, [k, config.dim]), shapeText([k, config.dim])) : undefined;
    const bias = hb ? take('head.bias', sameShape(hb.shape, [k]), shapeText([k])) : undefined;
    if (!hw) missing.push(`'head.weight' [${k}, ${config.dim}] (beside 'head.bias')`);
    if (!hb) missing.push(`'head.bias' [${k}] (beside 'head.weight')`);
    if (weight && bias) head = { weight, bias, numClasses: k };
  }
  const ignored: string[] = [];
  for (const [name, entry] of tensors) {
    if (used.has(name)) continue;
    if (strict || VIT_NAMESPACE.test(name)) unexpected.push(`'${name}' ${shapeText(entry.shape)}`);
    else ignored.push(name);
  }
  const problems = [
    ...missing.map((s) => `missing ${s}`),
    ...unexpected.map((s) => `unexpected ${s}`),
    ...misShaped.map((s) => `mis-shaped ${s}`),
    ...badValues,
  ];
  if (problems.length > 0) {
    const shape = `encoder dim ${config.dim}, depth ${config.depth}, patch ${config.patchSize}, ${config.channels} channels, MLP ${config.mlpRatio}×`;
    throw new FormatError(`${path}: cannot load this ViT encoder (${shape}): ${problems.length} problem${problems.length > 1 ? 's' : ''}:\n  ${problems.join('\n  ')}`);
  }

  if (clsRowOf && state.has('cls_token')) {
    const cls = Float32Array.from(state.get('cls_token')!, (v, i) => v + clsRowOf![i]);
    state.set('cls_token', cls);
    notes.push(`pos_embed's cls row folded into cls_token (cmae's table keeps that row zero; the cls token only enters as their sum)`);
  }
  const model = await CMAE.create({ ...config, seed, device });
  try {
    model.loadStateDict(state, { strict: false }); // the rest keeps its init; the momentum encoder copies the online one
  } catch (err) {
    model.dispose();
    throw err;
  }
  const pool = finalNorm === 'fc_norm' ? 'avg' : 'cls';
  notes.unshift(
    `encoder from the file: dim ${config.dim}, depth ${config.depth}, ${config.heads} heads (${overrides.heads !== undefined ? 'given' : metaHeads !== undefined ? 'from metadata.config' : `preset '${preset}'`}), ` +
      `patch ${config.patchSize}, ${config.channels} channels, MLP ${config.mlpRatio}×, ${config.imageSize}² images`,
    finalNorm === 'fc_norm'
      ? `'fc_norm' loaded as the final norm: pool 'avg' (mean of the patch tokens, then the norm) gives the checkpoint's features`
      : `'norm' loaded as the final norm: pool 'cls' (timm global_pool='token') or 'mean' (global_pool='avg', fc_norm=False)`,
  );
  if (!clsRow) notes.push(`pos_embed has no cls row (no_embed_class): nothing is added to the cls token, as in timm`);
  notes.push(`pos_embed is a fixed buffer in cmae: further pre-training keeps the loaded table`);
  if (head) notes.push(`'head' kept as a ${head.numClasses}-class classifier (result.head)`);
  const fresh = [...new Set(model.parameters().filter((p) => !state.has(p.name) && p.role !== 'momentum' && !p.name.startsWith('momentum_')).map((p) => p.name.split('.')[0]))];
  if (fresh.length > 0) notes.push(`created fresh (seed ${seed}, cmae's init): ${fresh.join(', ')}`);
  if (model.parameters().some((p) => p.role === 'momentum')) notes.push(`the momentum branch starts as a copy of the loaded encoder`);
  // Warned once the load has succeeded: a file refused for other reasons warns of nothing.
  for (const note of notes) if (note.startsWith(RESAMPLED)) process.emitWarning(note, { code: 'CMAE_POS_EMBED_RESAMPLED' });
  if (ignored.length > 0) notes.push(`ignored (strict: false) ${ignored.length} tensor${ignored.length > 1 ? 's' : ''} outside the encoder: ${ignored.join(', ')}`);
  model.featurePool = pool;
  return { model, pool, head, notes };
}

const RESAMPLED = 'pos_embed resampled';

/**
 * The file's position table as cmae's [1, 1 + grid², D] with a zero cls row (the caller folds the
 * file's into cls_token), its grid resampled when it is not the model's (noted, warned by the caller).
 */
function positionTable(data: Float32Array, fileGrid: number, clsRow: boolean, grid: number, dim: number, antialias: boolean, notes: string[]): Float32Array {
  const patchRows = clsRow ? data.subarray(dim) : data;
  const out = new Float32Array((1 + grid * grid) * dim); // row 0 stays zero: the caller folds the file's into cls_token
  if (fileGrid === grid) {
    out.set(patchRows, dim);
    return out;
  }
  out.set(resampleBicubic(patchRows, fileGrid, fileGrid, dim, grid, grid, { antialias }), dim);
  notes.push(`${RESAMPLED} from a ${fileGrid}×${fileGrid} grid to ${grid}×${grid} (bicubic, ${antialias ? 'antialias as timm' : 'no antialias as the MAE code'}); the cls row is kept`);
  return out;
}

