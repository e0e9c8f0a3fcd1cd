/** Shared helpers for evaluation on frozen features. */
import { ShapeError, ValueError } from '../errors';

/** Row-wise L2 normalisation of an [n, d] matrix (copy). */
export function l2NormalizeRows(features: Float32Array, d: number): Float32Array {
  const out = new Float32Array(features.length);
  for (let r = 0; r < features.length / d; r++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += features[r * d + j] * features[r * d + j];
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let j = 0; j < d; j++) out[r * d + j] = features[r * d + j] * inv;
  }
  return out;
}

export interface LabeledFeatures {
  features: Float32Array;
  labels: Int32Array;
  dim: number;
}

export function checkLabeled(set: LabeledFeatures, name: string): number {
  const { features, labels, dim } = set;
  if (!Number.isInteger(dim) || dim < 1) throw new ValueError(`${name}.dim must be a positive integer`);
  if (features.length % dim !== 0) throw new ShapeError(`${name}.features has ${features.length} values, not a multiple of dim ${dim}`);
  const n = features.length / dim;
  if (labels.length !== n) throw new ShapeError(`${name} has ${n} feature rows but ${labels.length} labels`);
  if (n === 0) throw new ShapeError(`${name} is empty`);
  return n;
}

export function numClassesOf(...labelSets: Int32Array[]): number {
  let max = -1;
  for (const labels of labelSets) for (const l of labels) {
    if (l < 0) throw new ValueError(`labels must be non-negative, got ${l}`);
    if (l > max) max = l;
  }
  return max + 1;
}
