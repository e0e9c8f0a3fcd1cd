/**
 * Reconstruction pictures. Norm-pix predictions live in each patch's own normalised space, so they
 * are mapped back with the patch's own mean and (unbiased) std (spec §1.6) and then with the
 * dataset normalisation; visible patches show the input, as in MAE's figures.
 */
import { Tensor } from '../tensor';
import type { CMAE } from '../models/cmae';
import { patchify, unpatchify } from '../kernels/patch';
import type { ReconstructionRow } from './pictures';
import { ValueError } from '../errors';
import { methods } from '../models/config';

export interface Normalization {
  mean: readonly number[];
  std: readonly number[];
}

export async function reconstructionRows(model: CMAE, images: Tensor, norm: Normalization): Promise<ReconstructionRow[]> {
  const { channels: C, imageSize: S, patchSize: p } = model.config;
  const traits = methods[model.config.mode];
  if (traits.reconstructs !== 'pixels') throw new ValueError(`a ${model.config.mode} model has no pixel decoder to reconstruct with`);
  const B = images.shape[0];
  const L = model.numPatches;
  const P = p * p * C;
  const pred = Tensor.full([B, L, P], NaN);
  const mask = Tensor.full([B, L], NaN);
  await model.lossAndGrad({ images, targetImages: methods[model.config.mode].contrastive ? images : undefined, outputs: { pred, mask } });
  const target = patchify(images, p, { layout: 'pixels-last' }).toArray() as Float32Array;
  const predA = pred.toArray() as Float32Array;
  const maskA = mask.toArray() as Float32Array;
  const recon = new Float32Array(B * L * P);
  const masked = new Float32Array(B * L * P);
  for (let r = 0; r < B * L; r++) {
    const base = r * P;
    let mean = 0;
    for (let i = 0; i < P; i++) mean += target[base + i];
    mean /= P;
    let varSum = 0;
    for (let i = 0; i < P; i++) varSum += (target[base + i] - mean) ** 2;
    const std = Math.sqrt(varSum / (P - 1) + 1e-6);
    const isMasked = maskA[r] > 0.5;
    for (let i = 0; i < P; i++) {
      const original = target[base + i];
      const predicted = model.config.normPixLoss ? predA[base + i] * std + mean : predA[base + i];
      recon[base + i] = isMasked ? predicted : original;
      // Masked patches are shown as mid-grey in normalised-pixel space of channel c (layout py, px, c).
      const c = i % C;
      masked[base + i] = isMasked ? (0.5 - norm.mean[c]) / norm.std[c] : original;
    }
  }
  const toImages = (patches: Float32Array) =>
    unpatchify(Tensor.from(patches, [B, L, P]), p, { layout: 'pixels-last', height: S, width: S }).toArray() as Float32Array;
  const planes = [images.toArray() as Float32Array, toImages(masked), toImages(recon)];
  const per = C * S * S;
  const rows: ReconstructionRow[] = [];
  for (let b = 0; b < B; b++) {
    const [original, maskedImg, reconstruction] = planes.map((plane) => {
      const out = new Float32Array(per);
      for (let i = 0; i < per; i++) {
        const c = Math.floor(i / (S * S));
        out[i] = plane[b * per + i] * norm.std[c] + norm.mean[c];
      }
      return out;
    });
    rows.push({ original, masked: maskedImg, reconstruction });
  }
  pred.dispose();
  mask.dispose();
  return rows;
}
