/** `cmae embed`: the encoder's embeddings of every image of a data set, to .npy or .jsonl. */
import { existsSync } from 'node:fs';
import { CMAE } from '../models/cmae';
import { readSafetensors } from '../io/safetensors';
import { AbortError } from '../errors';
import { embed, type EmbeddingStream, type SkippedImage } from '../embed/embed';
import { embeddingOutputs, writeEmbeddings } from '../embed/writers';
import { setMatmulPrecision, setNumThreads } from '../runtime';
import { checkpointNormalization, loadAll } from './data-spec';
import { Interrupted, UsageError, catchInterrupts } from './errors';
import { parseDevice, parseFeaturePool, parsePositiveInt } from './parse';
import { ProgressBar } from './progress';

export interface EmbedCliOptions {
  checkpoint?: string;
  data?: string;
  out?: string;
  pool?: string;
  blocks?: string;
  batchSize: string;
  split?: string;
  force?: boolean;
  threads?: string;
  device: string;
  json?: boolean;
}

export async function runEmbed(o: EmbedCliOptions): Promise<void> {
  if (!o.checkpoint) throw new UsageError('--checkpoint FILE is required');
  if (!existsSync(o.checkpoint)) throw new UsageError(`checkpoint not found: ${o.checkpoint}`);
  if (!o.data) throw new UsageError('--data is required (folder:DIR, idx:DIR, cifar10:DIR, mnist or fashion-mnist)');
  if (!o.out) throw new UsageError('--out FILE.npy or FILE.jsonl is required');
  const requestedPool = parseFeaturePool(o.pool);
  if (o.split !== undefined && o.split !== 'train' && o.split !== 'test') throw new UsageError(`--split must be train or test, got '${o.split}'`);
  const batchSize = parsePositiveInt(o.batchSize, '--batch-size');
  if (o.threads !== undefined) setNumThreads(parsePositiveInt(o.threads, '--threads'));
  const device = parseDevice(o.device);
  let outputs;
  try {
    outputs = embeddingOutputs(o.out);
  } catch {
    throw new UsageError(`--out must name a .npy or .jsonl file, got '${o.out}'`);
  }
  // Refused before anything slow happens; writeEmbeddings checks again when it opens them.
  const existing = o.force ? undefined : outputs.files.find((f) => existsSync(f));
  if (existing) throw new UsageError(`${existing} exists (pass --force to overwrite it)`);
  // fp32 products, as cmae eval: the features are the encoder's, not a precision's.
  setMatmulPrecision('fp32', device);

  const file = await readSafetensors(o.checkpoint);
  const { model } = await CMAE.fromCheckpointFile(file, o.checkpoint, { device });
  const pool = requestedPool ?? model.featurePool;
  const blocks = o.blocks === undefined ? 1 : parsePositiveInt(o.blocks, '--blocks');
  if (blocks > Math.max(1, model.config.depth)) {
    model.dispose();
    throw new UsageError(`--blocks ${blocks}: the encoder has ${model.config.depth} blocks`);
  }
  const progress = new ProgressBar(process.stderr);
  try {
    const { channels, imageSize } = model.config;
    const { name, data, root } = await loadAll(o.data, { imageSize, channels: channels as 1 | 3, split: o.split as 'train' | 'test' | undefined });
    if (data.channels !== channels) throw new UsageError(`the checkpoint expects ${channels}-channel images, ${name} has ${data.channels}`);
    const normalization = checkpointNormalization(file.metadata, o.checkpoint, data);
    if (!file.metadata.normalization) progress.log(`warning: ${o.checkpoint} records no normalization; using ${JSON.stringify(normalization)}`);
    const started = Date.now();
    progress.log(`cmae embed: ${data.size} image${data.size === 1 ? '' : 's'} of ${name}, ${pool} features${blocks > 1 ? ` of the last ${blocks} blocks` : ''} (dim ${blocks * model.config.dim}), batch ${batchSize}, on ${device}, to ${outputs.files.join(' + ')}`);
    const interrupt = catchInterrupts((m) => progress.log(m), 'interrupted: stopping after the current batch; no output is written');
    let stream: EmbeddingStream | undefined;
    let written;
    try {
      stream = embed(model, data, {
        normalization,
        pool,
        blocks,
        batchSize,
        signal: interrupt.signal,
        onSkip: (s: SkippedImage) => progress.log(`warning: skipped image ${s.index}: ${s.error.message}`),
        onProgress: (p) =>
          progress.update({
            step: p.done,
            total: p.total,
            elapsedSeconds: p.elapsedSeconds,
            text: `${p.imagesPerSecond.toFixed(0)} img/s${p.skipped > 0 ? `, ${p.skipped} skipped` : ''}`,
          }),
      });
      written = await writeEmbeddings(stream, o.out, { overwrite: Boolean(o.force), pathsRelativeTo: root });
    } catch (error) {
      if (error instanceof AbortError) {
        progress.done();
        process.stdout.write(`interrupted after ${stream?.embedded ?? 0} of ${data.size} images; nothing written\n`);
        throw new Interrupted();
      }
      throw error;
    } finally {
      interrupt.release();
    }
    progress.done();
    const seconds = (Date.now() - started) / 1000;
    const skipped = stream!.skipped.length;
    if (o.json) {
      process.stdout.write(
        `${JSON.stringify({ data: name, images: data.size, embedded: written.rows, skipped, dim: written.dim, pool, blocks, files: written.files, seconds, imagesPerSecond: data.size / seconds })}\n`,
      );
    } else {
      process.stdout.write(`embedded ${written.rows} image${written.rows === 1 ? '' : 's'} (dim ${written.dim}, ${pool}) in ${seconds.toFixed(1)} s to ${written.files.join(' + ')}\n`);
      process.stdout.write(`skipped ${skipped} unreadable file${skipped === 1 ? '' : 's'}\n`);
    }
  } finally {
    model.dispose();
  }
}
