/**
 * Weighted k-NN classification on frozen features (spec §4.7, DINO protocol): cosine similarity
 * to every training feature, top-k neighbours, votes weighted by exp(sim / T), top-1 accuracy.
 * The similarity matrix is computed in chunks with the native SGEMM.
 */
import { ValueError } from '../errors';
import { Tensor } from '../tensor';
import { matmul } from '../kernels/linear';
import { type LabeledFeatures, checkLabeled, l2NormalizeRows, numClassesOf } from './features';

export interface KnnOptions {
  k?: number;
  temperature?: number;
  /** Query rows per similarity chunk (bounds memory). */
  chunkSize?: number;
}

export interface KnnResult {
  top1: number;
  k: number;
  temperature: number;
  predictions: Int32Array;
}

export function knnClassify(train: LabeledFeatures, test: LabeledFeatures, options: KnnOptions = {}): KnnResult {
  const { k = 20, temperature = 0.07, chunkSize = 512 } = options;
  const nTrain = checkLabeled(train, 'train');
  const nTest = checkLabeled(test, 'test');
  if (train.dim !== test.dim) throw new ValueError(`train features have dim ${train.dim}, test features ${test.dim}`);
  if (!Number.isInteger(k) || k < 1) throw new ValueError(`k must be a positive integer, got ${k}`);
  if (!(temperature > 0)) throw new ValueError(`temperature must be positive, got ${temperature}`);
  const d = train.dim;
  const kk = Math.min(k, nTrain);
  const classes = numClassesOf(train.labels, test.labels);
  const trainT = Tensor.from(l2NormalizeRows(train.features, d), [nTrain, d]);
  const testN = l2NormalizeRows(test.features, d);
  const predictions = new Int32Array(nTest);
  let correct = 0;
  const topSim = new Float64Array(kk);
  const topIdx = new Int32Array(kk);
  const votes = new Float64Array(classes);
  for (let start = 0; start < nTest; start += chunkSize) {
    const rows = Math.min(chunkSize, nTest - start);
    const q = Tensor.from(testN.subarray(start * d, (start + rows) * d), [rows, d]);
    const sims = matmul(q, trainT, { transB: true });
    const s = sims.view() as Float32Array;
    for (let r = 0; r < rows; r++) {
      // Partial selection of the k largest similarities (k is small).
      let filled = 0;
      let minPos = 0;
      const base = r * nTrain;
      for (let j = 0; j < nTrain; j++) {
        const v = s[base + j];
        if (filled < kk) {
          topSim[filled] = v;
          topIdx[filled] = j;
          filled++;
          if (filled === kk) minPos = argmin(topSim);
        } else if (v > topSim[minPos]) {
          topSim[minPos] = v;
          topIdx[minPos] = j;
          minPos = argmin(topSim);
        }
      }
      votes.fill(0);
      for (let t = 0; t < kk; t++) votes[train.labels[topIdx[t]]] += Math.exp(topSim[t] / temperature);
      let best = 0;
      for (let c = 1; c < classes; c++) if (votes[c] > votes[best]) best = c;
      predictions[start + r] = best;
      if (best === test.labels[start + r]) correct++;
    }
    q.dispose();
    sims.dispose();
  }
  trainT.dispose();
  return { top1: correct / nTest, k: kk, temperature, predictions };
}

function argmin(a: Float64Array): number {
  let m = 0;
  for (let i = 1; i < a.length; i++) if (a[i] < a[m]) m = i;
  return m;
}
