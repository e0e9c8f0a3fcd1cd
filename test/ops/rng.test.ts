import { describe, expect, it } from 'vitest';
import { kernels } from '../../src/index';

describe('Philox-4x32-10 (native/core/rng.h)', () => {
  it('matches the Random123 known-answer vector for counter 0, key 0', () => {
    // Random123 kat_vectors: philox4x32 10 00000000×4 00000000×2 → 6627e8d5 e169c58d bc57ac4c 9b00dbd8
    expect(kernels.philoxWords(0, 0, 0)).toEqual([0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
  });

  it('draws uniform [0, 1) floats: moments, range, and independent streams', () => {
    const n = 200_003;
    const a = kernels.philoxUniform([n], 42, 7).toArray();
    const b = kernels.philoxUniform([n], 42, 8).toArray();
    let sum = 0;
    let sq = 0;
    let cross = 0;
    let min = 1;
    let max = 0;
    for (let i = 0; i < n; i++) {
      sum += a[i];
      sq += a[i] * a[i];
      cross += (a[i] - 0.5) * (b[i] - 0.5);
      min = Math.min(min, a[i]);
      max = Math.max(max, a[i]);
    }
    const mean = sum / n;
    const variance = sq / n - mean * mean;
    expect(Math.abs(mean - 0.5)).toBeLessThan(4 * Math.sqrt(1 / 12 / n));
    expect(Math.abs(variance - 1 / 12)).toBeLessThan(0.002);
    expect(Math.abs(cross / n)).toBeLessThan(4 * (1 / 12) / Math.sqrt(n));
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThan(1);
    // A histogram of 16 bins is flat within 5 sigma.
    const bins = new Array(16).fill(0);
    for (const v of a) bins[Math.floor(v * 16)]++;
    const expected = n / 16;
    for (const count of bins) expect(Math.abs(count - expected)).toBeLessThan(5 * Math.sqrt(expected));
  });

  it('is a pure function of (seed, stream, index): offsets address the same numbers', () => {
    const whole = kernels.philoxUniform([100], 3, 9, 0).toArray();
    const tail = kernels.philoxUniform([40], 3, 9, 60).toArray();
    expect(Array.from(tail)).toEqual(Array.from(whole.subarray(60)));
    expect(kernels.philoxUniform([4], 4, 9).toArray()[0]).not.toBe(whole[0]);
  });
});
