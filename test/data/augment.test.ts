import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShapeError, Tensor, ValueError, DTypeError, getNumThreads, kernels, setNumThreads } from '../../src/index';
import type { AugmentParams, PixelSource } from '../../src/kernels/data';
import { expectClose } from '../helpers/check';
import { at, coordinateImages, resizeRef } from './reference';

const { makeViews, makeViewsAsync, computeMeanStd, augmentStream } = kernels;

const noColour: Partial<AugmentParams> = { jitterP: 0, grayscaleP: 0, blurP: 0 };

/**
 * Both sides round each resampling pass to 8-bit levels (PIL); float32 and float64 sums may land
 * on opposite sides of a .5 tie, so an element may differ by exactly one level, rarely.
 */
function expectResizeClose(got: ArrayLike<number>, want: ArrayLike<number>, label: string): void {
  expectClose(got, want, { atol: 1 / 255 + 1e-6, rtol: 0, label });
  let offByOne = 0;
  for (let i = 0; i < want.length; i++) if (Math.abs(got[i] - want[i]) > 1e-6) offByOne++;
  expect(offByOne, `${label}: elements one level off`).toBeLessThanOrEqual(Math.ceil(0.01 * want.length));
}

function source(N: number, H: number, W: number, C: number, seed = 1): PixelSource {
  return { pixels: coordinateImages(N, H, W, C, seed), size: N, height: H, width: W, channels: C };
}

function range(n: number, mod = n): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i % mod);
}

/** Horizontal trend of channel 0 of sample b: > 0 when the column ramp increases left to right. */
function trend(a: Float32Array, C: number, S: number, b: number): number {
  let s = 0;
  for (let y = 0; y < S; y++) s += at(a, C, S, b, 0, y, S - 1) - at(a, C, S, b, 0, y, 0);
  return s;
}

let savedThreads = 0;
beforeAll(() => {
  savedThreads = getNumThreads();
});
afterAll(() => setNumThreads(savedThreads));

describe('makeViews geometry', () => {
  const S = 16;
  const R = 5;
  const B = 32;
  const src = source(8, 24, 20, 3);

  it('target = online shifted by exactly the reported (dy, dx); outputs fully written', () => {
    const online = Tensor.full([B, 3, S, S], NaN);
    const target = Tensor.full([B, 3, S, S], NaN);
    const shiftsT = Tensor.full([B, 2], -1, 'int32');
    makeViews(src, range(B, 8), { outSize: S, shiftRange: R, ...noColour }, 7, augmentStream(3), { online, target, shifts: shiftsT });
    const o = online.toArray();
    const t = target.toArray();
    const shifts = shiftsT.toArray();
    expect(o.every(Number.isFinite)).toBe(true);
    expect(t.every(Number.isFinite)).toBe(true);
    const seen = new Set<number>();
    for (let b = 0; b < B; b++) {
      const dy = shifts[2 * b];
      const dx = shifts[2 * b + 1];
      expect(dy).toBeGreaterThanOrEqual(0);
      expect(dy).toBeLessThanOrEqual(R);
      expect(dx).toBeGreaterThanOrEqual(0);
      expect(dx).toBeLessThanOrEqual(R);
      seen.add(dy).add(dx);
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y + dy < S; y++) {
          for (let x = 0; x + dx < S; x++) {
            const got = at(t, 3, S, b, c, y, x);
            const want = at(o, 3, S, b, c, y + dy, x + dx);
            if (got !== want) throw new Error(`sample ${b} (dy ${dy}, dx ${dx}) c${c} y${y} x${x}: target ${got} != online ${want}`);
          }
        }
      }
    }
    expect(seen.size).toBeGreaterThan(3); // offsets really vary
    expect(seen.has(0) || seen.has(R)).toBe(true);
  });

  it('the flip is shared by both views and follows flipP', () => {
    const run = (flipP: number) => {
      const r = makeViews(src, range(B, 8), { outSize: S, shiftRange: R, flipP, scaleMin: 0.6, ...noColour }, 11, 5);
      const o = r.online.toArray();
      const t = r.target!.toArray();
      return Array.from({ length: B }, (_, b) => [Math.sign(trend(o, 3, S, b)), Math.sign(trend(t, 3, S, b))]);
    };
    const mixed = run(0.5);
    for (const [so, st] of mixed) expect(st).toBe(so);
    expect(new Set(mixed.map(([so]) => so))).toEqual(new Set([1, -1]));
    expect(run(0).every(([so, st]) => so === 1 && st === 1)).toBe(true);
    expect(run(1).every(([so, st]) => so === -1 && st === -1)).toBe(true);
  });

  it('bicubic resampling keeps flat black regions exactly 0 (8-bit levels, like PIL), so norm-pix targets there are 0', () => {
    // A black 28×28 image with a white 8×8 square in the middle, upsampled to 36×36: the ringing
    // of the bicubic filter must not leave sub-level values in the black border.
    const H = 28;
    const pixels = new Uint8Array(H * H);
    for (let y = 10; y < 18; y++) for (let x = 10; x < 18; x++) pixels[y * H + x] = 255;
    const r = makeViews({ pixels, size: 1, height: H, width: H, channels: 1 }, Int32Array.from([0, 0]), {
      outSize: 36, bicubic: true, randomCrop: false, twoViews: false, flipP: 0, mean: [0], std: [1],
    }, 1, 1);
    const o = r.online.toArray();
    for (let y = 0; y < 8; y++) for (let x = 0; x < 36; x++) expect(o[y * 36 + x]).toBe(0);
    for (const v of o) expect(Math.abs(v * 255 - Math.round(v * 255))).toBeLessThan(1e-3);
  });

  it.each([
    ['bicubic', true, 20, 13, 32],
    ['bilinear', false, 20, 13, 32],
    ['bicubic downsampling', true, 50, 44, 16],
    ['bilinear downsampling', false, 50, 44, 16],
  ])('no-crop mode reproduces a plain resize (%s)', (_label, bicubic, H, W, outSize) => {
    const s = source(3, H, W, 3, 4);
    const mean = [0.1, 0.2, 0.3];
    const std = [0.5, 0.25, 2];
    const r = makeViews(s, Int32Array.from([2, 0]), { outSize, bicubic, randomCrop: false, twoViews: false, flipP: 0, mean, std }, 1, 1);
    expect(r.target).toBeUndefined();
    expect(r.shifts.toArray()).toEqual(new Int32Array(4));
    const o = r.online.toArray();
    [2, 0].forEach((n, b) => {
      const ref = resizeRef(s.pixels, n, H, W, 3, outSize, bicubic);
      const want: number[] = [];
      const got: number[] = [];
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < outSize; y++) {
          for (let x = 0; x < outSize; x++) {
            want.push((ref[(y * outSize + x) * 3 + c] - mean[c]) / std[c]);
            got.push(at(o, 3, outSize, b, c, y, x));
          }
        }
      }
      expectResizeClose(got, want, `resize ${n}`);
    });
    // With two views, the master is the whole image resized to S + R and the online view its top-left S×S.
    const R = 3;
    const M = outSize + R;
    const two = makeViews(s, Int32Array.from([1]), { outSize, shiftRange: R, bicubic, randomCrop: false, flipP: 0, ...noColour }, 1, 1);
    const ref = resizeRef(s.pixels, 1, H, W, 3, M, bicubic);
    const o2 = two.online.toArray();
    const want: number[] = [];
    const got: number[] = [];
    for (let c = 0; c < 3; c++) for (let y = 0; y < outSize; y++) for (let x = 0; x < outSize; x++) {
      want.push(ref[(y * M + x) * 3 + c]);
      got.push(at(o2, 3, outSize, 0, c, y, x));
    }
    expectResizeClose(got, want, 'master top-left');
  });

  it('a RandomResizedCrop forced to the whole image equals the no-crop resize', () => {
    const s = source(2, 21, 21, 3, 9);
    const base = { outSize: 12, shiftRange: 4, flipP: 0, ...noColour };
    const crop = makeViews(s, range(2), { ...base, scaleMin: 1, scaleMax: 1, ratioMin: 1, ratioMax: 1 }, 3, 3);
    const full = makeViews(s, range(2), { ...base, randomCrop: false }, 3, 3);
    expect(crop.online.toArray()).toEqual(full.online.toArray());
    expect(crop.target!.toArray()).toEqual(full.target!.toArray());
  });

  it('random crops zoom in: the visible column range shrinks with the crop scale', () => {
    const s = source(1, 64, 64, 3);
    const spread = (scaleMin: number, scaleMax: number) => {
      const r = makeViews(s, new Int32Array(16), { outSize: 16, shiftRange: 0, scaleMin, scaleMax, flipP: 0, ...noColour }, 2, 2, {});
      const o = r.online.toArray();
      let total = 0;
      for (let b = 0; b < 16; b++) total += at(o, 3, 16, b, 0, 8, 15) - at(o, 3, 16, b, 0, 8, 0);
      return total / 16;
    };
    expect(spread(1, 1)).toBeGreaterThan(0.85);
    expect(spread(0.05, 0.08)).toBeLessThan(0.4);
  });
});

describe('makeViews randomness', () => {
  const S = 12;
  const src = source(6, 16, 16, 3, 2);
  const params: AugmentParams = { outSize: S, shiftRange: 3, jitterP: 1, grayscaleP: 0.5, blurP: 0.5, blurReferenceSize: 0 };
  const idx = range(24, 6);
  const run = (seed: number, stream: number) => {
    const r = makeViews(src, idx, params, seed, stream);
    return { o: r.online.toArray(), t: r.target!.toArray(), s: r.shifts.toArray() };
  };

  it('is deterministic for the same seed and stream and differs between streams and seeds', () => {
    const a = run(5, augmentStream(10));
    const b = run(5, augmentStream(10));
    expect(b.o).toEqual(a.o);
    expect(b.t).toEqual(a.t);
    expect(b.s).toEqual(a.s);
    const c = run(5, augmentStream(11));
    expect(c.o).not.toEqual(a.o);
    expect(c.s).not.toEqual(a.s);
    const d = run(6, augmentStream(10));
    expect(d.o).not.toEqual(a.o);
  });

  it('gives identical results on 1 and 2 threads, and async equals sync', async () => {
    setNumThreads(1);
    const one = run(9, 99);
    setNumThreads(2);
    const two = run(9, 99);
    setNumThreads(savedThreads);
    expect(two.o).toEqual(one.o);
    expect(two.t).toEqual(one.t);
    expect(two.s).toEqual(one.s);
    const online = Tensor.full([24, 3, S, S], NaN);
    const r = await makeViewsAsync(src, idx, params, 9, 99, { online });
    expect(r.online).toBe(online);
    expect(r.online.toArray()).toEqual(one.o);
    expect(r.target!.toArray()).toEqual(one.t);
    expect(r.shifts.toArray()).toEqual(one.s);
  });

  it('a sample depends only on its batch position, not on the rest of the batch', () => {
    const full = run(4, 4);
    const r = makeViews(src, idx.slice(0, 5), params, 4, 4);
    const n = 5 * 3 * S * S;
    expect(r.online.toArray()).toEqual(full.o.slice(0, n));
    expect(r.target!.toArray()).toEqual(full.t.slice(0, n));
  });
});

describe('makeViews colour ops', () => {
  const S = 16;
  const B = 16;
  const base: AugmentParams = { outSize: S, shiftRange: 2, ...noColour };

  it.each([3, 1])('colour jitter changes only the target (C = %i)', (C) => {
    const src = source(4, 20, 20, C, 3);
    const idx = range(B, 4);
    const plain = makeViews(src, idx, base, 1, 2);
    const jit = makeViews(src, idx, { ...base, jitterP: 1 }, 1, 2);
    expect(jit.online.toArray()).toEqual(plain.online.toArray());
    expect(jit.shifts.toArray()).toEqual(plain.shifts.toArray());
    const pt = plain.target!.toArray();
    const jt = jit.target!.toArray();
    const n = C * S * S;
    let changed = 0;
    for (let b = 0; b < B; b++) {
      let diff = 0;
      for (let i = b * n; i < (b + 1) * n; i++) diff = Math.max(diff, Math.abs(pt[i] - jt[i]));
      if (diff > 1e-3) changed++;
    }
    expect(changed).toBeGreaterThan(B * 0.8);
    for (const v of jt) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(1);
    }
  });

  it('grayscale gives equal channels in the target and leaves the online view in colour', () => {
    const src = source(4, 20, 20, 3, 5);
    const r = makeViews(src, range(B, 4), { ...base, grayscaleP: 1 }, 2, 2);
    const t = r.target!.toArray();
    const o = r.online.toArray();
    let onlineDiff = 0;
    for (let b = 0; b < B; b++) {
      for (let y = 0; y < S; y++) {
        for (let x = 0; x < S; x++) {
          const g = at(t, 3, S, b, 0, y, x);
          expect(at(t, 3, S, b, 1, y, x)).toBe(g);
          expect(at(t, 3, S, b, 2, y, x)).toBe(g);
          onlineDiff = Math.max(onlineDiff, Math.abs(at(o, 3, S, b, 0, y, x) - at(o, 3, S, b, 2, y, x)));
        }
      }
    }
    expect(onlineDiff).toBeGreaterThan(0.1);
  });

  it('blur smooths the target only (sigma scaled by outSize / blurReferenceSize)', () => {
    const src = source(4, 20, 20, 3, 6);
    const idx = range(B, 4);
    const variation = (a: Float32Array) => {
      let tv = 0;
      for (let i = 1; i < a.length; i++) if (i % S !== 0) tv += Math.abs(a[i] - a[i - 1]);
      return tv;
    };
    const plain = makeViews(src, idx, base, 3, 3);
    const blurred = makeViews(src, idx, { ...base, blurP: 1, blurSigmaMin: 1.5, blurSigmaMax: 1.5, blurReferenceSize: 0 }, 3, 3);
    expect(blurred.online.toArray()).toEqual(plain.online.toArray());
    expect(variation(blurred.target!.toArray())).toBeLessThan(0.6 * variation(plain.target!.toArray()));
    // At the default reference size 224, σ ∈ [0.1, 2] shrinks to ≤ 2·16/224 ≈ 0.14 px: nearly no change.
    const tiny = makeViews(src, idx, { ...base, blurP: 1 }, 3, 3);
    expect(variation(tiny.target!.toArray())).toBeGreaterThan(0.9 * variation(plain.target!.toArray()));
  });

  it('normalises both views with mean and std', () => {
    const src = source(4, 20, 20, 3, 7);
    const idx = range(8, 4);
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    const raw = makeViews(src, idx, { ...base, jitterP: 1 }, 4, 4);
    const norm = makeViews(src, idx, { ...base, jitterP: 1, mean, std }, 4, 4);
    for (const [r, n] of [[raw.online, norm.online], [raw.target!, norm.target!]] as const) {
      const ra = r.toArray();
      const want = Array.from(ra, (v, i) => {
        const c = Math.floor(i / (S * S)) % 3;
        return (v - mean[c]) / std[c];
      });
      expectClose(n.toArray(), want, { atol: 1e-5, rtol: 1e-5, label: 'normalised' });
    }
  });
});

describe('makeViews arguments', () => {
  const src = source(3, 10, 10, 3);
  it('rejects bad arguments with typed errors', async () => {
    expect(() => makeViews(src, Int32Array.from([0, 3]), { outSize: 8 }, 0, 0)).toThrowError(/indices\[1\] = 3 is out of range for 3 source images/);
    expect(() => makeViews(src, Int32Array.from([-1]), { outSize: 8 }, 0, 0)).toThrowError(ValueError);
    expect(() => makeViews(src, range(1), { outSize: 0 }, 0, 0)).toThrowError(ValueError);
    expect(() => makeViews({ ...src, channels: 2 }, range(1), { outSize: 8 }, 0, 0)).toThrowError(ShapeError);
    expect(() => makeViews({ ...src, size: 4 }, range(1), { outSize: 8 }, 0, 0)).toThrowError(/sources has 900 bytes but dims \[4, 10, 10, 3\] need 1200/);
    expect(() => makeViews(src, range(1), { outSize: 8, hue: 0.7 }, 0, 0)).toThrowError(/hue must be in \[0, 0.5\]/);
    expect(() => makeViews(src, range(1), { outSize: 8, scaleMin: 0.5, scaleMax: 0.2 }, 0, 0)).toThrowError(ValueError);
    expect(() => makeViews(src, range(1), { outSize: 8, shiftRange: 2, masterSize: 9 }, 0, 0)).toThrowError(/masterSize/);
    expect(() => makeViews(src, range(1), { outSize: 8, std: [1, 0, 1] }, 0, 0)).toThrowError(/std\[1\]/);
    expect(() => makeViews(src, range(1), { outSize: 8, mean: [0, 0] }, 0, 0)).toThrowError(ShapeError);
    expect(() => makeViews(src, range(2), { outSize: 8 }, 0, 0, { online: Tensor.empty([2, 3, 8, 7]) })).toThrowError(/online must have shape \[2, 3, 8, 8\]/);
    expect(() => makeViews(src, [0] as unknown as Int32Array, { outSize: 8 }, 0, 0)).toThrowError(DTypeError);
    await expect(makeViewsAsync(src, Int32Array.from([5]), { outSize: 8 }, 0, 0)).rejects.toThrowError(ValueError);
    await expect(makeViewsAsync(src, range(1), { outSize: 8, flipP: 2 }, 0, 0)).rejects.toThrowError(/flipP must be in \[0, 1\]/);
  });

  it('accepts a master larger than S + R (the spec uses S + R + 1) and an empty batch', () => {
    const r = makeViews(src, range(4, 3), { outSize: 8, shiftRange: 3, masterSize: 12, ...noColour }, 1, 1);
    expect(r.target!.shape).toEqual([4, 3, 8, 8]);
    expect(makeViews(src, new Int32Array(0), { outSize: 8 }, 0, 0).online.shape).toEqual([0, 3, 8, 8]);
  });
});

describe('computeMeanStd', () => {
  it('matches a float64 computation', () => {
    const s = source(5, 7, 9, 3, 8);
    const { mean, std } = computeMeanStd(s);
    for (let c = 0; c < 3; c++) {
      let sum = 0;
      let sq = 0;
      const n = s.pixels.length / 3;
      for (let i = c; i < s.pixels.length; i += 3) sum += s.pixels[i] / 255;
      const m = sum / n;
      for (let i = c; i < s.pixels.length; i += 3) sq += (s.pixels[i] / 255 - m) ** 2;
      expect(mean[c]).toBeCloseTo(m, 12);
      expect(std[c]).toBeCloseTo(Math.sqrt(sq / n), 10);
    }
  });
});
