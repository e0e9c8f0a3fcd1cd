/**
 * Attention-driven masking (AMT's masking half, Liu, Gui, Luo 2023): the patches an encoder's cls
 * token attends to most are the likeliest to be masked, so the reconstruction works on the object
 * rather than the background. Per image, the last block's cls→patch attention of each head is
 * min-max normalised and averaged over the heads into a weight per patch (summed per mask group);
 * a masking order is then drawn without replacement with probability ∝ weight, and the first
 * positions of that order are masked. The draw is Gumbel-top-k (log w + Gumbel noise, the largest
 * masked), which is that multinomial order exactly; it becomes the model's `maskNoise` (whose
 * smallest values are kept visible).
 *
 * Where we differ from AMT: the map is the current batch's, from the momentum encoder (the online
 * one for MAE) on the online view itself, every step (AttMask's way), where AMT stores one map per
 * training image, refreshed every 40 epochs and warped by each crop.
 *
 * Throwing (AMT's other half) is the model's `throwRatio`: of the same draw, after the masked
 * groups come the thrown ones (neither seen nor reconstructed), and the last drawn, the least
 * attended, stay visible, as AMT's order is. Where we differ: the thrown patches still enter the
 * decoders as mask tokens (AMT removes them there, to save the decoder's work).
 */
import { ValueError } from '../errors';
import type { Tensor } from '../tensor';
import type { CMAE } from '../models/cmae';
import { methods, type Mode } from '../models/config';
import { describeValue } from '../args';
import { makeRng } from '../eval/rng';

/** How the trainer draws each step's mask: uniformly (the model's own seeded noise), or attention-driven. */
export type MaskSampling = 'uniform' | 'attention';

/**
 * Why `sampling` cannot train a `mode` model, or undefined when it can: attention-driven masking
 * needs a masked reconstruction (mae, cmae, maskdistill). The one owner of that rule (the trainer
 * throws a ValueError with it, the CLI a usage error before any slow work).
 */
export function maskSamplingProblem(mode: Mode, sampling: unknown): string | undefined {
  if (sampling !== 'uniform' && sampling !== 'attention') return `maskSampling must be 'uniform' or 'attention', got ${describeValue(sampling)}`;
  if (sampling === 'attention' && methods[mode].reconstructs === null) return `attention-driven masking is for the masked-reconstruction methods (mae, cmae, maskdistill), not ${mode}`;
  return undefined;
}

/** Weights below this are raised to it: log w stays finite (a patch every head attends to least). */
const MIN_WEIGHT = 1e-9;

/**
 * Mask noise (B, G) from cls attention (B, heads, L) for a (grid × grid) patch grid in groups of
 * group × group patches: log(weight) + Gumbel(0, 1), drawn with `rng` (uniform in [0, 1)).
 */
export function attentionMaskNoise(attention: Float32Array, B: number, heads: number, grid: number, group: number, rng: () => number): Float32Array {
  const L = grid * grid;
  if (attention.length !== B * heads * L) throw new ValueError(`attention must hold B·heads·L = ${B * heads * L} values, got ${attention.length}`);
  if (!(group >= 1 && grid % group === 0)) throw new ValueError(`group ${group} must divide the grid ${grid}`);
  const groupsPerRow = grid / group;
  const G = groupsPerRow * groupsPerRow;
  const noise = new Float32Array(B * G);
  const weights = new Float64Array(G);
  for (let b = 0; b < B; b++) {
    weights.fill(0);
    for (let h = 0; h < heads; h++) {
      const row = attention.subarray((b * heads + h) * L, (b * heads + h + 1) * L);
      let lo = Infinity;
      let hi = -Infinity;
      for (const a of row) {
        lo = Math.min(lo, a);
        hi = Math.max(hi, a);
      }
      // A flat head (every patch alike) says nothing: it adds the same to every patch.
      const span = hi - lo;
      for (let l = 0; l < L; l++) {
        const g = Math.floor(Math.floor(l / grid) / group) * groupsPerRow + Math.floor((l % grid) / group);
        weights[g] += (span > 0 ? (row[l] - lo) / span : 1) / heads;
      }
    }
    for (let g = 0; g < G; g++) {
      // u in (0, 1) exclusive, so the Gumbel draw −log(−log u) is finite.
      const u = (Math.floor(rng() * 4294967296) + 0.5) / 4294967296;
      noise[b * G + g] = Math.log(Math.max(weights[g], MIN_WEIGHT)) - Math.log(-Math.log(u));
    }
  }
  return noise;
}

/**
 * This step's attention-driven mask noise for `images` (the online view of a batch): the cls
 * attention of the momentum encoder (the online one for a method without it), turned into noise
 * with a generator seeded by (model seed, step), so a resumed run draws the masks the uninterrupted
 * one would have.
 */
export async function attentionMaskNoiseFor(model: CMAE, images: Tensor, step: number): Promise<Float32Array> {
  const { mode, heads, imageSize, patchSize, maskGroup, depth } = model.config;
  const problem = maskSamplingProblem(mode, 'attention');
  if (problem) throw new ValueError(problem);
  if (depth < 1) throw new ValueError('attention-driven masking needs an encoder of depth ≥ 1 (its last block attends)');
  const branch = methods[mode].momentum ? 'momentum' : 'online';
  const attention = await model.clsAttention(images, { branch });
  const rng = makeRng((Math.imul(model.seed >>> 0, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b)) >>> 0);
  return attentionMaskNoise(attention, images.shape[0], heads, imageSize / patchSize, maskGroup, rng);
}
