/**
 * Evaluation of an encoder on a labelled dataset: frozen features (deterministic resize, no
 * augmentation) for a train and a test split, then k-NN and/or a linear probe; the same protocol
 * for the random-init and raw-pixel baselines, so the numbers compare.
 */
import type { CMAE, FeaturePool } from '../models/cmae';
import type { Device } from '../tensor';
import { DataLoader, resizeOnly, type Normalization } from '../data/loader';
import type { Dataset } from '../data/dataset';
import { ValueError } from '../errors';
import { knnClassify } from './knn';
import { linearProbe, type LinearProbeOptions } from './linear-probe';
import type { LabeledFeatures } from './features';

export interface FeatureOptions {
  imageSize: number;
  normalization: Normalization;
  /** Default: the model's own (CMAE.featurePool). */
  pool?: FeaturePool;
  /** The last `blocks` blocks' features concatenated (EncodeOptions.blocks); default 1. */
  blocks?: number;
  batchSize?: number;
}

/** Iterates the dataset in order as deterministic, unaugmented views (resize only), made on `device` (the evaluations of encoders and of classifiers). */
export async function forEachBatch(
  dataset: Dataset,
  options: FeatureOptions,
  fn: (images: import('../tensor').Tensor, labels: Int32Array) => Promise<void>,
  device: Device = 'cpu',
): Promise<void> {
  const loader = new DataLoader(dataset, {
    device,
    batchSize: Math.min(options.batchSize ?? 256, dataset.size),
    shuffle: false,
    dropLast: false,
    targetView: 'none',
    normalize: options.normalization,
    augment: resizeOnly(options.imageSize),
  });
  for await (const batch of loader.batches(0)) {
    try {
      if (!batch.labels) throw new ValueError(`dataset '${dataset.name}' has no labels to evaluate against`);
      await fn(batch.images, batch.labels);
    } finally {
      batch.dispose();
    }
  }
}

export async function encoderFeatures(model: CMAE, dataset: Dataset, options: FeatureOptions): Promise<LabeledFeatures> {
  const dim = model.config.dim * (options.blocks ?? 1);
  const features = new Float32Array(dataset.size * dim);
  const labels = new Int32Array(dataset.size);
  let row = 0;
  await forEachBatch(dataset, options, async (images, batchLabels) => {
    const f = await model.encode(images, { pool: options.pool, blocks: options.blocks });
    features.set(f, row * dim);
    labels.set(batchLabels, row);
    row += batchLabels.length;
  }, model.device);
  return { features, labels, dim };
}

export async function pixelFeatures(dataset: Dataset, options: FeatureOptions): Promise<LabeledFeatures> {
  const dim = dataset.channels * options.imageSize * options.imageSize;
  const features = new Float32Array(dataset.size * dim);
  const labels = new Int32Array(dataset.size);
  let row = 0;
  await forEachBatch(dataset, options, async (images, batchLabels) => {
    features.set(images.view() as Float32Array, row * dim);
    labels.set(batchLabels, row);
    row += batchLabels.length;
  });
  return { features, labels, dim };
}

export interface EvalScores {
  knnTop1?: number;
  linearTop1?: number;
}

export interface EvalRequest {
  knn?: boolean;
  linear?: boolean;
  linearOptions?: LinearProbeOptions;
  knnK?: number;
}

export function scoreFeatures(train: LabeledFeatures, test: LabeledFeatures, request: EvalRequest): EvalScores {
  const scores: EvalScores = {};
  if (request.knn ?? true) scores.knnTop1 = knnClassify(train, test, { k: request.knnK ?? 20 }).top1;
  if (request.linear) scores.linearTop1 = linearProbe(train, test, request.linearOptions).top1;
  return scores;
}
