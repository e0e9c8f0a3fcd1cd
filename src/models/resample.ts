/**
 * Bicubic resampling of a channel-last grid (a ViT position-embedding table: rows = grid cells in
 * row-major order, columns = channels), computed in float64, as PyTorch's
 * `F.interpolate(mode='bicubic', align_corners=False)` computes it:
 *
 * - antialias = false (the official MAE code's interpolate_pos_embed, timm's legacy
 *   resize_pos_embed): Keys' cubic convolution with A = -0.75 on the 4 nearest source samples,
 *   source coordinate (o + 0.5)·in/out − 0.5, indices clamped to the border (replicate padding).
 * - antialias = true (timm's resample_abs_pos_embed and checkpoint_filter_fn default): PIL's
 *   separable filter, cubic with a = -0.5, its support widened by in/out when downsampling, the
 *   weights of the taps inside the image renormalised to sum 1 (no padding).
 *
 * Both are separable: each output cell is Σ_y Σ_x wy·wx·src; the weights are computed per axis.
 */
import { ValueError } from '../errors';

/** For one axis: for each output index, the source indices and their weights. */
interface AxisTaps {
  index: Int32Array[];
  weight: Float64Array[];
}

const A_PLAIN = -0.75;
const A_ANTIALIAS = -0.5;

function cubic(x: number, a: number): number {
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

function plainTaps(inSize: number, outSize: number): AxisTaps {
  const scale = inSize / outSize;
  const index: Int32Array[] = [];
  const weight: Float64Array[] = [];
  for (let o = 0; o < outSize; o++) {
    // PyTorch's area_pixel_compute_source_index for cubic: not clamped at 0, unlike linear modes.
    const real = scale * (o + 0.5) - 0.5;
    const base = Math.floor(real);
    const t = real - base;
    const idx = new Int32Array(4);
    const w = new Float64Array(4);
    for (let k = 0; k < 4; k++) {
      idx[k] = Math.min(Math.max(base - 1 + k, 0), inSize - 1);
      w[k] = cubic(t + 1 - k, A_PLAIN);
    }
    index.push(idx);
    weight.push(w);
  }
  return { index, weight };
}

function antialiasTaps(inSize: number, outSize: number): AxisTaps {
  const scale = inSize / outSize;
  const support = scale >= 1 ? 2 * scale : 2;
  const invScale = scale >= 1 ? 1 / scale : 1;
  const index: Int32Array[] = [];
  const weight: Float64Array[] = [];
  for (let o = 0; o < outSize; o++) {
    const center = scale * (o + 0.5);
    // Math.trunc as C++'s int64_t conversion; the max with 0 makes the rounding direction moot below 0.
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    const idx = new Int32Array(hi - lo);
    const w = new Float64Array(hi - lo);
    let total = 0;
    for (let j = 0; j < hi - lo; j++) {
      idx[j] = lo + j;
      w[j] = cubic((j + lo - center + 0.5) * invScale, A_ANTIALIAS);
      total += w[j];
    }
    if (total !== 0) for (let j = 0; j < w.length; j++) w[j] /= total;
    index.push(idx);
    weight.push(w);
  }
  return { index, weight };
}

function positiveInt(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 1) throw new ValueError(`${name} must be a positive integer, got ${value}`);
}

/**
 * Resamples `src` ([inH, inW, channels], row-major, channel-last) to [outH, outW, channels]
 * (float64). Sizes equal to the input's return a copy.
 */
export function resampleBicubic(
  src: ArrayLike<number>,
  inH: number,
  inW: number,
  channels: number,
  outH: number,
  outW: number,
  options: { antialias: boolean },
): Float64Array {
  for (const [v, n] of [[inH, 'inH'], [inW, 'inW'], [channels, 'channels'], [outH, 'outH'], [outW, 'outW']] as const) positiveInt(v, n);
  if (src.length !== inH * inW * channels) {
    throw new ValueError(`src must hold inH·inW·channels = ${inH * inW * channels} values, got ${src.length}`);
  }
  const taps = options.antialias ? antialiasTaps : plainTaps;
  const ty = taps(inH, outH);
  const tx = taps(inW, outW);
  // Width first (PyTorch's separable antialias pass order), then height.
  const rows = new Float64Array(inH * outW * channels);
  for (let y = 0; y < inH; y++) {
    for (let ox = 0; ox < outW; ox++) {
      const out = (y * outW + ox) * channels;
      const idx = tx.index[ox];
      const w = tx.weight[ox];
      for (let k = 0; k < idx.length; k++) {
        const from = (y * inW + idx[k]) * channels;
        for (let c = 0; c < channels; c++) rows[out + c] += w[k] * src[from + c];
      }
    }
  }
  const result = new Float64Array(outH * outW * channels);
  for (let oy = 0; oy < outH; oy++) {
    const idx = ty.index[oy];
    const w = ty.weight[oy];
    for (let ox = 0; ox < outW; ox++) {
      const out = (oy * outW + ox) * channels;
      for (let k = 0; k < idx.length; k++) {
        const from = (idx[k] * outW + ox) * channels;
        for (let c = 0; c < channels; c++) result[out + c] += w[k] * rows[from + c];
      }
    }
  }
  return result;
}
