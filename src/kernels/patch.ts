/**
 * Patches, masking, token gathers and the fixed sin-cos position embedding (native/ops/patch.h;
 * spec §1.1, §1.2, §1.4, §1.5, §2.2).
 */
import { Tensor, nativeOf } from '../tensor';
import { ShapeError, ValueError } from '../errors';
import { kernelsNative, outputLike, zerosLike } from './util';

/**
 * Order of the P = p·p·C values inside a patch vector:
 * - `'pixels-last'`: (py, px, c), c fastest, MAE's patchify (reconstruction targets);
 * - `'channels-first'`: (c, py, px), the flattened patch-embedding conv weight [D, C, p, p].
 */
export type PatchLayout = 'pixels-last' | 'channels-first';

/** n when it is a valid dimension, else 0: bad arguments then reach the native checks, which name them. */
function dim(n: number): number {
  return Number.isInteger(n) && n >= 0 ? n : 0;
}

function expectRank(t: Tensor, rank: number, name: string, layout: string): void {
  if (t.shape.length !== rank) throw new ShapeError(`${name} must be ${rank}-D ${layout}, got [${t.shape.join(', ')}]`);
}

export interface PatchifyOptions {
  /** Default 'pixels-last'. */
  layout?: PatchLayout;
  /** Output (B, L, P), allocated when omitted. */
  out?: Tensor;
}

/** images (B, C, H, W) → patches (B, L, p·p·C), L = (H/p)·(W/p), patches row-major over the grid. */
export function patchify(images: Tensor, p: number, { layout = 'pixels-last', out }: PatchifyOptions = {}): Tensor<'float32'> {
  expectRank(images, 4, 'images', '(B, C, H, W)');
  const [B, C, H, W] = images.shape;
  // Bad p and non-divisible sizes are rejected natively with a clear message.
  const q = Number.isInteger(p) && p > 0 ? p : 1;
  const o = outputLike(out, [B, Math.floor(H / q) * Math.floor(W / q), q * q * C], images);
  kernelsNative().patchify(nativeOf(o), nativeOf(images), p, layout);
  return o;
}

/**
 * patchify of the listed patches only: out (B, K, p·p·C)[b, k] = patch ids[b, k] of images
 * (B, C, H, W), in the order of ids (B, K) int32 (randomMasking's idsKeep: the visible patches);
 * the other patches are never read. The same values as gatherVisibleForward(patchify(images), ids).
 */
export function patchifyVisible(images: Tensor, ids: Tensor, p: number, { layout = 'pixels-last', out }: PatchifyOptions = {}): Tensor<'float32'> {
  expectRank(images, 4, 'images', '(B, C, H, W)');
  expectRank(ids, 2, 'ids', '(B, K)');
  const q = Number.isInteger(p) && p > 0 ? p : 1;
  const o = outputLike(out, [images.shape[0], ids.shape[1], q * q * images.shape[1]], images);
  kernelsNative().patchifyVisible(nativeOf(o), nativeOf(images), nativeOf(ids), p, layout);
  return o;
}

export interface UnpatchifyOptions {
  layout?: PatchLayout;
  /** Image height in pixels. Default: the grid is square (H = W = p·√L). */
  height?: number;
  /** Image width in pixels. Default: L·p² / height. */
  width?: number;
  /** Output (B, C, H, W), allocated when omitted (C = P / p²). When given, it fixes H and W. */
  out?: Tensor;
}

/** The exact inverse of patchify (also its backward: dimages = unpatchify(dpatches)). */
export function unpatchify(patches: Tensor, p: number, { layout = 'pixels-last', height, width, out }: UnpatchifyOptions = {}): Tensor<'float32'> {
  expectRank(patches, 3, 'patches', '(B, L, P)');
  const [B, L, P] = patches.shape;
  let o = out;
  if (!o) {
    if (!Number.isInteger(p) || p < 1) throw new ValueError(`p must be a positive integer, got ${p}`);
    const C = P / (p * p);
    if (!Number.isInteger(C)) throw new ShapeError(`patches has P = ${P} values per patch, not a multiple of p·p = ${p * p}`);
    let gh: number;
    let gw: number;
    if (height === undefined && width === undefined) {
      gh = gw = Math.round(Math.sqrt(L));
      if (gh * gw !== L) throw new ShapeError(`patches has L = ${L} patches, not a square grid: pass height and width`);
    } else {
      gh = height !== undefined ? height / p : L / (width! / p);
      gw = width !== undefined ? width / p : L / gh;
      if (!Number.isInteger(gh) || !Number.isInteger(gw) || gh * gw !== L) {
        throw new ShapeError(`an image of ${gh * p}x${gw * p} pixels does not hold L = ${L} patches of ${p}x${p}`);
      }
    }
    o = outputLike(undefined, [B, C, gh * p, gw * p], patches);
  }
  kernelsNative().unpatchify(nativeOf(o), nativeOf(patches), p, layout);
  return o as Tensor<'float32'>;
}

/** Python `int(numGroups * (1 - maskRatio))`: the number of groups (or patches) kept. */
export function keepGroupsFor(numGroups: number, maskRatio: number): number {
  if (!(maskRatio >= 0 && maskRatio <= 1)) throw new ValueError(`maskRatio must be in [0, 1], got ${maskRatio}`);
  return Math.floor(numGroups * (1 - maskRatio));
}

export interface MaskingOptions {
  /** Patch grid height and width (L = gridH·gridW). */
  gridH: number;
  gridW: number;
  /** Patches per group side: 1 = MAE per-patch masking, 2 = CMAE 2×2 groups. Default 1. */
  group?: number;
  /** Groups kept per image (see keepGroupsFor). */
  keepGroups: number;
  /** Outputs, allocated when omitted. */
  idsKeep?: Tensor;
  idsRestore?: Tensor;
  mask?: Tensor;
}

export interface MaskingResult {
  /** (B, K) int32: kept patch indices, ascending. K = keepGroups·group². */
  idsKeep: Tensor<'int32'>;
  /** (B, L) int32: position of each patch in [kept ascending, masked ascending]; < K ⇔ visible. */
  idsRestore: Tensor<'int32'>;
  /** (B, L) float32: 0 = visible, 1 = masked. */
  mask: Tensor<'float32'>;
}

/** Keeps the keepGroups groups with the smallest noise (B, G) per image (ties: lower index). */
export function randomMasking(noise: Tensor, options: MaskingOptions): MaskingResult {
  const { gridH, gridW, group = 1, keepGroups } = options;
  expectRank(noise, 2, 'noise', '(B, G)');
  const B = noise.shape[0];
  const K = keepGroups * group * group;
  const L = gridH * gridW;
  const idsKeep = outputLike(options.idsKeep, [B, dim(K)], noise, 'int32');
  const idsRestore = outputLike(options.idsRestore, [B, dim(L)], noise, 'int32');
  const mask = outputLike(options.mask, [B, dim(L)], noise);
  kernelsNative().randomMasking(nativeOf(idsKeep), nativeOf(idsRestore), nativeOf(mask), nativeOf(noise), gridH, gridW, group, keepGroups);
  return { idsKeep, idsRestore, mask: mask as Tensor<'float32'> };
}

/** noise (B, G)[b, g] = philox uniform (seed, stream, b·G + g): reproducible masks from (seed, step). */
export function maskingNoise(B: number, G: number, seed: number, stream: number, out?: Tensor): Tensor<'float32'> {
  const o = outputLike(out, [dim(B), dim(G)], null);
  kernelsNative().maskingNoise(nativeOf(o), seed, stream);
  return o;
}

export interface GatherVisibleOptions {
  /** Position embedding (L, D) added to every gathered token. */
  pos?: Tensor | null;
  /** Rows reserved at the start of out (the cls token); they are not touched. Default 0. */
  prefix?: number;
  /** Output (B, prefix + K, D), allocated when omitted. */
  out?: Tensor;
}

/** out[b, prefix + k] = tokens[b, idsKeep[b, k]] + pos[idsKeep[b, k]]; tokens (B, L, D). */
export function gatherVisibleForward(tokens: Tensor, idsKeep: Tensor, { pos = null, prefix = 0, out }: GatherVisibleOptions = {}): Tensor<'float32'> {
  expectRank(tokens, 3, 'tokens', '(B, L, D)');
  expectRank(idsKeep, 2, 'idsKeep', '(B, K)');
  const o = outputLike(out, [tokens.shape[0], dim(prefix) + idsKeep.shape[1], tokens.shape[2]], tokens);
  kernelsNative().gatherVisibleForward(nativeOf(o), nativeOf(tokens), nativeOf(pos), nativeOf(idsKeep), prefix);
  return o;
}

export interface AddPositionsOptions {
  /** Position embedding (L, D): row ids[b, k] is added to token k. Without it, a copy (ids are not read). */
  pos?: Tensor | null;
  /** Rows reserved at the start of out (the cls token); they are not touched. Default 0. */
  prefix?: number;
  /** Output (B, prefix + K, D), allocated when omitted. */
  out?: Tensor;
}

/**
 * The position half of gatherVisibleForward, for tokens (B, K, D) that already are the visible
 * ones: out[b, prefix + k] = tokens[b, k] + pos[ids[b, k]]; ids (B, K) int32.
 */
export function addPositions(tokens: Tensor, ids: Tensor, { pos = null, prefix = 0, out }: AddPositionsOptions = {}): Tensor<'float32'> {
  expectRank(tokens, 3, 'tokens', '(B, K, D)');
  const o = outputLike(out, [tokens.shape[0], dim(prefix) + tokens.shape[1], tokens.shape[2]], tokens);
  kernelsNative().addPositions(nativeOf(o), nativeOf(tokens), nativeOf(pos), nativeOf(ids), prefix);
  return o;
}

export interface GatherVisibleBackwardOptions {
  /** Prefix rows of dout (ignored). Default 0. */
  prefix?: number;
  /** Output (B, L, D), allocated when omitted. Overwritten. */
  dtokens?: Tensor;
}

/** dtokens (B, L, D): dout (B, prefix + K, D) rows scattered back to their patch, 0 elsewhere. */
export function gatherVisibleBackward(dout: Tensor, idsKeep: Tensor, numPatches: number, { prefix = 0, dtokens }: GatherVisibleBackwardOptions = {}): Tensor<'float32'> {
  expectRank(dout, 3, 'dout', '(B, prefix + K, D)');
  const d = outputLike(dtokens, [dout.shape[0], dim(numPatches), dout.shape[2]], dout);
  kernelsNative().gatherVisibleBackward(nativeOf(d), nativeOf(dout), nativeOf(idsKeep), prefix);
  return d;
}

export interface UnshuffleOptions {
  /** Decoder position embedding (L, D) for the patch rows. */
  pos?: Tensor | null;
  /** Position embedding (prefix, D) for the prefix rows (MAE's cls row is zeros: leave it out). */
  posPrefix?: Tensor | null;
  /** Leading rows of inp and out (the cls token), copied through. Default 0. */
  prefix?: number;
  /** Output (B, prefix + L, D), allocated when omitted. */
  out?: Tensor;
}

/**
 * Decoder input: out[b, prefix + l] = (idsRestore[b, l] < K ? inp[b, prefix + idsRestore[b, l]]
 * : maskToken) + pos[l]; prefix rows = inp prefix rows + posPrefix. inp (B, prefix + K, D).
 */
export function unshuffleForward(inp: Tensor, maskToken: Tensor, idsRestore: Tensor, { pos = null, posPrefix = null, prefix = 0, out }: UnshuffleOptions = {}): Tensor<'float32'> {
  expectRank(inp, 3, 'inp', '(B, prefix + K, D)');
  expectRank(idsRestore, 2, 'idsRestore', '(B, L)');
  const o = outputLike(out, [inp.shape[0], dim(prefix) + idsRestore.shape[1], inp.shape[2]], inp);
  kernelsNative().unshuffleForward(nativeOf(o), nativeOf(inp), nativeOf(maskToken), nativeOf(pos), nativeOf(posPrefix), nativeOf(idsRestore), prefix);
  return o;
}

export interface UnshuffleBackwardOptions {
  prefix?: number;
  /** Output (B, prefix + K, D), allocated when omitted. Overwritten. */
  dinp?: Tensor;
  /** (D): accumulated (+=); zero-allocated when omitted. */
  dmaskToken?: Tensor;
}

export interface UnshuffleBackwardResult {
  /** (B, prefix + K, D). */
  dinp: Tensor<'float32'>;
  /** (D), the caller's accumulator when one was passed. */
  dmaskToken: Tensor<'float32'>;
}

/** Backward of unshuffleForward for dout (B, prefix + L, D); K = number of visible tokens. */
export function unshuffleBackward(dout: Tensor, idsRestore: Tensor, numVisible: number, { prefix = 0, dinp, dmaskToken }: UnshuffleBackwardOptions = {}): UnshuffleBackwardResult {
  expectRank(dout, 3, 'dout', '(B, prefix + L, D)');
  const di = outputLike(dinp, [dout.shape[0], dim(prefix) + dim(numVisible), dout.shape[2]], dout);
  const dm = (dmaskToken ?? zerosLike([dout.shape[2]], dout)) as Tensor<'float32'>;
  kernelsNative().unshuffleBackward(nativeOf(di), nativeOf(dm), nativeOf(dout), nativeOf(idsRestore), prefix);
  return { dinp: di, dmaskToken: dm };
}

/**
 * MAE's fixed 2-D sin-cos embedding (gridH·gridW, D) without the cls row: dims [0, D/2) encode the
 * column, [D/2, D) the row (sin then cos each), computed in float64 and rounded to float32.
 */
export function sincosPosEmbed2d(gridH: number, gridW: number, D: number, out?: Tensor): Tensor<'float32'> {
  const o = outputLike(out, [dim(gridH * gridW), dim(D)], null);
  kernelsNative().sincosPosEmbed2d(nativeOf(o), gridH, gridW);
  return o;
}
