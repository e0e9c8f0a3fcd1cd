/**
 * Batched two-view augmentation (native/data/augment.h; method-spec §2.1 "pixel shifting").
 *
 * Per sample: RandomResizedCrop of the source to a master of M×M (M = outSize + shiftRange unless
 * masterSize says otherwise), horizontal flip shared by both views, online view = master[0:S, 0:S],
 * target view = master[dy:dy+S, dx:dx+S] with dy, dx uniform in {0..shiftRange}, then target-only
 * colour jitter, grayscale and Gaussian blur; both views normalised, NCHW float32. Draws are keyed
 * by (seed, stream, position in the batch) with Philox, so results do not depend on thread count.
 */
import { Tensor, nativeOf, type Device } from '../tensor';
import { ShapeError, ValueError, DTypeError } from '../errors';
import { kernelsNative } from './util';

export interface AugmentParams {
  /** S: side of each view. */
  outSize: number;
  /** R: target offset dy, dx ∈ {0..R}. Default 7 (the spec's 31 at 224, scaled). */
  shiftRange?: number;
  /** M: master side; 0 / omitted = outSize + shiftRange (the spec's 256 at 224 is outSize + shiftRange + 1). */
  masterSize?: number;
  /** Master resampling: bicubic (default, as the spec; PIL's filter) or bilinear. */
  bicubic?: boolean;
  /** RandomResizedCrop area fraction range. Default [0.2, 1]. */
  scaleMin?: number;
  scaleMax?: number;
  /** RandomResizedCrop aspect-ratio range (log-uniform). Default [3/4, 4/3]. */
  ratioMin?: number;
  ratioMax?: number;
  /** Horizontal flip probability (shared by both views). Default 0.5. */
  flipP?: number;
  /** Colour-jitter probability (target only). Default 0.8. */
  jitterP?: number;
  brightness?: number;
  contrast?: number;
  /** Saturation and hue apply to 3-channel images only. */
  saturation?: number;
  hue?: number;
  /** Grayscale probability (target only, 3-channel only). Default 0.2. */
  grayscaleP?: number;
  /** Gaussian blur probability (target only). Default 0.5. */
  blurP?: number;
  /** σ range at the reference size (default [0.1, 2] at 224); scaled by outSize / blurReferenceSize. */
  blurSigmaMin?: number;
  blurSigmaMax?: number;
  /** 0 = use σ as drawn. Default 224. */
  blurReferenceSize?: number;
  /** Per-channel normalisation in 0..1 pixel units (1 entry is broadcast). Default 0 / 1. */
  mean?: readonly number[];
  std?: readonly number[];
  /** false: the master is the whole image resized (evaluation / no augmentation). Default true. */
  randomCrop?: boolean;
  /** false: only the online view (MAE mode, evaluation); the master is then S×S. Default true. */
  twoViews?: boolean;
}

/** Images packed (N, H, W, C) uint8, C = 1 or 3. */
export interface PixelSource {
  pixels: Uint8Array;
  size: number;
  height: number;
  width: number;
  channels: number;
}

export interface ViewsOutput {
  /** (B, C, S, S) float32. */
  online?: Tensor;
  /** (B, C, S, S) float32 (two views only). */
  target?: Tensor;
  /** (B, 2) int32 (dy, dx). */
  shifts?: Tensor;
  /**
   * Where the outputs not given are allocated (default: the CPU). On a CUDA device the batch's
   * uint8 images are uploaded and augmented there; every output must be on one device.
   */
  device?: Device;
}

export interface ViewsResult {
  online: Tensor<'float32'>;
  target?: Tensor<'float32'>;
  shifts: Tensor<'int32'>;
}

function prepare(source: PixelSource, indices: Int32Array, params: AugmentParams, out: ViewsOutput) {
  if (!(source.pixels instanceof Uint8Array)) throw new DTypeError('source.pixels must be a Uint8Array');
  if (!(indices instanceof Int32Array)) throw new DTypeError('indices must be an Int32Array');
  if (params === null || typeof params !== 'object') throw new ValueError('params must be an object');
  if (!Number.isInteger(params.outSize) || params.outSize <= 0) throw new ValueError(`outSize must be a positive integer, got ${params.outSize}`);
  const c = source.channels;
  if (c !== 1 && c !== 3) throw new ShapeError(`source must have 1 or 3 channels, got ${c}`);
  const twoViews = params.twoViews ?? true;
  const shape = [indices.length, c, params.outSize, params.outSize];
  const on = { device: out.device ?? 'cpu' };
  // Outputs made here are freed here if the call fails (the caller never sees them).
  const owned: Tensor[] = [];
  const make = <T extends Tensor>(given: Tensor | undefined, s: number[], dtype: 'float32' | 'int32'): T => {
    if (given) return given as T;
    const t = Tensor.empty(s, dtype, on);
    owned.push(t);
    return t as T;
  };
  try {
    const online = make<Tensor<'float32'>>(out.online, shape, 'float32');
    const target = twoViews ? make<Tensor<'float32'>>(out.target, shape, 'float32') : undefined;
    const shifts = make<Tensor<'int32'>>(out.shifts, [indices.length, 2], 'int32');
    const dims = [source.size, source.height, source.width, source.channels];
    const nativeParams = withDefaults(params);
    return { online, target, shifts, dims, nativeParams, owned };
  } catch (error) {
    disposeAll(owned);
    throw error;
  }
}

/** The parameters native code receives: the one place this layer adds a default (shiftRange, documented above). */
function withDefaults(params: AugmentParams): AugmentParams {
  return { shiftRange: 7, ...params };
}

function disposeAll(tensors: Tensor[]): void {
  for (const t of tensors) t.dispose();
}

/** Builds both views of a batch synchronously, through the backend of its tensors (on the CPU: the compute pool). */
export function makeViews(source: PixelSource, indices: Int32Array, params: AugmentParams, seed: number, stream: number, out: ViewsOutput = {}): ViewsResult {
  const p = prepare(source, indices, params, out);
  try {
    kernelsNative().makeViews(nativeOf(p.online), nativeOf(p.target) ?? null, nativeOf(p.shifts), source.pixels, p.dims, indices, p.nativeParams, seed, stream);
  } catch (error) {
    disposeAll(p.owned);
    throw error;
  }
  return { online: p.online, target: p.target, shifts: p.shifts };
}

/**
 * Same result as makeViews, computed on a libuv worker: with one thread for CPU outputs, so it can
 * run while a training step uses the compute pool; on a CUDA device in the device's turn (after a
 * training job running there). Do not touch the outputs until the promise settles.
 */
export async function makeViewsAsync(source: PixelSource, indices: Int32Array, params: AugmentParams, seed: number, stream: number, out: ViewsOutput = {}): Promise<ViewsResult> {
  const p = prepare(source, indices, params, out);
  try {
    await kernelsNative().makeViewsAsync(nativeOf(p.online), nativeOf(p.target) ?? null, nativeOf(p.shifts), source.pixels, p.dims, indices, p.nativeParams, seed, stream);
  } catch (error) {
    disposeAll(p.owned);
    throw error;
  }
  return { online: p.online, target: p.target, shifts: p.shifts };
}

/** Per-channel mean and population std of (N, H, W, C) uint8 pixels, in 0..1 units. */
export function computeMeanStd(source: PixelSource): { mean: number[]; std: number[] } {
  if (!(source.pixels instanceof Uint8Array)) throw new DTypeError('source.pixels must be a Uint8Array');
  return kernelsNative().computeMeanStd(source.pixels, [source.size, source.height, source.width, source.channels]);
}

/**
 * What makeViews draws for one batch position (native/data/augment_math.h draw_sample). Only the
 * fields the options use are meaningful: shift and the colour fields are 0/false with one view,
 * order and factor only when jitter, sigma only when blur.
 */
export interface SampleDraws {
  /** The RandomResizedCrop box in source pixels: top, left, height, width. */
  crop: [number, number, number, number];
  /** Horizontal flip (both views). */
  flip: boolean;
  /** The target view's offset (dy, dx) in the master. */
  shift: [number, number];
  /** Whether colour jitter applies (target only). */
  jitter: boolean;
  /** The jitter operations in the order they apply: 0 brightness, 1 contrast, 2 saturation, 3 hue. */
  order: [number, number, number, number];
  /** Indexed like order's values: brightness, contrast and saturation factors, hue shift (float32 values). */
  factor: [number, number, number, number];
  grayscale: boolean;
  blur: boolean;
  /** Blur σ at the view size (scaled by outSize / blurReferenceSize). */
  sigma: number;
}

/**
 * The draws makeViews(…, seed, stream) takes for batch positions 0..batch−1 of images of the given
 * size: a pure function of (seed, stream, position), whatever the images and the rest of the batch.
 * For tests and for inspecting an augmentation; makeViews itself never calls it.
 */
export function augmentDraws(batch: number, image: { height: number; width: number; channels: number }, params: AugmentParams, seed: number, stream: number): SampleDraws[] {
  if (params === null || typeof params !== 'object') throw new ValueError('params must be an object');
  return kernelsNative().augmentDraws(batch, [image.height, image.width, image.channels], withDefaults(params), seed, stream);
}

/** The stream id native code uses for augmentation of batch `counter` (make_stream(RngStream::Augment, counter)). */
export function augmentStream(counter: number): number {
  if (!Number.isInteger(counter) || counter < 0 || counter >= 2 ** 48) throw new ValueError(`counter must be an integer in [0, 2^48), got ${counter}`);
  return 4 * 2 ** 48 + counter;
}

/** make_stream(RngStream::Shuffle, counter). */
export function shuffleStream(counter: number): number {
  if (!Number.isInteger(counter) || counter < 0 || counter >= 2 ** 48) throw new ValueError(`counter must be an integer in [0, 2^48), got ${counter}`);
  return 5 * 2 ** 48 + counter;
}
