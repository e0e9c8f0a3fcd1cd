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

/** Resizes image `n` of (N, H, W, C) uint8 to (M, M, C) in [0, 1] on 8-bit levels (like PIL.resize). */
export function resizeRef(src: Uint8Array, n: number, H: number, W: number, C: number, M: number, bicubic: boolean): Float64Array {
  const tx = taps(W, M, bicubic);
  const ty = taps(H, M, bicubic);
  const rows = new Float64Array(H * M * C);
  const base = n * H * W * C;
  for (let y = 0; y < H; y++) {
    for (let xx = 0; xx < M; xx++) {
      for (let c = 0; c < C; c++) {
        let acc = 0;
        tx[xx].w.forEach((w, k) => (acc += w * src[base + (y * W + tx[xx].start + k) * C + c]));
        rows[(y * M + xx) * C + c] = toUint8Level(acc);
      }
    }
  }
  const out = new Float64Array(M * M * C);
  for (let yy = 0; yy < M; yy++) {
    for (let x = 0; x < M; x++) {
      for (let c = 0; c < C; c++) {
        let acc = 0;
        ty[yy].w.forEach((w, k) => (acc += w * rows[((ty[yy].start + k) * M + x) * C + c]));
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
