/**
 * `cmae finetune`: a pre-training checkpoint's encoder + a linear head, fine-tuned end to end on the
 * labels (or, with --from-scratch, the same architecture from random init: the baseline the
 * pre-training must beat). Prints the held-out top-1 after every epoch; writes the best epoch's
 * classifier, metrics.jsonl, a learning curve and the confusion matrix, each atomically, and never
 * over an existing output without --force.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Classifier } from '../models/classifier';
import { CHECKPOINT_FORMAT } from '../models/cmae';
import { FormatError } from '../errors';
import { presets, type PresetName } from '../models/config';
import { readSafetensorsMetadata } from '../io/safetensors';
import { DataLoader } from '../data/loader';
import { FINETUNE_CHECKPOINT, FINETUNE_METRICS, finetune } from '../train/finetune';
import { renderConfusionMatrix, renderLearningCurve } from '../viz/finetune';
import { setMatmulPrecision, setNumThreads } from '../runtime';
import { computeMeanStd } from '../kernels/data';
import { isInMemory } from '../data/dataset';
import { ProgressBar, formatDuration } from './progress';
import { checkpointNormalization, loadSplits } from './data-spec';
import { Interrupted, UsageError } from './errors';
import { parseDevice, parseNumberOption, parsePositiveInt } from './parse';

export interface FinetuneCliOptions {
  checkpoint?: string;
  fromScratch?: boolean;
  preset: string;
  data: string;
  epochs: string;
  batchSize: string;
  lr?: string;
  blr: string;
  layerDecay: string;
  weightDecay: string;
  labelSmoothing: string;
  dropPath: string;
  mixup: string;
  cutmix: string;
  pool: string;
  minCrop: string;
  seed: string;
  threads?: string;
  device: string;
  out: string;
  force?: boolean;
  json?: boolean;
}

export const FINETUNE_OUTPUTS = [FINETUNE_CHECKPOINT, FINETUNE_METRICS, 'learning-curve.png', 'confusion.png'] as const;

export async function runFinetune(o: FinetuneCliOptions): Promise<void> {
  if (!o.checkpoint && !o.fromScratch) throw new UsageError('--checkpoint FILE is required (or --from-scratch for the random-init baseline)');
  if (o.checkpoint && !existsSync(o.checkpoint)) throw new UsageError(`checkpoint not found: ${o.checkpoint}`);
  if (!o.checkpoint && !(o.preset in presets)) throw new UsageError(`unknown --preset '${o.preset}' (expected ${Object.keys(presets).join(', ')})`);
  if (o.pool !== 'cls' && o.pool !== 'mean') throw new UsageError(`--pool must be cls or mean, got '${o.pool}'`);
  const epochs = parsePositiveInt(o.epochs, '--epochs');
  const batchSize = parsePositiveInt(o.batchSize, '--batch-size');
  const seed = parsePositiveInt(o.seed, '--seed', true);
  const lr = o.lr !== undefined ? parseNumberOption(o.lr, '--lr', 0) : undefined;
  const blr = parseNumberOption(o.blr, '--blr', 0);
  const layerDecay = parseNumberOption(o.layerDecay, '--layer-decay', 1e-6, 1);
  const weightDecay = parseNumberOption(o.weightDecay, '--weight-decay', 0);
  const labelSmoothing = parseNumberOption(o.labelSmoothing, '--label-smoothing', 0, 0.99);
  const dropPath = parseNumberOption(o.dropPath, '--drop-path', 0, 0.99);
  const minCrop = parseNumberOption(o.minCrop, '--min-crop', 0.01, 1);
  const mixup = parseNumberOption(o.mixup, '--mixup', 0);
  const cutmix = parseNumberOption(o.cutmix, '--cutmix', 0);
  if (o.threads !== undefined) setNumThreads(parsePositiveInt(o.threads, '--threads'));
  const device = parseDevice(o.device);
  // Every output is checked before any slow work: an earlier run's results are never replaced silently.
  const existing = FINETUNE_OUTPUTS.map((f) => path.join(o.out, f)).filter((f) => existsSync(f));
  if (existing.length > 0 && !o.force) throw new UsageError(`${existing[0]} exists (an earlier run's output); pass --force to overwrite, or another --out`);

  const metadata = o.checkpoint ? await readSafetensorsMetadata(o.checkpoint) : {};
  const saved = o.checkpoint ? pretrainingConfig(metadata, o.checkpoint) : undefined;
  const pool = o.pool as 'cls' | 'mean';
  const imageSize = saved ? Number(saved.imageSize) : presets[o.preset as PresetName].imageSize;
  const splits = await loadSplits(o.data, { seed, imageSize });
  if (splits.train.numClasses === undefined || !splits.train.labels) throw new UsageError(`--data ${o.data} has no labels to fine-tune on`);
  const numClasses = splits.train.numClasses;
  const channels = splits.train.channels as 1 | 3;
  let model: Classifier;
  if (o.checkpoint && !o.fromScratch) {
    model = await Classifier.fromPretrained(o.checkpoint, { numClasses, pool, seed, device });
  } else if (o.checkpoint) {
    // The checkpoint's architecture from random init: the baseline of the same shape.
    const { mode: _mode, ...encoder } = saved!;
    model = await Classifier.create({ ...encoder, numClasses, pool, seed, device });
  } else {
    model = await Classifier.create({ preset: o.preset as PresetName, channels, numClasses, pool, seed, device });
  }
  if (model.config.channels !== channels) {
    throw new UsageError(`the model expects ${model.config.channels}-channel images, ${splits.name} has ${splits.train.channels}`);
  }
  // The pre-training's normalisation, so the encoder sees what it learned on; the data's otherwise.
  const normalization = o.checkpoint
    ? checkpointNormalization(metadata, o.checkpoint, splits.train)
    : isInMemory(splits.train)
      ? computeMeanStd(splits.train)
      : { mean: Array(channels).fill(0.5), std: Array(channels).fill(0.25) };
  // MAE's fine-tuning augmentation is RandomResizedCrop + flip + RandAugment; here the crop alone
  // (digits and letters are not mirror-symmetric, so no flip).
  const loader = new DataLoader(splits.train, {
    batchSize,
    seed,
    device,
    targetView: 'none',
    normalize: normalization,
    augment: { outSize: model.config.imageSize, shiftRange: 0, scaleMin: minCrop, flipP: 0 },
  });
  const origin = o.checkpoint ? `${o.fromScratch ? 'the architecture of ' : ''}${o.checkpoint}${o.fromScratch ? ', from random init' : ''}` : `${o.preset}, from random init`;
  const progress = new ProgressBar(process.stderr);
  progress.log(
    `cmae finetune: ${origin} → ${numClasses} classes (${pool} pooling) on ${splits.name} (${splits.train.size} train / ${splits.test.size} held out), ` +
      `${epochs} epochs of ${loader.stepsPerEpoch} steps, batch ${batchSize}, layer decay ${layerDecay}, on ${device}, output in ${o.out}`,
  );
  setMatmulPrecision('fp32', device);
  const controller = new AbortController();
  const onSigint = () => {
    progress.log('interrupted: stopping after this step (the best epoch so far is saved)');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  const started = Date.now();
  let result;
  try {
    result = await finetune({
      model,
      data: loader,
      test: splits.test,
      testOptions: { imageSize: model.config.imageSize, normalization },
      epochs,
      lr,
      blr,
      layerDecay,
      weightDecay,
      labelSmoothing,
      dropPath,
      mixup,
      cutmix,
      seed,
      outDir: o.out,
      signal: controller.signal,
      metadata: { normalization: JSON.stringify(normalization), data: o.data, ...(o.checkpoint && !o.fromScratch ? { pretrained: o.checkpoint } : {}) },
      onStep: (s) =>
        progress.update({
          step: s.step,
          total: s.totalSteps,
          elapsedSeconds: (Date.now() - started) / 1000,
          text: `epoch ${s.epoch + 1}/${epochs} ${s.skipped ? 'skipped ' : ''}loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)} | ${s.imagesPerSecond.toFixed(0)} img/s`,
        }),
      onEpoch: (e) =>
        progress.log(`epoch ${e.epoch}/${epochs}: top-1 ${pct(e.top1)} (best ${pct(e.bestTop1)} at epoch ${e.bestEpoch}), train loss ${e.trainLoss.toFixed(4)}`),
    });
  } finally {
    process.off('SIGINT', onSigint);
    progress.done();
  }
  const written = [FINETUNE_CHECKPOINT, FINETUNE_METRICS];
  if (result.history.length > 0) {
    await renderLearningCurve(result.history, path.join(o.out, 'learning-curve.png'), `fine-tuning on ${splits.name}: ${origin}`);
    written.push('learning-curve.png');
  }
  if (result.best) {
    await renderConfusionMatrix(result.best.confusion, numClasses, path.join(o.out, 'confusion.png'), `best epoch (${result.best.epoch + 1}): top-1 ${pct(result.best.top1)}`, splits.train.classNames);
    written.push('confusion.png');
  }
  model.dispose();
  const summary = {
    data: splits.name,
    from: o.checkpoint && !o.fromScratch ? o.checkpoint : 'random init',
    pool,
    epochs: result.history.length,
    steps: result.steps,
    bestTop1: result.best?.top1,
    bestEpoch: result.best ? result.best.epoch + 1 : undefined,
    top1PerEpoch: result.history.map((h) => h.top1),
    seconds: (Date.now() - started) / 1000,
    aborted: result.aborted,
    outputs: written.map((f) => path.join(o.out, f)),
  };
  if (o.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  else if (result.best) {
    process.stdout.write(`done: best top-1 ${pct(result.best.top1)} at epoch ${result.best.epoch + 1} of ${result.history.length} in ${formatDuration(summary.seconds)}; wrote ${summary.outputs.join(', ')}\n`);
  }
  if (result.aborted) throw new Interrupted();
}

/** The model configuration a pre-training checkpoint's metadata records (FormatError when it is not one). */
function pretrainingConfig(metadata: Record<string, string>, file: string): Record<string, unknown> {
  if (metadata.format !== CHECKPOINT_FORMAT) throw new FormatError(`${file}: not a cmae pre-training checkpoint (metadata.format is '${metadata.format ?? 'missing'}')`);
  try {
    const config = JSON.parse(metadata.config) as unknown;
    if (typeof config === 'object' && config !== null && !Array.isArray(config)) return config as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new FormatError(`${file}: metadata.config is not a JSON object`);
}

const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
