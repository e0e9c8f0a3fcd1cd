/** Seeded permutations from the native Philox generator (native/core/rng.h), keyed by (seed, counter). */
import { ValueError } from '../errors';
import { philoxUniform } from '../kernels/rng';
import { shuffleStream } from '../kernels/data';

/**
 * A uniformly random permutation of 0..n−1 (Fisher–Yates), a pure function of (seed, counter);
 * the loader uses counter = epoch. Each swap uses two 24-bit Philox draws (48 bits), so the bias is
 * negligible for any realistic n.
 */
export function permutation(n: number, seed: number, counter: number): Int32Array {
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 31) throw new ValueError(`n must be an integer in [0, 2^31), got ${n}`);
  if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) throw new ValueError(`seed must be a non-negative safe integer, got ${seed}`);
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  if (n < 2) return perm;
  const draws = philoxUniform([2 * (n - 1)], seed, shuffleStream(counter));
  const u = draws.toArray();
  draws.dispose();
  for (let i = n - 1, k = 0; i >= 1; i--, k += 2) {
    const r = u[k] + u[k + 1] / 16777216; // [0, 1) with 48 bits
    const j = Math.min(i, Math.floor(r * (i + 1)));
    const t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  return perm;
}
