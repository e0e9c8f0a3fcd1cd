/** `cmae reconstruct`: a picture of masked inputs and their reconstructions from a checkpoint. */
import { existsSync } from 'node:fs';
import { CMAE } from '../models/cmae';
import { readSafetensors } from '../io/safetensors';
import { checkpointNormalization, loadSplits } from './data-spec';
import { drawReconstructions } from './pretrain';
import { UsageError } from './errors';
import { parseDevice, parsePositiveInt } from './parse';

export interface ReconstructOptions {
  checkpoint?: string;
  data: string;
  out: string;
  count: string;
  seed: string;
  device: string;
  json?: boolean;
}

export async function runReconstruct(o: ReconstructOptions): Promise<void> {
  if (!o.checkpoint) throw new UsageError('--checkpoint FILE is required');
  if (!existsSync(o.checkpoint)) throw new UsageError(`checkpoint not found: ${o.checkpoint}`);
  if (!o.out.toLowerCase().endsWith('.png')) throw new UsageError(`--out must name a .png file, got '${o.out}'`);
  const count = parsePositiveInt(o.count, '--count');
  if (count < 2) throw new UsageError('--count must be at least 2');
  const seed = parsePositiveInt(o.seed, '--seed', true);
  const device = parseDevice(o.device);
  const file = await readSafetensors(o.checkpoint);
  const { model } = await CMAE.fromCheckpointFile(file, o.checkpoint, { device });
  const splits = await loadSplits(o.data, { seed, imageSize: model.config.imageSize });
  if (splits.test.channels !== model.config.channels) {
    throw new UsageError(`the checkpoint expects ${model.config.channels}-channel images, ${splits.name} has ${splits.test.channels}`);
  }
  const normalization = checkpointNormalization(file.metadata, o.checkpoint, splits.train);
  await drawReconstructions(model, splits.test, normalization, o.out, seed, Math.min(count, splits.test.size));
  model.dispose();
  if (o.json) process.stdout.write(`${JSON.stringify({ out: o.out, images: Math.min(count, splits.test.size) })}\n`);
  else process.stdout.write(`wrote ${o.out} (a row per image; columns: original | masked input | reconstruction)\n`);
}
