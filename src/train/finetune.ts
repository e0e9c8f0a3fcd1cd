/**
 * Fine-tuning (MAE's recipe): a Classifier trained end to end with AdamW and layer-wise lr decay,
 * linear warmup then a half-cosine per step, label smoothing, and a top-1 evaluation after each
 * epoch; the best epoch's model is kept. Every step awaits native work off the event loop; an
 * AbortSignal stops the run between steps, keeping what the finished epochs wrote.
 */
import * as path from 'node:path';
import { mkdir } from 'node:fs/promises';
import { ValueError } from '../errors';
import { describeValue, objectArg } from '../args';
import type { Tensor } from '../tensor';
import { Classifier, softTargets } from '../models/classifier';
import { AdamW } from '../optim/adamw';
import { cosineWithWarmup } from '../optim/schedules';
import { writeFileAtomic } from '../io/atomic';
import type { Dataset } from '../data/dataset';
import { forEachBatch, type FeatureOptions } from '../eval/evaluate';
import { checkMixOptions, mixBatch, type MixOptions } from './mixup';

/** Batches with labels (src/data/loader.ts's DataLoader is one). */
export interface LabeledBatchSource {
  readonly batchSize: number;
  readonly stepsPerEpoch: number;
  batches(epoch: number): AsyncIterable<{ images: Tensor; labels?: Int32Array; dispose(): void }>;
}

/** MAE's fine-tuning defaults, scaled to short CPU runs where they are per-epoch (the one place they are written). */
export const finetuneDefaults = Object.freeze({
  // MAE fine-tunes ViT-B at blr 5e-4 for 100 epochs; a few epochs of a small model need far more:
  // on the bundled digits (nano, CMAE checkpoint of the default run, batch 64) one epoch reached
  // 52.0 % top-1 at 1e-3, 71.0 % at 4e-3 and 75.1 % at 1e-2, and three epochs at 1e-2 90.5 %.
  blr: 1e-2,
  minLr: 1e-6,
  warmupFraction: 0.1,
  layerDecay: 0.75,
  weightDecay: 0.05,
  betas: [0.9, 0.999] as const,
  labelSmoothing: 0.1,
  // MAE fine-tunes ViT-B with drop path 0.1 (ViT-L 0.2); off here: the short CPU runs of small
  // models this package measures under-fit rather than over-fit.
  dropPath: 0,
});

export interface FinetuneOptions {
  model: Classifier;
  data: LabeledBatchSource;
  /** Scored after every epoch (top-1 and confusion matrix). */
  test: Dataset;
  /** How the test images are prepared (resize and normalisation: the training run's). */
  testOptions: FeatureOptions;
  epochs: number;
  /** Base learning rate per 256 images: lr = blr·batchSize/256. */
  blr?: number;
  /** Absolute peak learning rate (overrides blr). */
  lr?: number;
  minLr?: number;
  /** Warmup as a fraction of the run. */
  warmupFraction?: number;
  layerDecay?: number;
  weightDecay?: number;
  betas?: readonly [number, number];
  labelSmoothing?: number;
  /** Stochastic depth rate in [0, 1) (timm's drop_path_rate: block i drops a residual branch with probability dropPath·i/(depth − 1)). */
  dropPath?: number;
  /** Mixup / CutMix Beta α (0 = off, the default; MAE's fine-tuning: 0.8 / 1.0) and the CutMix share when both are on. */
  mixup?: number;
  cutmix?: number;
  mixSwitchProb?: number;
  /** Seed of the mixing draws. Default 0. */
  seed?: number;
  /** Where the best checkpoint (classifier.safetensors) and metrics.jsonl go (nothing written when omitted). */
  outDir?: string;
  /** Metadata saved with the checkpoint (e.g. the normalisation and the data). */
  metadata?: Record<string, string>;
  signal?: AbortSignal;
  onStep?: (info: FinetuneStep) => void;
  onEpoch?: (info: FinetuneEpoch) => void;
}

export interface FinetuneStep {
  step: number;
  totalSteps: number;
  epoch: number;
  lr: number;
  loss: number;
  gradNorm: number;
  /** The loss or gradient norm was not finite: nothing was applied. */
  skipped: boolean;
  imagesPerSecond: number;
}

export interface FinetuneEpoch {
  epoch: number;
  step: number;
  /** Mean training loss of the epoch's applied steps. */
  trainLoss: number;
  top1: number;
  bestTop1: number;
  bestEpoch: number;
  lr: number;
  elapsedSeconds: number;
}

export interface ClassifierScores {
  top1: number;
  /** confusion[t·C + p] = test images of class t predicted as p. */
  confusion: Int32Array;
  numClasses: number;
}

export interface FinetuneResult {
  history: FinetuneEpoch[];
  best: { epoch: number; top1: number; confusion: Int32Array } | undefined;
  steps: number;
  aborted: boolean;
}

export const FINETUNE_CHECKPOINT = 'classifier.safetensors';
export const FINETUNE_METRICS = 'metrics.jsonl';

/** Top-1 and the confusion matrix of a classifier on a labelled dataset (whole images, no augmentation). */
export async function scoreClassifier(model: Classifier, dataset: Dataset, options: FeatureOptions): Promise<ClassifierScores> {
  const C = model.numClasses;
  const confusion = new Int32Array(C * C);
  let correct = 0;
  let seen = 0;
  await forEachBatch(dataset, options, async (images, labels) => {
    const logits = await model.predict(images);
    for (let i = 0; i < labels.length; i++) {
      let arg = 0;
      for (let c = 1; c < C; c++) if (logits[i * C + c] > logits[i * C + arg]) arg = c;
      const y = labels[i];
      if (!(y >= 0 && y < C)) throw new ValueError(`dataset '${dataset.name}' has label ${y}, outside the classifier's [0, ${C})`);
      confusion[y * C + arg]++;
      if (arg === y) correct++;
    }
    seen += labels.length;
  }, model.device);
  return { top1: seen > 0 ? correct / seen : 0, confusion, numClasses: C };
}

export async function finetune(options: FinetuneOptions): Promise<FinetuneResult> {
  const o = objectArg(options, 'options');
  const d = finetuneDefaults;
  if (!(o.model instanceof Classifier)) throw new ValueError('options.model must be a Classifier');
  if (!Number.isInteger(o.epochs) || o.epochs < 1) throw new ValueError(`epochs must be a positive integer, got ${o.epochs}`);
  const { model, data } = o;
  const totalSteps = o.epochs * data.stepsPerEpoch;
  const peak = o.lr ?? ((o.blr ?? d.blr) * data.batchSize) / 256;
  const schedule = cosineWithWarmup({
    baseLr: peak,
    minLr: Math.min(o.minLr ?? d.minLr, peak),
    warmupSteps: Math.round((o.warmupFraction ?? d.warmupFraction) * totalSteps),
    totalSteps,
  });
  const smoothing = o.labelSmoothing ?? d.labelSmoothing;
  const mix: MixOptions = { mixup: o.mixup ?? 0, cutmix: o.cutmix ?? 0, switchProb: o.mixSwitchProb };
  checkMixOptions(mix);
  const seed = o.seed ?? 0;
  const dropPath = o.dropPath ?? d.dropPath;
  if (!(typeof dropPath === 'number' && dropPath >= 0 && dropPath < 1)) throw new ValueError(`dropPath must be a number in [0, 1), got ${describeValue(dropPath)}`);
  const { channels, imageSize } = model.config;
  const optimizer = new AdamW(model, {
    lr: peak,
    betas: o.betas ?? d.betas,
    weightDecay: o.weightDecay ?? d.weightDecay,
    layerDecay: o.layerDecay ?? d.layerDecay,
  });
  if (o.outDir) await mkdir(o.outDir, { recursive: true });
  const history: FinetuneEpoch[] = [];
  let best: FinetuneResult['best'];
  let step = 0;
  let aborted = false;
  const started = Date.now();
  try {
    for (let epoch = 0; epoch < o.epochs && !aborted; epoch++) {
      let lossSum = 0;
      let applied = 0;
      let lr = schedule(step);
      for await (const batch of data.batches(epoch)) {
        try {
          if (o.signal?.aborted) {
            aborted = true;
            break;
          }
          if (!batch.labels) throw new ValueError('fine-tuning needs labelled batches (the dataset has no labels)');
          const t0 = Date.now();
          lr = schedule(step);
          // Mixing draws keyed by (seed, step): a run is reproducible whatever came before.
          const n = batch.labels.length;
          const mixed = mixBatch(batch.images.toArray() as Float32Array, n, channels, imageSize, mix, (Math.imul(step + 1, 0x9e3779b1) ^ seed) >>> 0);
          const targets = softTargets(batch.labels, model.numClasses, smoothing, mixed);
          const loss = await model.lossAndGrad({ images: mixed ? mixed.images : batch.images, targets, dropPath, step });
          const gradNorm = Number.isFinite(loss) ? await optimizer.step({ lr }) : NaN;
          const skipped = !Number.isFinite(loss) || !Number.isFinite(gradNorm);
          if (!skipped) {
            lossSum += loss;
            applied++;
          }
          step++;
          const seconds = Math.max(1e-3, (Date.now() - t0) / 1000);
          o.onStep?.({ step, totalSteps, epoch, lr, loss, gradNorm, skipped, imagesPerSecond: batch.labels.length / seconds });
        } finally {
          batch.dispose();
        }
      }
      if (aborted) break;
      const scores = await scoreClassifier(model, o.test, o.testOptions);
      if (!best || scores.top1 > best.top1) {
        best = { epoch, top1: scores.top1, confusion: scores.confusion };
        if (o.outDir) {
          await model.save(path.join(o.outDir, FINETUNE_CHECKPOINT), { ...o.metadata, epoch: String(epoch + 1), top1: String(scores.top1) });
        }
      }
      const info: FinetuneEpoch = {
        epoch: epoch + 1,
        step,
        trainLoss: applied > 0 ? lossSum / applied : NaN,
        top1: scores.top1,
        bestTop1: best.top1,
        bestEpoch: best.epoch + 1,
        lr,
        elapsedSeconds: (Date.now() - started) / 1000,
      };
      history.push(info);
      // The whole file each epoch, atomically: a killed run leaves the lines of its finished epochs.
      if (o.outDir) await writeFileAtomic(path.join(o.outDir, FINETUNE_METRICS), history.map((h) => `${JSON.stringify(h)}\n`).join(''));
      o.onEpoch?.(info);
    }
  } finally {
    optimizer.dispose();
  }
  return { history, best, steps: step, aborted };
}
