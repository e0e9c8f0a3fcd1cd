/** `cmae export`: a checkpoint's encoder (or encoder + linear head) as an ONNX file. */
import { existsSync } from 'node:fs';
import { CMAE, type FeaturePool } from '../models/cmae';
import { CLASSIFIER_FORMAT, Classifier } from '../models/classifier';
import { AbortError, FormatError } from '../errors';
import { recordedNormalization } from '../data/loader';
import { readSafetensors, type SafeTensorEntry } from '../io/safetensors';
import { SUPPORTED_OPSETS, exportOnnx, type OnnxClassifierHead } from '../export/onnx';
import { Interrupted, UsageError } from './errors';
import { parseFeaturePool } from './parse';

export interface ExportOptions {
  checkpoint?: string;
  onnx?: string;
  /** Default: the checkpoint's own (CMAE.featurePool; a classifier checkpoint's pool). */
  pool?: string;
  opset: string;
  classifier?: boolean;
  force?: boolean;
  json?: boolean;
}

export async function runExport(o: ExportOptions): Promise<void> {
  if (!o.checkpoint) throw new UsageError('--checkpoint FILE is required');
  if (!o.onnx) throw new UsageError('--onnx FILE is required (the ONNX file to write)');
  if (!existsSync(o.checkpoint)) throw new UsageError(`checkpoint not found: ${o.checkpoint}`);
  const requestedPool = parseFeaturePool(o.pool);
  const opset = Number(o.opset);
  if (!SUPPORTED_OPSETS.includes(opset)) throw new UsageError(`--opset must be one of ${SUPPORTED_OPSETS.join(', ')}, got '${o.opset}'`);
  // Checked again, atomically, when the file is written; here so that a refusal comes before any work.
  if (!o.force && existsSync(o.onnx)) throw new UsageError(`${o.onnx} already exists (pass --force to overwrite it)`);
  const file = await readSafetensors(o.checkpoint);
  const fineTuned = file.metadata.format === CLASSIFIER_FORMAT;
  if (fineTuned && !o.classifier) {
    throw new UsageError(`${o.checkpoint} is a classifier checkpoint (cmae finetune wrote it): pass --classifier to export it with its head (the output is logits)`);
  }
  let model: CMAE | Classifier;
  let classifier: OnnxClassifierHead | undefined;
  let pool: FeaturePool;
  if (fineTuned) {
    model = Classifier.fromCheckpointFile(file, o.checkpoint);
    pool = model.pool;
    if (requestedPool !== undefined && requestedPool !== pool) {
      model.dispose();
      throw new UsageError(`--pool ${o.pool}: ${o.checkpoint} is a classifier fine-tuned on '${pool}' features (leave --pool out)`);
    }
  } else {
    const loaded = await CMAE.fromCheckpointFile(file, o.checkpoint);
    model = loaded.model;
    pool = requestedPool ?? model.featurePool;
    try {
      classifier = o.classifier ? headOf(loaded.extra, o.checkpoint) : undefined;
    } catch (error) {
      model.dispose();
      throw error;
    }
  }
  try {
    const normalization = recordedNormalization(file.metadata, o.checkpoint, model.config.channels);
    // Ctrl-C cancels before anything is written (the write itself is atomic).
    const controller = new AbortController();
    const onSigint = (): void => controller.abort();
    process.once('SIGINT', onSigint);
    let info;
    try {
      info = await exportOnnx(model, o.onnx, { pool, opset, classifier, normalization, force: Boolean(o.force), signal: controller.signal });
    } catch (error) {
      if (error instanceof AbortError) {
        process.stderr.write(`cmae: export cancelled, ${o.onnx} not written\n`);
        throw new Interrupted();
      }
      throw error;
    } finally {
      process.off('SIGINT', onSigint);
    }
    if (o.json) {
      process.stdout.write(`${JSON.stringify({ ...info, pool, classifier: Boolean(o.classifier), normalization: normalization ?? null })}\n`);
      return;
    }
    const io = (v: { name: string; shape: (number | string)[] }): string => `${v.name} [${v.shape.join(', ')}]`;
    process.stdout.write(
      `wrote ${info.path} (${(info.bytes / 1024).toFixed(1)} KiB, opset ${info.opset}, IR version ${info.irVersion}, ${info.nodes} nodes, ${info.initializers} initializers)\n` +
        `  input   ${info.inputs.map(io).join(', ')} float32\n` +
        `  output  ${info.outputs.map(io).join(', ')} float32 (${o.classifier ? `linear head on ${pool} features${fineTuned ? (pool === 'mean' ? ' after fc_norm' : '') : classifier?.norm ? ' after fc_norm' : ''}` : `${pool} features`})\n` +
        `  images: pixels in [0, 1], then per channel (x - mean) / std${normalization ? ` with mean ${JSON.stringify(normalization.mean)}, std ${JSON.stringify(normalization.std)}` : ' (the checkpoint records no normalisation: use the training data\'s)'}\n`,
    );
  } finally {
    model.dispose();
  }
}

/**
 * The checkpoint's head.weight / head.bias for --classifier, and fc_norm.weight / fc_norm.bias when
 * it has them (MAE's global-pool head); their shapes are checked by exportOnnx.
 */
function headOf(extra: Map<string, SafeTensorEntry>, path: string): OnnxClassifierHead {
  const get = (name: string): { shape: number[]; data: Float32Array } => {
    const entry = extra.get(name);
    if (!entry) throw new FormatError(`${path}: no tensor '${name}' (--classifier needs head.weight [numClasses, dim] and head.bias [numClasses]${name.startsWith('fc_norm') ? ', and fc_norm.weight with fc_norm.bias' : ''})`);
    if (entry.dtype !== 'F32') throw new FormatError(`${path}: tensor '${name}' must be F32, got ${entry.dtype}`);
    return { shape: entry.shape, data: entry.data as Float32Array };
  };
  const head: OnnxClassifierHead = { weight: get('head.weight'), bias: get('head.bias') };
  if (extra.has('fc_norm.weight') || extra.has('fc_norm.bias')) head.norm = { weight: get('fc_norm.weight'), bias: get('fc_norm.bias') };
  return head;
}
