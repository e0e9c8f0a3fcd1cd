/** `--data` specifications shared by the CLI commands: mnist | fashion-mnist | idx:DIR | cifar10:DIR | folder:DIR. */
import * as path from 'node:path';
import { UsageError } from './errors';
import { type Dataset, holdoutSplit, isInMemory } from '../data/dataset';
import { computeMeanStd } from '../kernels/data';
import { recordedNormalization, type Normalization } from '../data/loader';
import { loadMnist } from '../data/mnist';
import { loadFashionMnist, loadIdx } from '../data/idx';
import { loadCifar10 } from '../data/cifar';
import { folderDecodeSize, loadImageFolder } from '../data/image-folder';

export const DATA_HELP = 'mnist (bundled digits) | fashion-mnist (Debian dataset-fashion-mnist) | idx:DIR | cifar10:DIR | folder:DIR';

export interface Splits {
  name: string;
  train: Dataset;
  /** Held-out split for evaluation (the format's test split, or a seeded 10% holdout). */
  test: Dataset;
}

/** A spec's kind and argument (`idx:DIR` → idx, DIR); the kinds that read a directory require one. */
function parseSpec(spec: string): { kind: string; arg: string } {
  const [kind, ...rest] = spec.split(':');
  const arg = rest.join(':');
  if (['idx', 'cifar10', 'folder'].includes(kind) && !arg) throw new UsageError(`--data ${kind} needs a directory: --data ${kind}:DIR`);
  return { kind, arg };
}

export async function loadSplits(spec: string, options: { seed?: number; imageSize?: number } = {}): Promise<Splits> {
  const { kind, arg } = parseSpec(spec);
  switch (kind) {
    case 'mnist': {
      const all = await loadMnist();
      const { train, test } = holdoutSplit(all, { testFraction: 0.1, seed: options.seed ?? 0 });
      return { name: 'mnist', train, test };
    }
    case 'fashion-mnist':
      return { name: 'fashion-mnist', train: await loadFashionMnist({ split: 'train' }), test: await loadFashionMnist({ split: 'test' }) };
    case 'idx':
      return { name: `idx:${arg}`, train: await loadIdx(arg, { split: 'train' }), test: await loadIdx(arg, { split: 'test' }) };
    case 'cifar10':
      return { name: `cifar10:${arg}`, train: await loadCifar10(arg, { split: 'train' }), test: await loadCifar10(arg, { split: 'test' }) };
    case 'folder': {
      const all = await loadImageFolder(arg, { size: folderDecodeSize(options.imageSize ?? 64) });
      const { train, test } = holdoutSplit(all, { testFraction: 0.1, seed: options.seed ?? 0 });
      return { name: `folder:${arg}`, train, test };
    }
    default:
      throw new UsageError(`unknown --data '${spec}' (expected ${DATA_HELP})`);
  }
}

/**
 * Every image of a `--data` spec, in the format's order, for a model of `imageSize` and `channels`
 * (embeddings): mnist is all bundled digits; idx, cifar10 and fashion-mnist one official split
 * (train by default); a folder is every image, decoded as `loadSplits` decodes it (images are
 * converted to the model's channels), without a cache since each is read once.
 */
export async function loadAll(
  spec: string,
  options: { imageSize: number; channels: 1 | 3; split?: 'train' | 'test' },
): Promise<{ name: string; data: Dataset; root?: string }> {
  const { kind, arg } = parseSpec(spec);
  const hasSplits = ['idx', 'cifar10', 'fashion-mnist'].includes(kind);
  if (options.split !== undefined && !hasSplits) throw new UsageError(`--split is for data with official splits (idx, cifar10, fashion-mnist), not '${kind}'`);
  const split = options.split ?? 'train';
  switch (kind) {
    case 'mnist':
      return { name: 'mnist', data: await loadMnist() };
    case 'fashion-mnist':
      return { name: `fashion-mnist[${split}]`, data: await loadFashionMnist({ split }) };
    case 'idx':
      return { name: `idx:${arg}[${split}]`, data: await loadIdx(arg, { split }) };
    case 'cifar10':
      return { name: `cifar10:${arg}[${split}]`, data: await loadCifar10(arg, { split }) };
    case 'folder': {
      const data = await loadImageFolder(arg, { size: folderDecodeSize(options.imageSize), channels: options.channels, cacheSize: 0 });
      return { name: `folder:${arg}`, data, root: path.resolve(arg) };
    }
    default:
      throw new UsageError(`unknown --data '${spec}' (expected ${DATA_HELP})`);
  }
}

/**
 * The normalisation a checkpoint was trained with (stored in its metadata by `cmae pretrain`), else
 * the statistics of the training split (a neutral 0.5/0.25 for lazy datasets, which would need a
 * full decode).
 */
export function checkpointNormalization(metadata: Record<string, string>, path: string, train: Dataset): Normalization {
  const recorded = recordedNormalization(metadata, path, train.channels);
  if (recorded) return recorded;
  if (isInMemory(train)) return computeMeanStd(train);
  return { mean: Array(train.channels).fill(0.5), std: Array(train.channels).fill(0.25) };
}
