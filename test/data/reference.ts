/**
 * Float64 references for the data tests: PIL's separable resampler (precompute_coeffs in
 * Imaging/Resample.c) with bilinear / bicubic (a = −0.5) filters, and synthetic images.
 */
import { makeRng } from '../helpers/check';

function filter(x: number, bicubic: boolean): number {
  x = Math.abs(x);
  if (!bicubic) return x < 1 ? 1 - x : 0;
  const a = -0.5;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

function taps(inSize: number, outSize: number, bicubic: boolean): { start: number; w: number[] }[] {
  const scale = inSize / outSize;
  const fs = Math.max(scale, 1);
  const support = (bicubic ? 2 : 1) * fs;
  const out: { start: number; w: number[] }[] = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5));
    const w: number[] = [];
    for (let x = xmin; x < xmax; x++) w.push(filter((x - center + 0.5) / fs, bicubic));
    const total = w.reduce((a, b) => a + b, 0);
    out.push({ start: xmin, w: w.map((v) => (total !== 0 ? v / total : 0)) });
  }
  return out;
}

/** PIL keeps each resampling pass in uint8: round half up, clamp to 0..255. */
function toUint8Level(v: number): number {
  return Math.min(255, Math.max(0, Math.floor(v + 0.5)));
}

/**
 * Resizes image `n` of (N, H, W, C) uint8 to (M, M, C) in [0, 1] on 8-bit levels (like PIL.resize),
 * optionally the crop box [top, left, h, w] of it only, mirrored horizontally with `flip`.
 */
export function resizeRef(
  src: Uint8Array, n: number, H: number, W: number, C: number, M: number, bicubic: boolean, box = [0, 0, H, W], flip = false,
): Float64Array {
  const [top, left, h, w] = box;
  const tx = taps(w, M, bicubic);
  const ty = taps(h, M, bicubic);
  const rows = new Float64Array(h * M * C);
  const base = n * H * W * C;
  for (let y = 0; y < h; y++) {
    for (let xx = 0; xx < M; xx++) {
      const ox = flip ? M - 1 - xx : xx;
      for (let c = 0; c < C; c++) {
        let acc = 0;
        tx[xx].w.forEach((wk, k) => (acc += wk * src[base + ((top + y) * W + left + tx[xx].start + k) * C + c]));
        rows[(y * M + ox) * C + c] = toUint8Level(acc);
      }
    }
  }
  const out = new Float64Array(M * M * C);
  for (let yy = 0; yy < M; yy++) {
    for (let x = 0; x < M; x++) {
      for (let c = 0; c < C; c++) {
        let acc = 0;
        ty[yy].w.forEach((wk, k) => (acc += wk * rows[((ty[yy].start + k) * M + x) * C + c]));
        out[(yy * M + x) * C + c] = toUint8Level(acc) / 255;
      }
    }
  }
  return out;
}

/**
 * N images (H, W, C) whose pixels encode their coordinates: channel 0 = column ramp, channel 1 =
 * row ramp, channel 2 = seeded noise (for C = 1: ramp plus noise), so any misplaced pixel shows.
 */
export function coordinateImages(N: number, H: number, W: number, C: number, seed = 1): Uint8Array {
  const rng = makeRng(seed);
  const out = new Uint8Array(N * H * W * C);
  for (let n = 0; n < N; n++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const o = ((n * H + y) * W + x) * C;
        if (C === 1) {
          out[o] = Math.min(255, Math.round((200 * x) / Math.max(1, W - 1)) + Math.floor(rng() * 50));
        } else {
          out[o] = Math.round((255 * x) / Math.max(1, W - 1));
          out[o + 1] = Math.round((255 * y) / Math.max(1, H - 1));
          out[o + 2] = Math.floor(rng() * 256);
        }
      }
    }
  }
  return out;
}

/** Element (b, c, y, x) of an (B, C, S, S) NCHW array. */
export function at(a: Float32Array, C: number, S: number, b: number, c: number, y: number, x: number): number {
  return a[((b * C + c) * S + y) * S + x];
}

// ---- the augmentation's draws (native/data/augment_math.h), re-derived independently ------------

const TWO32 = 2 ** 32;

function mulhilo(a: number, m: bigint): [number, number] {
  const p = BigInt(a) * m;
  return [Number(p & 0xffffffffn), Number(p >> 32n)];
}

/** Philox-4x32-10 of a raw counter (4 words) and key (2 words) — Random123's definition. */
export function philoxBlock(counter: readonly number[], key: readonly number[]): number[] {
  let [c0, c1, c2, c3] = counter;
  let [k0, k1] = key;
  for (let round = 0; round < 10; round++) {
    const [lo0, hi0] = mulhilo(c0, 0xd2511f53n);
    const [lo1, hi1] = mulhilo(c2, 0xcd9e8d57n);
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
    k0 = (k0 + 0x9e3779b9) >>> 0;
    k1 = (k1 + 0xbb67ae85) >>> 0;
  }
  return [c0, c1, c2, c3];
}

const split = (x: number) => [x % TWO32, Math.floor(x / TWO32)];

/** cmae's use of it (core/rng.h): counter = (index lo, index hi, stream lo, stream hi), key = seed. */
export function philox(seed: number, stream: number, index: number): number[] {
  return philoxBlock([...split(index), ...split(stream)], split(seed));
}

/** Every option draw_sample reads, all given (the test states each value it relies on). */
export interface DrawParams {
  outSize: number; shiftRange: number; randomCrop: boolean; twoViews: boolean;
  scaleMin: number; scaleMax: number; ratioMin: number; ratioMax: number; flipP: number;
  jitterP: number; brightness: number; contrast: number; saturation: number; hue: number;
  grayscaleP: number; blurP: number; blurSigmaMin: number; blurSigmaMax: number; blurReferenceSize: number;
}

/** The native defaults (ops/data.h AugmentParams) for a view size. */
export function defaultDrawParams(outSize: number): DrawParams {
  return {
    outSize, shiftRange: 7, randomCrop: true, twoViews: true, scaleMin: 0.2, scaleMax: 1, ratioMin: 3 / 4, ratioMax: 4 / 3,
    flipP: 0.5, jitterP: 0.8, brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1, grayscaleP: 0.2, blurP: 0.5,
    blurSigmaMin: 0.1, blurSigmaMax: 2, blurReferenceSize: 224,
  };
}

export interface Draws {
  crop: number[]; flip: boolean; shift: number[]; jitter: boolean; order: number[]; factor: number[];
  grayscale: boolean; blur: boolean; sigma: number;
}

const unit = (w: number) => w / TWO32;

/** A finite double as mantissa · 2^exponent, both exact. */
function decompose(x: number): [bigint, number] {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const biased = Number((bits >> 52n) & 0x7ffn);
  let m = bits & 0xfffffffffffffn;
  if (biased !== 0) m |= 1n << 52n;
  return [bits >> 63n ? -m : m, (biased === 0 ? 1 : biased) - 1075];
}

/**
 * a·b + c rounded once (IEEE fused multiply-add), exactly: the native draws compute every
 * `c + a * b` as an explicit fma (native/data/augment_math.h), on every backend and build, so the
 * reference must round where they do. Finite, normal results only.
 */
export function fma(a: number, b: number, c: number): number {
  const [ma, ea] = decompose(a);
  const [mb, eb] = decompose(b);
  const [mc, ec] = decompose(c);
  const e = Math.min(ea + eb, ec);
  let n = ((ma * mb) << BigInt(ea + eb - e)) + (mc << BigInt(ec - e));
  if (n === 0n) return 0;
  const negative = n < 0n;
  if (negative) n = -n;
  // Keep 53 significant bits, rounding half to even, then scale by a power of two (exact).
  const extra = Math.max(0, n.toString(2).length - 53);
  let q = n >> BigInt(extra);
  const rest = n - (q << BigInt(extra));
  const half = extra > 0 ? 1n << BigInt(extra - 1) : 0n;
  if (extra > 0 && (rest > half || (rest === half && (q & 1n) === 1n))) q += 1n;
  const v = Number(q) * 2 ** (e + extra);
  return negative ? -v : v;
}
function randint(u: number, lo: number, hi: number): number {
  const n = hi - lo + 1;
  return lo + Math.min(Math.trunc(u * n), n - 1);
}
/** Python's round(): half to even. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d !== 0.5) return d < 0.5 ? f : f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** Blocks per sample and the block of each draw: the layout augment_math.h documents. */
export const drawLayout = { blocksPerSample: 16, cropAttempts: [0, 10], geometry: 10, jitter: 11, order: 12, blur: 13 } as const;

/**
 * What sample b of a batch draws, from the written specification: torchvision's
 * RandomResizedCrop.get_params (10 attempts, then the centre crop), a flip, the target offset, and
 * ColorJitter / RandomGrayscale / GaussianBlur's parameters, each from its own Philox block
 * (seed, stream, b·16 + block), every word as a uniform w / 2³².
 */
export function drawSampleRef(seed: number, stream: number, b: number, H: number, W: number, C: number, p: DrawParams): Draws {
  const L = drawLayout;
  const block = (k: number) => philox(seed, stream, b * L.blocksPerSample + k);
  const d: Draws = { crop: [0, 0, H, W], flip: false, shift: [0, 0], jitter: false, order: [0, 0, 0, 0], factor: [0, 0, 0, 0], grayscale: false, blur: false, sigma: 0 };
  if (p.randomCrop) d.crop = cropRef(block, H, W, p);
  const g = block(L.geometry);
  d.flip = unit(g[0]) < p.flipP;
  if (!p.twoViews) return d;
  d.shift = [randint(unit(g[1]), 0, p.shiftRange), randint(unit(g[2]), 0, p.shiftRange)];
  d.jitter = unit(g[3]) < p.jitterP;
  const o = block(L.order);
  if (d.jitter) {
    const f = block(L.jitter);
    const order = [0, 1, 2, 3];
    for (let i = 3; i >= 1; i--) {
      const j = randint(unit(o[3 - i]), 0, i);
      [order[i], order[j]] = [order[j], order[i]];
    }
    d.order = order;
    d.factor = [p.brightness, p.contrast, p.saturation].map((v, k) => {
      const lo = Math.max(0, 1 - v);
      return Math.fround(fma(1 + v - lo, unit(f[k]), lo));
    });
    d.factor.push(Math.fround(fma(2 * p.hue, unit(f[3]), -p.hue)));
  }
  d.grayscale = C === 3 && unit(o[3]) < p.grayscaleP;
  const bl = block(L.blur);
  d.blur = unit(bl[0]) < p.blurP;
  if (d.blur) {
    const sigma = fma(p.blurSigmaMax - p.blurSigmaMin, unit(bl[1]), p.blurSigmaMin);
    d.sigma = p.blurReferenceSize > 0 ? sigma * (p.outSize / p.blurReferenceSize) : sigma;
  }
  return d;
}

function cropRef(block: (k: number) => number[], H: number, W: number, p: DrawParams): number[] {
  const area = H * W;
  const [logLo, logHi] = [Math.log(p.ratioMin), Math.log(p.ratioMax)];
  for (let attempt = 0; attempt < 10; attempt++) {
    const r = block(drawLayout.cropAttempts[0] + attempt);
    const target = area * fma(p.scaleMax - p.scaleMin, unit(r[0]), p.scaleMin);
    const aspect = Math.exp(fma(logHi - logLo, unit(r[1]), logLo));
    const w = roundHalfEven(Math.sqrt(target * aspect));
    const h = roundHalfEven(Math.sqrt(target / aspect));
    if (w > 0 && w <= W && h > 0 && h <= H) return [randint(unit(r[2]), 0, H - h), randint(unit(r[3]), 0, W - w), h, w];
  }
  let [h, w] = [H, W];
  if (W / H < p.ratioMin) h = roundHalfEven(w / p.ratioMin);
  else if (W / H > p.ratioMax) w = roundHalfEven(h * p.ratioMax);
  h = Math.min(H, Math.max(1, h));
  w = Math.min(W, Math.max(1, w));
  return [Math.trunc((H - h) / 2), Math.trunc((W - w) / 2), h, w];
}
