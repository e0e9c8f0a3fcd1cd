/**
 * Linear probe on frozen features (spec §1.9, scaled down): BatchNorm1d without affine (batch
 * statistics while training, running statistics at test time) followed by a Linear head, trained
 * with the native BatchNorm and Linear kernels. Where we differ from MAE: SGD with momentum 0.9
 * and a cosine schedule instead of LARS — at the small batches of a CPU run LARS's trust ratio
 * (0.001·‖w‖/‖g‖) moves the head too slowly to converge in a few epochs.
 */
import { ValueError } from '../errors';
import { Tensor } from '../tensor';
import { batchnormForward, batchnormInference } from '../kernels/norm';
import { linearBackward, linearForward } from '../kernels/linear';
import { makeRng } from './rng';
import { type LabeledFeatures, checkLabeled, numClassesOf } from './features';

export interface LinearProbeOptions {
  epochs?: number;
  batchSize?: number;
  lr?: number;
  momentum?: number;
  weightDecay?: number;
  seed?: number;
}

export interface LinearProbeResult {
  top1: number;
  trainTop1: number;
  epochs: number;
  predictions: Int32Array;
}

export function linearProbe(train: LabeledFeatures, test: LabeledFeatures, options: LinearProbeOptions = {}): LinearProbeResult {
  const { epochs = 30, batchSize = 256, lr = 0.5, momentum = 0.9, weightDecay = 0, seed = 0 } = options;
  const nTrain = checkLabeled(train, 'train');
  const nTest = checkLabeled(test, 'test');
  if (train.dim !== test.dim) throw new ValueError(`train features have dim ${train.dim}, test features ${test.dim}`);
  if (!Number.isInteger(epochs) || epochs < 1) throw new ValueError(`epochs must be a positive integer, got ${epochs}`);
  if (!Number.isInteger(batchSize) || batchSize < 2) throw new ValueError(`batchSize must be an integer >= 2, got ${batchSize}`);
  const d = train.dim;
  const classes = numClassesOf(train.labels, test.labels);
  const rng = makeRng(seed);
  // Head: weight ~ N(0, 0.01) (MAE uses trunc_normal std 0.01), bias 0.
  const weight = new Float32Array(classes * d);
  for (let i = 0; i < weight.length; i++) weight[i] = 0.01 * gaussian(rng);
  const bias = new Float32Array(classes);
  const velocityW = new Float32Array(weight.length);
  const velocityB = new Float32Array(classes);
  const runningMean = Tensor.zeros([d]);
  const runningVar = Tensor.full([d], 1);
  const bs = Math.min(batchSize, nTrain);
  const stepsPerEpoch = Math.max(1, Math.floor(nTrain / bs));
  const totalSteps = epochs * stepsPerEpoch;
  const order = Int32Array.from({ length: nTrain }, (_, i) => i);
  const batch = new Float32Array(bs * d);
  const dlogits = new Float32Array(bs * classes);
  let step = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    shuffle(order, rng);
    for (let s = 0; s < stepsPerEpoch; s++) {
      for (let r = 0; r < bs; r++) batch.set(train.features.subarray(order[s * bs + r] * d, (order[s * bs + r] + 1) * d), r * d);
      const inp = Tensor.from(batch, [bs, d]);
      const { out: normed, mean, rstd } = batchnormForward(inp, { runningMean, runningVar, eps: 1e-6, momentum: 0.1 });
      const w = Tensor.from(weight, [classes, d]);
      const b = Tensor.from(bias, [classes]);
      const logitsTensor = linearForward(normed, w, b);
      const logits = logitsTensor.view() as Float32Array;
      // Softmax cross-entropy gradient, mean over the batch.
      for (let r = 0; r < bs; r++) {
        const row = logits.subarray(r * classes, (r + 1) * classes);
        let max = -Infinity;
        for (const v of row) max = Math.max(max, v);
        let z = 0;
        for (let c = 0; c < classes; c++) z += Math.exp(row[c] - max);
        const label = train.labels[order[s * bs + r]];
        for (let c = 0; c < classes; c++) dlogits[r * classes + c] = (Math.exp(row[c] - max) / z - (c === label ? 1 : 0)) / bs;
      }
      const dlogitsTensor = Tensor.from(dlogits, [bs, classes]);
      const grads = linearBackward(dlogitsTensor, normed, w, { dinp: null });
      const gw = grads.dweight.view() as Float32Array;
      const gb = grads.dbias!.view() as Float32Array;
      const lrNow = 0.5 * lr * (1 + Math.cos((Math.PI * step) / totalSteps));
      for (let i = 0; i < weight.length; i++) {
        velocityW[i] = momentum * velocityW[i] + gw[i] + weightDecay * weight[i];
        weight[i] -= lrNow * velocityW[i];
      }
      for (let c = 0; c < classes; c++) {
        velocityB[c] = momentum * velocityB[c] + gb[c];
        bias[c] -= lrNow * velocityB[c];
      }
      for (const t of [inp, normed, mean, rstd, w, b, logitsTensor, dlogitsTensor, grads.dweight, grads.dbias!]) t.dispose();
      step++;
    }
  }
  const evaluate = (set: LabeledFeatures, n: number) => {
    const feats = Tensor.from(set.features, [n, d]);
    const normed = batchnormInference(feats, runningMean, runningVar, { eps: 1e-6 });
    const w = Tensor.from(weight, [classes, d]);
    const b = Tensor.from(bias, [classes]);
    const logitsTensor = linearForward(normed, w, b);
    const logits = logitsTensor.view() as Float32Array;
    const predictions = new Int32Array(n);
    let correct = 0;
    for (let r = 0; r < n; r++) {
      let best = 0;
      for (let c = 1; c < classes; c++) if (logits[r * classes + c] > logits[r * classes + best]) best = c;
      predictions[r] = best;
      if (best === set.labels[r]) correct++;
    }
    for (const t of [feats, normed, w, b, logitsTensor]) t.dispose();
    return { top1: correct / n, predictions };
  };
  const testResult = evaluate(test, nTest);
  const trainResult = evaluate(train, nTrain);
  runningMean.dispose();
  runningVar.dispose();
  return { top1: testResult.top1, trainTop1: trainResult.top1, epochs, predictions: testResult.predictions };
}

function gaussian(rng: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

function shuffle(a: Int32Array, rng: () => number): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}
