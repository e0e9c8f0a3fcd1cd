/** `cmae eval`: k-NN and/or linear-probe top-1 of a checkpoint's encoder, with baselines. */
import { existsSync } from 'node:fs';
import { CMAE } from '../models/cmae';
import { Classifier } from '../models/classifier';
import { scoreClassifier } from '../train/finetune';
import { readSafetensors } from '../io/safetensors';
import { encoderFeatures, pixelFeatures, scoreFeatures, type EvalScores } from '../eval/evaluate';
import { setMatmulPrecision, setNumThreads } from '../runtime';
import { checkpointNormalization, loadSplits } from './data-spec';
import { UsageError } from './errors';
import { parseDevice, parseFeaturePool, parsePositiveInt } from './parse';

export interface EvalOptions {
  checkpoint?: string;
  classifier?: string;
  data: string;
  knn?: boolean;
  linear?: boolean;
  baselines?: boolean;
  pool?: string;
  blocks?: string;
  threads?: string;
  device: string;
  seed: string;
  json?: boolean;
}

export async function runEval(o: EvalOptions): Promise<void> {
  if (o.classifier !== undefined) return runEvalClassifier(o, o.classifier);
  if (!o.checkpoint) throw new UsageError('--checkpoint FILE is required (or --classifier FILE for a fine-tuned classifier)');
  if (!existsSync(o.checkpoint)) throw new UsageError(`checkpoint not found: ${o.checkpoint}`);
  const requestedPool = parseFeaturePool(o.pool);
  if (o.threads !== undefined) setNumThreads(parsePositiveInt(o.threads, '--threads'));
  const seed = parsePositiveInt(o.seed, '--seed', true);
  const device = parseDevice(o.device);
  // fp32 products on every device, as cmae pretrain's own evaluation: the figures compare encoders.
  setMatmulPrecision('fp32', device);
  const knn = o.knn || !o.linear;
  const linear = Boolean(o.linear);
  const file = await readSafetensors(o.checkpoint);
  const { model } = await CMAE.fromCheckpointFile(file, o.checkpoint, { device });
  const splits = await loadSplits(o.data, { seed, imageSize: model.config.imageSize });
  if (splits.train.channels !== model.config.channels) {
    throw new UsageError(`the checkpoint expects ${model.config.channels}-channel images, ${splits.name} has ${splits.train.channels}`);
  }
  const normalization = checkpointNormalization(file.metadata, o.checkpoint, splits.train);
  const pool = requestedPool ?? model.featurePool;
  const blocks = o.blocks === undefined ? 1 : parsePositiveInt(o.blocks, '--blocks');
  if (blocks > Math.max(1, model.config.depth)) throw new UsageError(`--blocks ${blocks}: the encoder has ${model.config.depth} blocks`);
  const options = { imageSize: model.config.imageSize, normalization, pool, blocks };
  const request = { knn, linear, linearOptions: { seed } };
  const rows: Record<string, EvalScores> = {};
  rows.checkpoint = scoreFeatures(await encoderFeatures(model, splits.train, options), await encoderFeatures(model, splits.test, options), request);
  if (o.baselines) {
    const fresh = await CMAE.create({ ...model.config, seed: model.seed, device });
    rows['random-init'] = scoreFeatures(await encoderFeatures(fresh, splits.train, options), await encoderFeatures(fresh, splits.test, options), request);
    fresh.dispose();
    rows['raw-pixels'] = scoreFeatures(await pixelFeatures(splits.train, options), await pixelFeatures(splits.test, options), request);
  }
  model.dispose();
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ data: splits.name, train: splits.train.size, test: splits.test.size, pool, blocks, results: rows }, null, 2)}\n`);
    return;
  }
  const which = blocks > 1 ? `${pool} features of the last ${blocks} blocks` : `${pool} features`;
  process.stdout.write(`${splits.name}: ${splits.train.size} train / ${splits.test.size} test images, ${which}, top-1\n`);
  for (const [name, s] of Object.entries(rows)) {
    const parts = [s.knnTop1 !== undefined ? `k-NN ${(100 * s.knnTop1).toFixed(2)}%` : '', s.linearTop1 !== undefined ? `linear ${(100 * s.linearTop1).toFixed(2)}%` : ''];
    process.stdout.write(`  ${name.padEnd(12)} ${parts.filter(Boolean).join('  ')}\n`);
  }
}


/** `cmae eval --classifier F`: the held-out top-1 of a fine-tuned classifier (and its confusion matrix with --json). */
async function runEvalClassifier(o: EvalOptions, file: string): Promise<void> {
  if (o.checkpoint !== undefined) throw new UsageError('give --checkpoint (an encoder) or --classifier (a fine-tuned classifier), not both');
  if (o.knn || o.linear || o.baselines) throw new UsageError('--knn, --linear and --baselines score encoders; a --classifier is scored by its own head');
  if (!existsSync(file)) throw new UsageError(`classifier not found: ${file}`);
  if (o.threads !== undefined) setNumThreads(parsePositiveInt(o.threads, '--threads'));
  const seed = parsePositiveInt(o.seed, '--seed', true);
  const device = parseDevice(o.device);
  setMatmulPrecision('fp32', device);
  const { model, metadata } = await Classifier.loadWithExtra(file, { device });
  try {
    const splits = await loadSplits(o.data, { seed, imageSize: model.config.imageSize });
    if (splits.train.channels !== model.config.channels) {
      throw new UsageError(`the classifier expects ${model.config.channels}-channel images, ${splits.name} has ${splits.train.channels}`);
    }
    if (splits.test.numClasses !== undefined && splits.test.numClasses !== model.numClasses) {
      throw new UsageError(`the classifier has ${model.numClasses} classes, ${splits.name} has ${splits.test.numClasses}`);
    }
    const normalization = checkpointNormalization(metadata, file, splits.train);
    const scores = await scoreClassifier(model, splits.test, { imageSize: model.config.imageSize, normalization });
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ data: splits.name, test: splits.test.size, top1: scores.top1, numClasses: scores.numClasses, confusion: Array.from(scores.confusion) }, null, 2)}\n`);
    } else {
      process.stdout.write(`${splits.name}: ${splits.test.size} test images, classifier top-1 ${(100 * scores.top1).toFixed(2)}%\n`);
    }
  } finally {
    model.dispose();
  }
}
