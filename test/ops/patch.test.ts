import { describe, expect, it } from 'vitest';
import { DTypeError, ShapeError, Tensor, ValueError, getNumThreads, kernels, setNumThreads } from '../../src/index';
import { dot, expectClose, finiteDifference, isas, skipWithoutIsa, randn, randu, toF64, withIsa, withThreads, expectSameBits } from '../helpers/check';
import * as ref from '../reference/patch';

type Layout = 'pixels-last' | 'channels-first';
const layouts: Layout[] = ['pixels-last', 'channels-first'];

// [B, C, H, W, p]: RGB and grey, non-square images, one patch per image, ViT's p = 16.
const patchShapes: [number, number, number, number, number][] = [
  [2, 3, 8, 8, 4],
  [1, 1, 6, 4, 2],
  [3, 3, 12, 20, 4],
  [2, 2, 6, 9, 3],
  [1, 1, 5, 5, 5],
  [2, 3, 32, 48, 16],
];

const exact = { atol: 0, rtol: 0 };

/** Rows [0, prefix) of a (B, rows, D) array. */
function prefixRows(a: ArrayLike<number>, B: number, rows: number, D: number, prefix: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < B; b++) for (let i = 0; i < prefix * D; i++) out.push(a[b * rows * D + i]);
  return out;
}

/** Rows [prefix, rows) of a (B, rows, D) array. */
function bodyRows(a: ArrayLike<number>, B: number, rows: number, D: number, prefix: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < B; b++) for (let i = prefix * D; i < rows * D; i++) out.push(a[b * rows * D + i]);
  return out;
}

/** A (B, rows, D) tensor whose prefix rows hold `sentinel` and whose other rows are NaN. */
function sentinelOutput(B: number, rows: number, D: number, prefix: number, sentinel: number): Tensor {
  const data = new Float32Array(B * rows * D).fill(NaN);
  for (let b = 0; b < B; b++) data.fill(sentinel, b * rows * D, (b * rows + prefix) * D);
  return Tensor.from(data, [B, rows, D]);
}

interface MaskCase {
  B: number;
  gridH: number;
  gridW: number;
  group: number;
  keepGroups: number;
}

function maskCase(c: MaskCase, seed: number) {
  const G = (c.gridH / c.group) * (c.gridW / c.group);
  const noise = randu(c.B * G, seed);
  const result = kernels.randomMasking(Tensor.from(noise, [c.B, G]), c);
  return { G, noise, ...result };
}

describe.each(isas())('patch kernels (%s)', (isa) => {
  skipWithoutIsa(isa);
  describe('patchify / unpatchify', () => {
    it.each(patchShapes)('match MAE reshape + einsum and invert each other, B=%i C=%i %ix%i p=%i', (B, C, H, W, p) => {
      withIsa(isa, () => {
        const L = (H / p) * (W / p);
        const P = p * p * C;
        const x = randn(B * C * H * W, 7 + H * W);
        const images = Tensor.from(x, [B, C, H, W]);
        for (const layout of layouts) {
          const patches = kernels.patchify(images, p, { layout, out: Tensor.full([B, L, P], NaN) });
          expect(patches.shape).toEqual([B, L, P]);
          expectClose(patches.toArray(), ref.patchifyRef(x, B, C, H, W, p, layout), { ...exact, label: `patchify ${layout}` });
          // unpatchify ∘ patchify = identity, and patchify ∘ unpatchify = identity.
          const back = kernels.unpatchify(patches, p, { layout, height: H, width: W, out: Tensor.full([B, C, H, W], NaN) });
          expectClose(back.toArray(), x, { ...exact, label: `unpatchify ${layout}` });
          const y = randn(B * L * P, 3 + L);
          const img = kernels.unpatchify(Tensor.from(y, [B, L, P]), p, { layout, height: H, width: W });
          expect(img.shape).toEqual([B, C, H, W]);
          expectClose(kernels.patchify(img, p, { layout }).toArray(), y, { ...exact, label: `patchify∘unpatchify ${layout}` });
          // Adjoint identity: unpatchify is the backward of patchify.
          expect(dot(y, patches.toArray())).toBeCloseTo(dot(img.toArray(), x), 3);
        }
      });
    });

    it('the channels-first layout is the flattened order of the patch-embedding conv weight', () => {
      withIsa(isa, () => {
        const [B, C, H, W, p, Dout] = [2, 3, 8, 12, 4, 5];
        const x = randn(B * C * H * W, 21);
        const weight = randn(Dout * C * p * p, 22);
        const patches = kernels.patchify(Tensor.from(x, [B, C, H, W]), p, { layout: 'channels-first' }).toArray();
        const L = (H / p) * (W / p);
        const P = C * p * p;
        const viaPatches = new Float64Array(B * L * Dout);
        for (let r = 0; r < B * L; r++)
          for (let d = 0; d < Dout; d++) viaPatches[r * Dout + d] = dot(patches.subarray(r * P, (r + 1) * P), weight.subarray(d * P, (d + 1) * P));
        expectClose(viaPatches, ref.patchConvRef(x, weight, B, C, H, W, p, Dout), { atol: 1e-9, rtol: 1e-9, label: 'conv' });
      });
    });

    it('pixels-last interleaves channels: element (py·p + px)·C + c', () => {
      withIsa(isa, () => {
        // One 2x2 RGB image with value 100·c + 10·y + x.
        const x = new Float32Array(12);
        for (let c = 0; c < 3; c++) for (let y = 0; y < 2; y++) for (let xx = 0; xx < 2; xx++) x[(c * 2 + y) * 2 + xx] = 100 * c + 10 * y + xx;
        const img = Tensor.from(x, [1, 3, 2, 2]);
        expect(Array.from(kernels.patchify(img, 2).toArray())).toEqual([0, 100, 200, 1, 101, 201, 10, 110, 210, 11, 111, 211]);
        expect(Array.from(kernels.patchify(img, 2, { layout: 'channels-first' }).toArray())).toEqual([0, 1, 10, 11, 100, 101, 110, 111, 200, 201, 210, 211]);
      });
    });

    it('unpatchify infers a square grid and the channel count', () => {
      withIsa(isa, () => {
        const y = randn(2 * 9 * 48, 5);
        const img = kernels.unpatchify(Tensor.from(y, [2, 9, 48]), 4);
        expect(img.shape).toEqual([2, 3, 12, 12]);
      });
    });
  });

  describe('patchifyVisible', () => {
    it.each(patchShapes)('equals patchify + gather of the listed patches, bit for bit, B=%i C=%i %ix%i p=%i', (B, C, H, W, p) => {
      withIsa(isa, () => {
        const L = (H / p) * (W / p);
        const P = p * p * C;
        const x = randn(B * C * H * W, 51 + H * W);
        const images = Tensor.from(x, [B, C, H, W]);
        // A masking's ascending ids (about a third kept), and repeated unsorted ids.
        const K = Math.max(1, Math.round(L / 3));
        const masking = kernels.randomMasking(Tensor.from(randu(B * L, 52), [B, L]), { gridH: H / p, gridW: W / p, group: 1, keepGroups: K }).idsKeep;
        const repeated = Tensor.from(Int32Array.from({ length: B * (L + 2) }, (_, i) => (i * 7 + 3) % L), [B, L + 2]);
        for (const layout of layouts)
          for (const ids of [masking, repeated]) {
            const k = ids.shape[1];
            const out = kernels.patchifyVisible(images, ids, p, { layout, out: Tensor.full([B, k, P], NaN) });
            expect(out.shape).toEqual([B, k, P]);
            const want = ref.gatherRef(ref.patchifyRef(x, B, C, H, W, p, layout), null, ids.toArray(), B, L, k, P);
            expectClose(out.toArray(), want, { ...exact, label: `patchifyVisible ${layout} K=${k}` });
            expectSameBits(out.toArray(), kernels.gatherVisibleForward(kernels.patchify(images, p, { layout }), ids).toArray(), `vs gather ${layout}`);
          }
      });
    });
  });

  describe('random masking', () => {
    const cases: MaskCase[] = [
      { B: 4, gridH: 14, gridW: 14, group: 2, keepGroups: kernels.keepGroupsFor(49, 0.65) },
      { B: 4, gridH: 14, gridW: 14, group: 1, keepGroups: kernels.keepGroupsFor(196, 0.75) },
      { B: 3, gridH: 4, gridW: 6, group: 2, keepGroups: 2 },
      { B: 2, gridH: 3, gridW: 5, group: 1, keepGroups: 7 },
      { B: 2, gridH: 4, gridW: 4, group: 2, keepGroups: 0 },
      { B: 2, gridH: 4, gridW: 4, group: 2, keepGroups: 4 },
    ];

    it('spec §5 counts: 17 of 49 groups → 68 visible / 128 masked; 49 of 196 patches', () => {
      expect(kernels.keepGroupsFor(49, 0.65)).toBe(17);
      expect(kernels.keepGroupsFor(196, 0.75)).toBe(49);
      expect(kernels.keepGroupsFor(196, 0)).toBe(196);
      expect(kernels.keepGroupsFor(196, 1)).toBe(0);
      withIsa(isa, () => {
        const g2 = maskCase(cases[0], 1);
        expect(g2.idsKeep.shape).toEqual([4, 68]);
        expect(g2.idsRestore.shape).toEqual([4, 196]);
        expect(g2.mask.shape).toEqual([4, 196]);
        const m2 = g2.mask.toArray();
        for (let b = 0; b < 4; b++) expect(dot(m2.subarray(b * 196, (b + 1) * 196), new Float32Array(196).fill(1))).toBe(128);
        const g1 = maskCase(cases[1], 2);
        expect(g1.idsKeep.shape).toEqual([4, 49]);
        const m1 = g1.mask.toArray();
        for (let b = 0; b < 4; b++) expect(dot(m1.subarray(b * 196, (b + 1) * 196), new Float32Array(196).fill(1))).toBe(147);
      });
    });

    it.each(cases)('matches the argsort reference and its properties hold: %o', (c) => {
      withIsa(isa, () => {
        const { G, noise, idsKeep, idsRestore, mask } = maskCase(c, 10 + c.gridW + c.keepGroups);
        const { B, gridH, gridW, group, keepGroups } = c;
        const L = gridH * gridW;
        const K = keepGroups * group * group;
        const r = ref.maskingRef(noise, B, gridH, gridW, group, keepGroups);
        const keep = idsKeep.toArray();
        const restore = idsRestore.toArray();
        const m = mask.toArray();
        expect(Array.from(keep)).toEqual(Array.from(r.idsKeep));
        expect(Array.from(restore)).toEqual(Array.from(r.idsRestore));
        expect(Array.from(m)).toEqual(Array.from(r.mask));
        for (let b = 0; b < B; b++) {
          const kb = Array.from(keep.subarray(b * K, (b + 1) * K));
          const rb = Array.from(restore.subarray(b * L, (b + 1) * L));
          const mb = Array.from(m.subarray(b * L, (b + 1) * L));
          // idsRestore is a permutation; its inverse starts with idsKeep (ascending), then the masked patches ascending.
          const inverse = new Array<number>(L).fill(-1);
          rb.forEach((pos, l) => (inverse[pos] = l));
          expect(inverse.every((l) => l >= 0)).toBe(true);
          expect(inverse.slice(0, K)).toEqual(kb);
          expect(kb).toEqual([...kb].sort((x, y) => x - y));
          const rest = inverse.slice(K);
          expect(rest).toEqual([...rest].sort((x, y) => x - y));
          // idsRestore[l] < K ⇔ visible ⇔ mask 0; Σ mask = L − K.
          rb.forEach((pos, l) => expect(pos < K).toBe(mb[l] === 0));
          expect(mb.reduce((s, v) => s + v, 0)).toBe(L - K);
          // Every group is all kept or all masked, and the kept groups have the smallest noise.
          const gw = gridW / group;
          const keptNoise: number[] = [];
          const maskedNoise: number[] = [];
          for (let g = 0; g < G; g++) {
            const r0 = Math.floor(g / gw) * group;
            const c0 = (g % gw) * group;
            const values = new Set<number>();
            for (let y = r0; y < r0 + group; y++) for (let x = c0; x < c0 + group; x++) values.add(mb[y * gridW + x]);
            expect(values.size).toBe(1);
            (values.has(0) ? keptNoise : maskedNoise).push(noise[b * G + g]);
          }
          expect(keptNoise.length).toBe(keepGroups);
          if (keptNoise.length && maskedNoise.length) expect(Math.max(...keptNoise)).toBeLessThan(Math.min(...maskedNoise));
        }
      });
    });

    it('breaks ties by the lower group index and sorts NaN noise last', () => {
      withIsa(isa, () => {
        const tied = kernels.randomMasking(Tensor.full([1, 6], 0.5), { gridH: 2, gridW: 3, keepGroups: 2 });
        expect(Array.from(tied.idsKeep.toArray())).toEqual([0, 1]);
        expect(Array.from(tied.idsRestore.toArray())).toEqual([0, 1, 2, 3, 4, 5]);
        const nan = kernels.randomMasking(Tensor.from(new Float32Array([NaN, 0.9, 0.1, NaN]), [1, 4]), { gridH: 2, gridW: 2, keepGroups: 3 });
        expect(Array.from(nan.idsKeep.toArray())).toEqual([0, 1, 2]);
        expect(Array.from(nan.mask.toArray())).toEqual([0, 0, 0, 1]);
      });
    });

    it('maskingNoise is reproducible and equals philoxUniform at index b·G + g', () => {
      withIsa(isa, () => {
        const [B, G] = [5, 49];
        const stream = 3 * 2 ** 48 + 1234; // make_stream(RngStream::Mask, step 1234)
        const a = kernels.maskingNoise(B, G, 42, stream).toArray();
        const b = kernels.maskingNoise(B, G, 42, stream, Tensor.full([B, G], NaN)).toArray();
        expectSameBits(a, b, 'reproducible');
        expectSameBits(a, kernels.philoxUniform([B * G], 42, stream).toArray() as Float32Array, 'philox');
        expect(a.every((v) => v >= 0 && v < 1)).toBe(true);
        const other = kernels.maskingNoise(B, G, 42, stream + 1).toArray();
        expect(a.some((v, i) => v !== other[i])).toBe(true);
      });
    });
  });

  describe('gather of visible tokens', () => {
    const [B, gridH, gridW, D] = [3, 4, 4, 5];
    const L = gridH * gridW;

    it.each([
      [0, false],
      [1, false],
      [1, true],
      [2, true],
    ])('forward and backward match the references, prefix=%i pos=%s', (prefix, withPos) => {
      withIsa(isa, () => {
        const { idsKeep } = maskCase({ B, gridH, gridW, group: 2, keepGroups: 2 }, 31 + prefix);
        const K = 8;
        const ids = idsKeep.toArray();
        const x = randn(B * L * D, 32);
        const pos = withPos ? randn(L * D, 33) : null;
        const rows = prefix + K;
        const out = kernels.gatherVisibleForward(Tensor.from(x, [B, L, D]), idsKeep, {
          pos: pos && Tensor.from(pos, [L, D]),
          prefix,
          out: sentinelOutput(B, rows, D, prefix, 7.25),
        });
        const o = out.toArray();
        expect(prefixRows(o, B, rows, D, prefix).every((v) => v === 7.25)).toBe(true);
        expectClose(bodyRows(o, B, rows, D, prefix), ref.gatherRef(x, pos, ids, B, L, K, D), { atol: 1e-6, rtol: 1e-6, label: 'gather' });

        const dout = randn(B * rows * D, 34);
        const dtokens = kernels.gatherVisibleBackward(Tensor.from(dout, [B, rows, D]), idsKeep, L, { prefix, dtokens: Tensor.full([B, L, D], NaN) });
        const dvis = bodyRows(dout, B, rows, D, prefix);
        const dt = dtokens.toArray();
        expectClose(dt, ref.gatherBackwardRef(dvis, ids, B, L, K, D), { ...exact, label: 'dgather' });
        // Adjoint identity ⟨dout, J·x⟩ = ⟨Jᵀ·dout, x⟩ (J the pos-free gather) on the kernels' outputs...
        const jx = kernels.gatherVisibleForward(Tensor.from(x, [B, L, D]), idsKeep, { prefix }).toArray();
        expect(dot(dvis, bodyRows(jx, B, rows, D, prefix))).toBeCloseTo(dot(dt, x), 4);
        // ...and exactly in float64 on the references.
        const x64 = toF64(randn(B * L * D, 35));
        const y64 = toF64(randn(B * K * D, 36));
        expect(Math.abs(dot(y64, ref.gatherRef(x64, null, ids, B, L, K, D)) - dot(ref.gatherBackwardRef(y64, ids, B, L, K, D), x64))).toBeLessThan(1e-12);
      });
    });

    it.each([
      [0, false],
      [1, true],
      [2, true],
    ])('addPositions adds the listed position rows to tokens that are already visible, prefix=%i pos=%s', (prefix, withPos) => {
      withIsa(isa, () => {
        const { idsKeep } = maskCase({ B, gridH, gridW, group: 2, keepGroups: 2 }, 61 + prefix);
        const K = 8;
        const ids = idsKeep.toArray();
        const visible = randn(B * K * D, 62);
        const pos = withPos ? randn(L * D, 63) : null;
        const rows = prefix + K;
        const out = kernels.addPositions(Tensor.from(visible, [B, K, D]), idsKeep, {
          pos: pos && Tensor.from(pos, [L, D]),
          prefix,
          out: sentinelOutput(B, rows, D, prefix, -3.5),
        });
        const o = out.toArray();
        expect(prefixRows(o, B, rows, D, prefix).every((v) => v === -3.5)).toBe(true);
        expectClose(bodyRows(o, B, rows, D, prefix), ref.addPositionsRef(visible, pos, ids, B, K, D), { atol: 1e-6, rtol: 1e-6, label: 'addPositions' });
        // gatherVisibleForward = addPositions on the gathered rows, bit for bit.
        const x = Tensor.from(randn(B * L * D, 64), [B, L, D]);
        const posT = pos && Tensor.from(pos, [L, D]);
        const gathered = kernels.gatherVisibleForward(x, idsKeep);
        // (Rows [0, prefix) of both outputs are left unwritten: compare the others.)
        expectSameBits(
          Float32Array.from(bodyRows(kernels.addPositions(gathered, idsKeep, { pos: posT, prefix }).toArray(), B, rows, D, prefix)),
          Float32Array.from(bodyRows(kernels.gatherVisibleForward(x, idsKeep, { pos: posT, prefix }).toArray(), B, rows, D, prefix)),
          'addPositions ∘ gather',
        );
      });
    });

    it('backward agrees with finite differences of the float64 forward', () => {
      withIsa(isa, () => {
        const [b2, d2, prefix] = [2, 3, 1];
        const { idsKeep } = maskCase({ B: b2, gridH: 3, gridW: 3, group: 1, keepGroups: 4 }, 41);
        const ids = idsKeep.toArray();
        const pos = toF64(randn(9 * d2, 42));
        const dout = toF64(randn(b2 * 4 * d2, 43));
        const x = toF64(randn(b2 * 9 * d2, 44));
        const fd = finiteDifference((v) => dot(dout, ref.gatherRef(v, pos, ids, b2, 9, 4, d2)), x);
        const doutWithPrefix = new Float32Array(b2 * (prefix + 4) * d2).fill(NaN); // prefix rows are ignored
        for (let b = 0; b < b2; b++) doutWithPrefix.set(Float32Array.from(dout.subarray(b * 4 * d2, (b + 1) * 4 * d2)), (b * (prefix + 4) + prefix) * d2);
        const dt = kernels.gatherVisibleBackward(Tensor.from(doutWithPrefix, [b2, prefix + 4, d2]), idsKeep, 9, { prefix }).toArray();
        expectClose(dt, fd, { atol: 1e-6, rtol: 1e-6, label: 'fd gather' });
      });
    });
  });

  describe('decoder unshuffle', () => {
    const [B, gridH, gridW, D] = [3, 4, 6, 7];
    const L = gridH * gridW;

    it.each([
      [0, false, false],
      [1, false, false],
      [1, true, false],
      [1, true, true],
      [2, true, true],
    ])('forward and backward match the references, prefix=%i pos=%s posPrefix=%s', (prefix, withPos, withPosPrefix) => {
      withIsa(isa, () => {
        const { idsRestore } = maskCase({ B, gridH, gridW, group: 2, keepGroups: 3 }, 51 + prefix);
        const K = 12;
        const restore = idsRestore.toArray();
        const inp = randn(B * (prefix + K) * D, 52);
        const maskToken = randn(D, 53);
        const pos = withPos ? randn(L * D, 54) : null;
        const posPrefix = withPosPrefix ? randn(prefix * D, 55) : null;
        const rows = prefix + L;
        const out = kernels.unshuffleForward(Tensor.from(inp, [B, prefix + K, D]), Tensor.from(maskToken, [D]), idsRestore, {
          pos: pos && Tensor.from(pos, [L, D]),
          posPrefix: posPrefix && Tensor.from(posPrefix, [prefix, D]),
          prefix,
          out: Tensor.full([B, rows, D], NaN),
        });
        expectClose(out.toArray(), ref.unshuffleRef(inp, maskToken, pos, posPrefix, restore, B, L, K, D, prefix), { atol: 1e-6, rtol: 1e-6, label: 'unshuffle' });

        const dout = randn(B * rows * D, 56);
        const acc0 = randn(D, 57);
        const { dinp, dmaskToken } = kernels.unshuffleBackward(Tensor.from(dout, [B, rows, D]), idsRestore, K, {
          prefix,
          dinp: Tensor.full([B, prefix + K, D], NaN),
          dmaskToken: Tensor.from(acc0, [D]),
        });
        const r = ref.unshuffleBackwardRef(dout, restore, B, L, K, D, prefix);
        expectClose(dinp.toArray(), r.dinp, { ...exact, label: 'dinp' });
        expectClose(dmaskToken.toArray(), Float64Array.from(r.dmaskToken, (v, i) => v + acc0[i]), { atol: 1e-6, rtol: 1e-6, label: 'dmaskToken (+=)' });

        // Adjoint identity for the linear part (pos = 0): ⟨dout, J·(inp, t)⟩ = ⟨Jᵀ·dout, (inp, t)⟩.
        const jx = kernels.unshuffleForward(Tensor.from(inp, [B, prefix + K, D]), Tensor.from(maskToken, [D]), idsRestore, { prefix }).toArray();
        const zero = kernels.unshuffleBackward(Tensor.from(dout, [B, rows, D]), idsRestore, K, { prefix });
        expect(dot(dout, jx)).toBeCloseTo(dot(zero.dinp.toArray(), inp) + dot(zero.dmaskToken.toArray(), maskToken), 3);
        const x64 = toF64(randn(B * (prefix + K) * D, 58));
        const t64 = toF64(randn(D, 59));
        const y64 = toF64(randn(B * rows * D, 60));
        const r64 = ref.unshuffleBackwardRef(y64, restore, B, L, K, D, prefix);
        const lhs = dot(y64, ref.unshuffleRef(x64, t64, null, null, restore, B, L, K, D, prefix));
        expect(Math.abs(lhs - dot(r64.dinp, x64) - dot(r64.dmaskToken, t64))).toBeLessThan(1e-11);
      });
    });

    it('backward agrees with finite differences of the float64 forward', () => {
      withIsa(isa, () => {
        const [b2, d2, prefix, K] = [2, 3, 1, 4];
        const { idsRestore } = maskCase({ B: b2, gridH: 3, gridW: 3, group: 1, keepGroups: K }, 61);
        const restore = idsRestore.toArray();
        const pos = toF64(randn(9 * d2, 62));
        const posPrefix = toF64(randn(prefix * d2, 63));
        const dout = toF64(randn(b2 * (prefix + 9) * d2, 64));
        const nInp = b2 * (prefix + K) * d2;
        const params = toF64(randn(nInp + d2, 65)); // [inp, maskToken]
        const f = (v: Float64Array) => dot(dout, ref.unshuffleRef(v.subarray(0, nInp), v.subarray(nInp), pos, posPrefix, restore, b2, 9, K, d2, prefix));
        const fd = finiteDifference(f, params);
        const g = kernels.unshuffleBackward(Tensor.from(Float32Array.from(dout), [b2, prefix + 9, d2]), idsRestore, K, { prefix });
        expectClose([...g.dinp.toArray(), ...g.dmaskToken.toArray()], fd, { atol: 1e-6, rtol: 1e-6, label: 'fd unshuffle' });
      });
    });

    it('round trip: unshuffle of the gathered tokens puts every visible token back at its index', () => {
      withIsa(isa, () => {
        const [b2, d2] = [4, 6];
        const { idsKeep, idsRestore, mask } = maskCase({ B: b2, gridH: 14, gridW: 14, group: 2, keepGroups: 17 }, 71);
        const x = randn(b2 * 196 * d2, 72);
        const visible = kernels.gatherVisibleForward(Tensor.from(x, [b2, 196, d2]), idsKeep, { prefix: 1 });
        const token = Float32Array.from({ length: d2 }, (_, d) => 1000 + d);
        const full = kernels.unshuffleForward(visible, Tensor.from(token, [d2]), idsRestore, { prefix: 1 }).toArray();
        const m = mask.toArray();
        for (let b = 0; b < b2; b++)
          for (let l = 0; l < 196; l++) {
            const row = Array.from(full.subarray((b * 197 + 1 + l) * d2, (b * 197 + 2 + l) * d2));
            const expected = m[b * 196 + l] === 0 ? Array.from(x.subarray((b * 196 + l) * d2, (b * 196 + l + 1) * d2)) : Array.from(token);
            expect(row).toEqual(expected);
          }
      });
    });
  });

  describe('2-D sin-cos position embedding', () => {
    const table = (D: number) => withIsa(isa, () => kernels.sincosPosEmbed2d(14, 14, D, Tensor.full([196, D], NaN)).toArray());
    /** dims [d0, d0 + 3) of spec token t (= 1 + patch index; row 0 of the spec's table is cls). */
    const dims = (e: Float32Array, D: number, t: number, d0: number) => Array.from(e.subarray((t - 1) * D + d0, (t - 1) * D + d0 + 3));
    const spec = { atol: 1.5e-6, rtol: 0 };

    it('D = 768 matches spec §5', () => {
      const e = table(768);
      expectClose(dims(e, 768, 2, 0), [0.841471, 0.815251, 0.788593], { ...spec, label: 't2 0' });
      expectClose(dims(e, 768, 2, 192), [0.540302, 0.579108, 0.614915], { ...spec, label: 't2 192' });
      expectClose(dims(e, 768, 2, 384), [0, 0, 0], { ...spec, label: 't2 384' });
      expectClose(dims(e, 768, 2, 576), [1, 1, 1], { ...spec, label: 't2 576' });
      expectClose(dims(e, 768, 15, 0), [0, 0, 0], { ...spec, label: 't15 0' });
      expectClose(dims(e, 768, 15, 192), [1, 1, 1], { ...spec, label: 't15 192' });
      expectClose(dims(e, 768, 15, 384), [0.841471, 0.815251, 0.788593], { ...spec, label: 't15 384' });
      expectClose(dims(e, 768, 15, 576), [0.540302, 0.579108, 0.614915], { ...spec, label: 't15 576' });
      expectClose(dims(e, 768, 32, 0), [0.14112, 0.27838, 0.404141], { ...spec, label: 't32 0' });
      expectClose(dims(e, 768, 32, 384), [0.909297, 0.944237, 0.969836], { ...spec, label: 't32 384' });
      // ω from patch (row 0, col 1): sin(ω_d) at dim d, cos(ω_d) at dim Q + d.
      expect(Math.atan2(e[768 + 1], e[768 + 192 + 1])).toBeCloseTo(0.9531619, 6);
      expect(Math.atan2(e[768 + 191], e[768 + 383]) / 1.049e-4).toBeCloseTo(1, 3);
      expect(dot(e, e) / 75264).toBeCloseTo(1, 6);
      expect(e.reduce((s, v) => s + v, 0)).toBeCloseTo(69594.49, 1);
      expectClose(e, ref.sincosRef(14, 14, 768), { atol: 1e-6, rtol: 0, label: 'sincos 768' });
    });

    it('D = 512 matches spec §5', () => {
      const e = table(512);
      expectClose(dims(e, 512, 2, 0), [0.841471, 0.801962, 0.76172], { ...spec, label: 't2 0' });
      expectClose(dims(e, 512, 2, 128), [0.540302, 0.597375, 0.647906], { ...spec, label: 't2 128' });
      expect(Math.atan2(e[512 + 1], e[512 + 128 + 1])).toBeCloseTo(0.930572, 6);
      expect(dot(e, e) / 50176).toBeCloseTo(1, 6);
      expect(e.reduce((s, v) => s + v, 0)).toBeCloseTo(46340.33, 1);
      expectClose(e, ref.sincosRef(14, 14, 512), { atol: 1e-6, rtol: 0, label: 'sincos 512' });
    });

    it('non-square grids: first half encodes the column, second half the row', () => {
      withIsa(isa, () => {
        const e = kernels.sincosPosEmbed2d(3, 5, 8).toArray();
        expectClose(e, ref.sincosRef(3, 5, 8), { atol: 1e-6, rtol: 0, label: 'sincos 3x5' });
        // patch 7 = (row 1, col 2): dim 0 = sin(2), dim 4 = sin(1).
        expect(e[7 * 8]).toBeCloseTo(Math.sin(2), 6);
        expect(e[7 * 8 + 4]).toBeCloseTo(Math.sin(1), 6);
      });
    });
  });

  it('results do not depend on the thread count (bit-identical with 1 and 2 threads)', () => {
    withIsa(isa, () => {
      const [B, L, D, prefix] = [16, 196, 512, 1];
      const noise = Tensor.from(randu(B * 49, 81), [B, 49]);
      const opts = { gridH: 14, gridW: 14, group: 2, keepGroups: 17 };
      const dout = Tensor.from(randn(B * (prefix + L) * D, 82), [B, prefix + L, D]);
      const images = Tensor.from(randn(B * 3 * 32 * 32, 83), [B, 3, 32, 32]);
      const visibleIds = Tensor.from(Int32Array.from({ length: B * 40 }, (_, i) => (i * 37 + 5) % 64), [B, 40]); // of L = 64 patches
      const run = () => {
        const m = kernels.randomMasking(noise, opts);
        const acc = Tensor.from(randn(D, 84), [D]);
        const g = kernels.unshuffleBackward(dout, m.idsRestore, 68, { prefix, dmaskToken: acc });
        return [
          m.mask.toArray(),
          g.dinp.toArray(),
          g.dmaskToken.toArray(),
          kernels.patchify(images, 4).toArray(),
          kernels.patchifyVisible(images, visibleIds, 4).toArray(),
          kernels.maskingNoise(B, 49, 9, 10).toArray(),
        ];
      };
      const one = withThreads(1, run);
      const two = withThreads(2, run);
      const labels = ['mask', 'dinp', 'dmaskToken', 'patchify', 'patchifyVisible', 'maskingNoise'];
      one.forEach((a, i) => expectSameBits(a, two[i], labels[i]));
    });
  });

  it('rejects bad arguments with typed errors and keeps the process alive', () => {
    withIsa(isa, () => {
      const img = Tensor.from(randn(2 * 3 * 8 * 10, 91), [2, 3, 8, 10]);
      expect(() => kernels.patchify(img, 4)).toThrowError(ValueError);
      expect(() => kernels.patchify(img, 4)).toThrowError(/images height and width must be multiples of the patch size p = 4, got 8x10/);
      expect(() => kernels.patchify(img, 2, { layout: 'nhwc' as Layout })).toThrowError(/layout must be 'pixels-last' or 'channels-first'/);
      expect(() => kernels.patchify(img, 0)).toThrowError(/p must be a positive integer/);
      expect(() => kernels.patchify(img, 2, { out: Tensor.empty([2, 20, 13]) })).toThrowError(ShapeError);
      expect(() => kernels.unpatchify(Tensor.empty([2, 20, 13]), 2, { out: Tensor.empty([2, 3, 8, 10]) })).toThrowError(/patches must have shape \[2, 20, 12\], got \[2, 20, 13\]/);
      expect(() => kernels.unpatchify(Tensor.empty([2, 20, 12]), 2)).toThrowError(/not a square grid/);

      const noise = Tensor.from(randu(2 * 49, 92), [2, 49]);
      expect(() => kernels.randomMasking(noise, { gridH: 14, gridW: 13, group: 2, keepGroups: 3 })).toThrowError(/grid 14x13 must be divisible by group = 2/);
      expect(() => kernels.randomMasking(noise, { gridH: 14, gridW: 14, group: 2, keepGroups: 50 })).toThrowError(/keepGroups must be in \[0, G\] = \[0, 49\], got 50/);
      expect(() => kernels.randomMasking(noise, { gridH: 14, gridW: 14, group: 2, keepGroups: -1 })).toThrowError(ValueError);
      expect(() => kernels.randomMasking(noise, { gridH: 14, gridW: 14, group: 1, keepGroups: 3 })).toThrowError(/noise must have shape \[2, 196\], got \[2, 49\]/);
      expect(() => kernels.randomMasking(noise, { gridH: 14, gridW: 14, group: 2, keepGroups: 3, idsKeep: Tensor.empty([2, 12]) })).toThrowError(DTypeError);
      expect(() => kernels.maskingNoise(2, 3, -1, 0)).toThrowError(/seed must be a non-negative integer/);
      expect(() => kernels.keepGroupsFor(49, 1.5)).toThrowError(ValueError);

      const tokens = Tensor.from(randn(2 * 16 * 4, 93), [2, 16, 4]);
      const badKeep = Tensor.from(new Int32Array([0, 1, 2, 3, 4, 16]), [2, 3]);
      expect(() => kernels.gatherVisibleForward(tokens, badKeep)).toThrowError(ValueError);
      expect(() => kernels.gatherVisibleForward(tokens, badKeep)).toThrowError(/idsKeep\[1, 2\] = 16 is out of range \[0, L\) = \[0, 16\)/);
      const negKeep = Tensor.from(new Int32Array([0, -1, 2, 3, 4, 5]), [2, 3]);
      expect(() => kernels.gatherVisibleBackward(Tensor.empty([2, 3, 4]), negKeep, 16)).toThrowError(/idsKeep\[0, 1\] = -1 is out of range/);
      expect(() => kernels.gatherVisibleForward(tokens, Tensor.from(new Float32Array(6), [2, 3]) as unknown as Tensor)).toThrowError(/idsKeep must be int32, got float32/);
      const okKeep = Tensor.from(new Int32Array([0, 1, 2, 3, 4, 5]), [2, 3]);
      expect(() => kernels.gatherVisibleForward(tokens, okKeep, { pos: Tensor.empty([15, 4]) })).toThrowError(/pos must have shape \[16, 4\]/);
      expect(() => kernels.gatherVisibleForward(tokens, okKeep, { prefix: -1, out: Tensor.empty([2, 3, 4]) })).toThrowError(/prefix must be a non-negative integer/);

      const inp = Tensor.from(randn(2 * 5 * 4, 94), [2, 5, 4]);
      const badRestore = Tensor.from(Int32Array.from({ length: 32 }, (_, i) => (i === 20 ? 99 : i % 16)), [2, 16]);
      expect(() => kernels.unshuffleForward(inp, Tensor.zeros([4]), badRestore, { prefix: 1 })).toThrowError(/idsRestore\[1, 4\] = 99 is out of range \[0, L\) = \[0, 16\)/);
      expect(() => kernels.unshuffleBackward(Tensor.empty([2, 17, 4]), badRestore, 4, { prefix: 1 })).toThrowError(ValueError);
      const restore = Tensor.from(Int32Array.from({ length: 32 }, (_, i) => i % 16), [2, 16]);
      expect(() => kernels.unshuffleForward(inp, Tensor.zeros([5]), restore, { prefix: 1 })).toThrowError(/maskToken must have shape \[4\]/);
      expect(() => kernels.unshuffleBackward(Tensor.empty([2, 17, 4]), restore, 4, { prefix: 1, dmaskToken: Tensor.zeros([3]) })).toThrowError(ShapeError);
      expect(() => kernels.unshuffleForward(inp, Tensor.zeros([4]), restore, { prefix: 6, out: Tensor.empty([2, 22, 4]) })).toThrowError(/inp must have at least prefix = 6 rows/);

      const ids = Tensor.from(new Int32Array([0, 1, 2, 3, 4, 20]), [2, 3]);
      expect(() => kernels.patchifyVisible(img, ids, 2)).toThrowError(ValueError);
      expect(() => kernels.patchifyVisible(img, ids, 2)).toThrowError(/ids\[1, 2\] = 20 is out of range \[0, L\) = \[0, 20\)/);
      expect(() => kernels.patchifyVisible(img, Tensor.from(new Int32Array(3), [1, 3]), 2)).toThrowError(/ids must have shape \[2, 3\], got \[1, 3\]/);
      expect(() => kernels.patchifyVisible(img, okKeep, 0)).toThrowError(/p must be a positive integer/);
      expect(() => kernels.patchifyVisible(img, okKeep, 4)).toThrowError(/multiples of the patch size p = 4/);
      expect(() => kernels.patchifyVisible(img, okKeep, 2, { out: Tensor.empty([2, 3, 13]) })).toThrowError(/patches must have shape \[2, 3, 12\]/);
      expect(() => kernels.addPositions(Tensor.empty([2, 3, 4]), badKeep, { pos: Tensor.empty([16, 4]) })).toThrowError(/ids\[1, 2\] = 16 is out of range/);
      expect(() => kernels.addPositions(Tensor.empty([2, 3, 4]), okKeep, { pos: Tensor.empty([16, 5]) })).toThrowError(/pos must have shape \[16, 4\]/);
      expect(() => kernels.addPositions(Tensor.empty([2, 3, 4]), Tensor.from(new Int32Array(4), [2, 2]))).toThrowError(/ids must have shape \[2, 3\]/);

      expect(() => kernels.sincosPosEmbed2d(14, 14, 6)).toThrowError(/D must be a positive multiple of 4, got 6/);
      expect(() => kernels.sincosPosEmbed2d(14, 14, 8, Tensor.empty([195, 8]))).toThrowError(/out must have shape \[196, 8\]/);

      // Still alive: a valid call works.
      expect(kernels.patchify(img, 2).shape).toEqual([2, 20, 12]);
    });
  });
});
