/**
 * Mixup and CutMix for fine-tuning, as timm's Mixup in 'batch' mode (MAE's fine-tuning: mixup 0.8,
 * cutmix 1.0, switch probability 0.5): every image is mixed with the batch's reversed order,
 * λ ~ Beta(α, α) once per batch; mixup blends whole images, CutMix pastes a box of area share 1 − λ
 * (λ is then corrected to the pasted box's exact share, clipped at the borders). The labels mix with
 * the same λ (softTargets' `mix`).
 */
import { ValueError } from '../errors';
import { makeRng } from '../eval/rng';

export interface MixOptions {
  /** Mixup's Beta α (0 = no mixup). */
  mixup: number;
  /** CutMix's Beta α (0 = no CutMix). */
  cutmix: number;
  /** With both on: the probability of CutMix for a batch. Default 0.5. */
  switchProb?: number;
}

export interface MixResult {
  /** The mixed images, NCHW (a new array). */
  images: Float32Array;
  /** Row i is mixed with row partner[i] (the reversed batch). */
  partner: Int32Array;
  /** The weight of each row's own image (and label). */
  lambda: number;
  kind: 'mixup' | 'cutmix';
}

/** A Gamma(shape, 1) draw (Marsaglia and Tsang; shape < 1 through the boost U^(1/shape)). */
function gamma(shape: number, rng: () => number): number {
  if (shape < 1) return gamma(shape + 1, rng) * rng() ** (1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      // Box–Muller normal.
      x = Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rng();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

/** A Beta(α, α) draw. */
export function betaDraw(alpha: number, rng: () => number): number {
  const a = gamma(alpha, rng);
  const b = gamma(alpha, rng);
  return a / (a + b);
}

export function checkMixOptions(o: MixOptions): void {
  for (const key of ['mixup', 'cutmix'] as const) {
    if (!(Number.isFinite(o[key]) && o[key] >= 0)) throw new ValueError(`${key} must be a non-negative Beta α (0 = off), got ${o[key]}`);
  }
  const p = o.switchProb ?? 0.5;
  if (!(p >= 0 && p <= 1)) throw new ValueError(`switchProb must be in [0, 1], got ${p}`);
}

/**
 * Mixes a batch of N images (NCHW, C·S·S values each) with its reversed order, seeded by `seed`
 * (one per step, so that a run is reproducible); undefined when both α are 0.
 */
export function mixBatch(images: Float32Array, n: number, channels: number, size: number, o: MixOptions, seed: number): MixResult | undefined {
  if (o.mixup <= 0 && o.cutmix <= 0) return undefined;
  const rng = makeRng(seed);
  const kind = o.cutmix > 0 && (o.mixup <= 0 || rng() < (o.switchProb ?? 0.5)) ? 'cutmix' : 'mixup';
  let lambda = betaDraw(kind === 'cutmix' ? o.cutmix : o.mixup, rng);
  const partner = Int32Array.from({ length: n }, (_, i) => n - 1 - i);
  const per = channels * size * size;
  const out = new Float32Array(images.subarray(0, n * per));
  if (kind === 'mixup') {
    for (let i = 0; i < n; i++) {
      const a = i * per;
      const b = partner[i] * per;
      for (let k = 0; k < per; k++) out[a + k] = lambda * images[a + k] + (1 - lambda) * images[b + k];
    }
  } else {
    // timm's rand_bbox: a box of side S·sqrt(1 − λ) centred uniformly, clipped at the borders.
    const cut = Math.floor(size * Math.sqrt(1 - lambda));
    const cy = Math.floor(rng() * size);
    const cx = Math.floor(rng() * size);
    const y0 = Math.max(0, cy - (cut >> 1));
    const y1 = Math.min(size, cy + (cut >> 1));
    const x0 = Math.max(0, cx - (cut >> 1));
    const x1 = Math.min(size, cx + (cut >> 1));
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < channels; c++) {
        for (let y = y0; y < y1; y++) {
          const row = ((i * channels + c) * size + y) * size;
          const from = ((partner[i] * channels + c) * size + y) * size;
          for (let x = x0; x < x1; x++) out[row + x] = images[from + x];
        }
      }
    }
    lambda = 1 - ((y1 - y0) * (x1 - x0)) / (size * size);
  }
  return { images: out, partner, lambda, kind };
}
