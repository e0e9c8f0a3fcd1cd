import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShapeError, Tensor, ValueError, DTypeError, getNumThreads, kernels, setNumThreads } from '../../src/index';
import type { AugmentParams, PixelSource } from '../../src/kernels/data';
import { expectClose } from '../helpers/check';
import { at, coordinateImages, defaultDrawParams, drawSampleRef, philox, philoxBlock, resizeRef, type DrawParams } from './reference';

const { makeViews, makeViewsAsync, computeMeanStd, augmentStream, augmentDraws } = kernels;

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

describe('makeViews draws (known answers)', () => {
  it('the Philox reference matches Random123 known answers and the native generator', () => {
    // Random123 kat_vectors, philox4x32 10 rounds: counter, key → result.
    expect(philoxBlock([0, 0, 0, 0], [0, 0])).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    const ones = 0xffffffff;
    expect(philoxBlock([ones, ones, ones, ones], [ones, ones])).toEqual([0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
    expect(philoxBlock([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])).toEqual([0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
    for (const [seed, stream, index] of [[1, 2, 3], [2 ** 40 + 7, augmentStream(2 ** 47 + 5), 2 ** 35 + 1], [2 ** 52 - 1, 2 ** 52 - 1, 2 ** 52 - 1]]) {
      expect(philox(seed, stream, index), `${seed}, ${stream}, ${index}`).toEqual(kernels.philoxWords(seed, stream, index));
    }
  });

  const cases: [string, number, number, 1 | 3, DrawParams][] = [
    ['the defaults, RGB', 28, 28, 3, defaultDrawParams(32)],
    ['grey, jitter and blur always, σ unscaled', 20, 24, 1, { ...defaultDrawParams(16), shiftRange: 3, jitterP: 1, blurP: 1, blurReferenceSize: 0 }],
    ['no random crop, strong colour, always grey', 17, 13, 3, { ...defaultDrawParams(12), randomCrop: false, brightness: 1.5, contrast: 0, hue: 0.5, grayscaleP: 1 }],
    ['one view', 28, 20, 3, { ...defaultDrawParams(16), twoViews: false }],
  ];

  it.each(cases)('every field of every sample equals the reference (%s)', (_label, H, W, C, p) => {
    for (const seed of [0, 7, 2 ** 40 + 3]) {
      for (const stream of [augmentStream(0), augmentStream(123457), augmentStream(2 ** 47 + 9)]) {
        const got = augmentDraws(64, { height: H, width: W, channels: C }, p, seed, stream);
        expect(got.length).toBe(64);
        got.forEach((d, b) => expect(d, `seed ${seed}, stream ${stream}, sample ${b}`).toEqual(drawSampleRef(seed, stream, b, H, W, C, p)));
      }
    }
  });

  it('a crop no attempt fits falls back to the centred box of the nearest allowed aspect ratio', () => {
    // 6×60 at area ≥ 0.9: every attempt is taller than 6, so torchvision's fallback: w = round(6·4/3) = 8, centred.
    const p = { ...defaultDrawParams(8), scaleMin: 0.9 };
    const got = augmentDraws(32, { height: 6, width: 60, channels: 3 }, p, 3, augmentStream(1));
    for (const [b, d] of got.entries()) {
      expect(d.crop, `sample ${b}`).toEqual([0, 26, 6, 8]);
      expect(d).toEqual(drawSampleRef(3, augmentStream(1), b, 6, 60, 3, p));
    }
  });

  it('pins the draws of seed 0, batch 0 with the default parameters (literal values)', () => {
    const got = augmentDraws(3, { height: 28, width: 28, channels: 3 }, { outSize: 32 }, 0, augmentStream(0));
    expect(got).toEqual(PINNED_DRAWS);
  });

  it('no two samples of a batch share draws, and a sample\'s draws do not depend on the batch', () => {
    const p = { ...defaultDrawParams(16), jitterP: 1, blurP: 1 };
    const img = { height: 32, width: 32, channels: 3 } as const;
    const big = augmentDraws(512, img, p, 5, augmentStream(77));
    // Each sample's jitter factors and σ are 24-bit floats of its own words: shared words show as equal tuples.
    const keys = new Set(big.map((d) => JSON.stringify([d.factor, d.sigma])));
    expect(keys.size).toBe(512);
    const crops = new Set(big.map((d) => JSON.stringify(d.crop)));
    expect(crops.size).toBeGreaterThan(400);
    expect(augmentDraws(5, img, p, 5, augmentStream(77))).toEqual(big.slice(0, 5));
    expect(augmentDraws(1, img, p, 5, augmentStream(77))).toEqual(big.slice(0, 1));
    expect(augmentDraws(0, img, p, 5, augmentStream(77))).toEqual([]);
  });

  describe('makeViews applies each sample\'s own draws', () => {
    const [H, W, C, S, R] = [24, 20, 3, 12, 4];
    const src = source(6, H, W, C, 11);
    const B = 24;
    const idx = Int32Array.from({ length: B }, (_, b) => (5 * b + 1) % 6); // image ≠ position
    const img = { height: H, width: W, channels: C };
    const seed = 13;
    const stream = augmentStream(42);
    const base = { outSize: S, shiftRange: R, jitterP: 0, grayscaleP: 0, blurP: 0 };

    /** The (y, x) pairs where the target window lies inside the online view (both show the master). */
    function forOverlap(dy: number, dx: number, f: (y: number, x: number) => void): void {
      for (let y = 0; y + dy < S; y++) for (let x = 0; x + dx < S; x++) f(y, x);
    }

    it('crop box and flip (the online view is the reference resize of the drawn box) and the shift', () => {
      const draws = augmentDraws(B, img, base, seed, stream);
      expect(new Set(draws.map((d) => d.flip))).toEqual(new Set([true, false]));
      const r = makeViews(src, idx, base, seed, stream);
      const o = r.online.toArray();
      expect(Array.from(r.shifts.toArray())).toEqual(draws.flatMap((d) => d.shift));
      const M = S + R;
      draws.forEach((d, b) => {
        const ref = resizeRef(src.pixels, idx[b], H, W, C, M, true, d.crop, d.flip);
        const want: number[] = [];
        const got: number[] = [];
        for (let c = 0; c < C; c++) for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
          want.push(ref[(y * M + x) * C + c]);
          got.push(at(o, C, S, b, c, y, x));
        }
        expectResizeClose(got, want, `sample ${b} crop ${d.crop} flip ${d.flip}`);
      });
    });

    it('jitter flag and brightness factor (exact: clamp01(v · f) in float32)', () => {
      const p = { ...base, jitterP: 0.5, brightness: 0.6, contrast: 0, saturation: 0, hue: 0 };
      const draws = augmentDraws(B, img, p, seed, stream);
      expect(new Set(draws.map((d) => d.jitter))).toEqual(new Set([true, false]));
      const r = makeViews(src, idx, p, seed, stream);
      const [o, t] = [r.online.toArray(), r.target!.toArray()];
      draws.forEach(({ jitter, factor, shift: [dy, dx] }, b) => {
        for (let c = 0; c < C; c++) forOverlap(dy, dx, (y, x) => {
          const v = at(o, C, S, b, c, y + dy, x + dx);
          const want = jitter ? Math.min(1, Math.max(0, Math.fround(v * factor[0]))) : v;
          const got = at(t, C, S, b, c, y, x);
          if (got !== want) throw new Error(`sample ${b} (jitter ${jitter}, f ${factor[0]}) c${c} y${y} x${x}: ${got} != ${want}`);
        });
      });
    });

    it('grayscale and blur flags', () => {
      for (const p of [{ ...base, grayscaleP: 0.5 }, { ...base, blurP: 0.5, blurSigmaMin: 1, blurSigmaMax: 2, blurReferenceSize: 0 }]) {
        const draws = augmentDraws(B, img, p, seed, stream);
        const r = makeViews(src, idx, p, seed, stream);
        const [o, t] = [r.online.toArray(), r.target!.toArray()];
        const flags = draws.map((d) => (p.grayscaleP > 0 ? d.grayscale : d.blur));
        expect(new Set(flags)).toEqual(new Set([true, false]));
        draws.forEach(({ shift: [dy, dx] }, b) => {
          let grey = true;
          let same = true;
          for (let c = 0; c < C; c++) forOverlap(dy, dx, (y, x) => {
            const got = at(t, C, S, b, c, y, x);
            if (got !== at(t, C, S, b, 0, y, x)) grey = false;
            if (got !== at(o, C, S, b, c, y + dy, x + dx)) same = false;
          });
          if (p.grayscaleP > 0) expect(grey, `sample ${b} grey`).toBe(flags[b]);
          expect(same, `sample ${b} unchanged`).toBe(!flags[b]);
        });
      }
    });

    it('a sample\'s views depend on its position and image only, not on the other images or the batch size', () => {
      const p = { ...base, jitterP: 1, grayscaleP: 0.5, blurP: 0.5, blurReferenceSize: 0 };
      const full = makeViews(src, idx, p, seed, stream);
      const other = Int32Array.from(idx, (v, b) => (b === 9 ? v : (v + 1 + (b % 5)) % 6));
      const mixed = makeViews(src, other.subarray(0, 12), p, seed, stream);
      const n = C * S * S;
      expect(mixed.online.toArray().slice(9 * n, 10 * n)).toEqual(full.online.toArray().slice(9 * n, 10 * n));
      expect(mixed.target!.toArray().slice(9 * n, 10 * n)).toEqual(full.target!.toArray().slice(9 * n, 10 * n));
      expect(mixed.shifts.toArray()).toEqual(full.shifts.toArray().slice(0, 24));
    });
  });

  it('rejects bad arguments like makeViews does', () => {
    const img = { height: 8, width: 8, channels: 3 };
    expect(() => augmentDraws(2, img, { outSize: 8, flipP: 2 }, 0, 0)).toThrowError(/flipP must be in \[0, 1\]/);
    expect(() => augmentDraws(2, { ...img, channels: 2 }, { outSize: 8 }, 0, 0)).toThrowError(ShapeError);
    expect(() => augmentDraws(-1, img, { outSize: 8 }, 0, 0)).toThrowError(ValueError);
    expect(() => augmentDraws(2, img, { outSize: 8 }, -1, 0)).toThrowError(/seed must be a non-negative safe integer/);
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

/**
 * augmentDraws(3, 28×28×3, { outSize: 32 }, seed 0, augmentStream(0)), written down once (the
 * reference test above derives the same values): a change to the layout, the defaults or the
 * arithmetic of the draws changes them, and every run's batches with them.
 */
const PINNED_DRAWS: ReturnType<typeof augmentDraws> = [
  {
    crop: [0, 0, 20, 16], flip: true, shift: [0, 1], jitter: true, order: [0, 3, 2, 1],
    factor: [1.006518840789795, 0.8071534633636475, 0.6995403170585632, 0.059392962604761124], grayscale: false, blur: true, sigma: 0.20917713711304323,
  },
  {
    crop: [12, 7, 16, 21], flip: true, shift: [7, 6], jitter: true, order: [0, 1, 3, 2],
    factor: [0.8962934613227844, 0.6193340420722961, 1.0097986459732056, -0.0730927586555481], grayscale: true, blur: false, sigma: 0,
  },
  {
    crop: [2, 2, 26, 26], flip: true, shift: [7, 2], jitter: true, order: [2, 1, 0, 3],
    factor: [0.7808180451393127, 1.1509793996810913, 0.6606453061103821, 0.025587111711502075], grayscale: false, blur: false, sigma: 0,
  },
];
