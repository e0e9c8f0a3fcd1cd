/** `cmae pretrain`: the main job. Pre-trains, evaluates against the random-init encoder, draws pictures. */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { CMAE } from '../models/cmae';
import { configKeys, methods, minBatchSize, type Mode, type PresetName, presets } from '../models/config';
import { DataLoader, resizeOnly } from '../data/loader';
import { CHECKPOINT_FILE, METRICS_FILE, type StepInfo, checkResumable, train } from '../train/trainer';
import { encoderFeatures, pixelFeatures, scoreFeatures, type EvalScores } from '../eval/evaluate';
import { renderLossPlot, renderReconstructionGrid } from '../viz/pictures';
import { reconstructionRows } from '../viz/reconstruct';
import { getMatmulPrecision, setMatmulPrecision, setNumThreads } from '../runtime';
import { Tensor } from '../tensor';
import { ProgressBar, formatDuration } from './progress';
import { loadSplits } from './data-spec';
import { Interrupted, UsageError, catchInterrupts } from './errors';
import { maskSamplingProblem, type MaskSampling } from '../train/amt';
import { DistributedJob, launchedByMpi } from '../distributed/job';
import { MASKING, parseDevice, parseMatmulPrecision, parseModelOverrides, parseNumberOption, parsePositiveInt } from './parse';

export interface PretrainOptions {
  data: string;
  preset: string;
  method: string;
  epochs?: string;
  steps?: string;
  batchSize: string;
  lr?: string;
  blr: string;
  seed: string;
  threads?: string;
  device: string;
  matmulPrecision?: string;
  out: string;
  resume?: boolean;
  json?: boolean;
  eval: boolean;
  shiftRange?: string;
  maskRatio?: string;
  maskedViews?: string;
  masking?: string;
  model?: string;
  minutes?: string;
  minCrop?: string;
  teacher?: string;
  recomputeActivations?: boolean;
  distributed?: boolean;
  distTimeout?: string;
  distBucketMb?: string;
}

/** What a rank other than 0 shows: its log lines, prefixed with its rank; no progress bar. */
class RankLog {
  constructor(private readonly rank: number) {}
  update(): void {}
  done(): void {}
  log(message: string): void {
    process.stderr.write(message.split('\n').map((l) => `[rank ${this.rank}] ${l}\n`).join(''));
  }
}

export async function runPretrain(o: PretrainOptions): Promise<void> {
  if (!(o.preset in presets)) throw new UsageError(`unknown --preset '${o.preset}' (expected ${Object.keys(presets).join(', ')})`);
  if (!Object.hasOwn(methods, o.method)) throw new UsageError(`--method must be one of ${Object.keys(methods).join(', ')}, got '${o.method}'`);
  const method = o.method as Mode;
  const traits = methods[method];
  if (o.teacher !== undefined && method !== 'maskdistill') throw new UsageError(`--teacher is for --method maskdistill, not ${method}`);
  if (o.teacher !== undefined && !existsSync(o.teacher)) throw new UsageError(`--teacher: no file ${o.teacher}`);
  if ([o.epochs, o.steps, o.minutes].filter((v) => v !== undefined).length > 1) throw new UsageError('give one of --epochs, --steps or --minutes');
  const batchSize = parsePositiveInt(o.batchSize, '--batch-size');
  if (batchSize < minBatchSize(method)) {
    throw new UsageError(`--batch-size ${batchSize}: --method ${method} needs at least ${minBatchSize(method)} images per batch (BatchNorm statistics and the contrastive loss's negatives)`);
  }
  const seed = parsePositiveInt(o.seed, '--seed', true);
  const minutes = o.minutes !== undefined ? parseNumberOption(o.minutes, '--minutes', 0.05, 10_000) : undefined;
  const steps = o.steps !== undefined ? parsePositiveInt(o.steps, '--steps') : undefined;
  const epochs = o.epochs !== undefined ? parsePositiveInt(o.epochs, '--epochs') : steps === undefined && minutes === undefined ? 6 : undefined;
  const lr = o.lr !== undefined ? parseNumberOption(o.lr, '--lr', 0) : undefined;
  const blr = parseNumberOption(o.blr, '--blr', 0);
  if (o.threads !== undefined) setNumThreads(parsePositiveInt(o.threads, '--threads'));
  const device = parseDevice(o.device);
  // The training step's products: as asked, else the device's default (CPU fp32, CUDA tf32 from
  // compute capability 8.0, as PyTorch's "high").
  const matmulPrecision = o.matmulPrecision !== undefined ? parseMatmulPrecision(o.matmulPrecision, device) : getMatmulPrecision(device);
  const preset = presets[o.preset as PresetName];
  const shiftRange = o.shiftRange !== undefined ? parsePositiveInt(o.shiftRange, '--shift-range', true) : Math.max(1, Math.round(preset.imageSize * 7 / 32));
  // --masked-views is the two-view methods' name for their mask ratio (FLIP's masked views).
  if (o.maskedViews !== undefined && traits.onlineViews !== 2) throw new UsageError(`--masked-views is for the two-view methods (mocov3, simclr, densecl), not --method ${method}; use --mask-ratio`);
  if (o.maskedViews !== undefined && o.maskRatio !== undefined) throw new UsageError('give one of --mask-ratio and --masked-views (the same setting for a two-view method)');
  const maskRatio = o.maskedViews !== undefined ? parseNumberOption(o.maskedViews, '--masked-views', 0, 0.99)
    : o.maskRatio !== undefined ? parseNumberOption(o.maskRatio, '--mask-ratio', 0, 0.99) : undefined;
  if (o.masking !== undefined && !Object.hasOwn(MASKING, o.masking)) {
    throw new UsageError(`--masking must be one of ${Object.keys(MASKING).join(', ')}, got '${o.masking}'`);
  }
  const masking = o.masking !== undefined ? MASKING[o.masking] : undefined;
  const maskGroup = masking?.maskGroup;
  const maskSampling = masking?.maskSampling ?? 'uniform';
  const samplingProblem = maskSamplingProblem(method, maskSampling);
  if (samplingProblem) throw new UsageError(`--masking ${o.masking}: ${samplingProblem}`);
  // The keys of the method's config: its own fields too (densecl: denseWeight; throwRatio).
  const overrides = o.model !== undefined ? parseModelOverrides(o.model, configKeys(method)) : {};
  if (!o.distributed && (o.distTimeout !== undefined || o.distBucketMb !== undefined)) throw new UsageError('--dist-timeout and --dist-bucket-mb are for --distributed runs');
  if (o.distributed) {
    if (!launchedByMpi()) throw new UsageError('--distributed: start the ranks with an MPI launcher, e.g. `cmae launch --nproc 2 -- pretrain ...` or `mpirun -np 2 npx cmae pretrain --distributed ...`');
  }
  const timeoutSeconds = o.distTimeout !== undefined ? parseNumberOption(o.distTimeout, '--dist-timeout', 0.1, 86_400) : undefined;
  const bucketMiB = o.distBucketMb !== undefined ? parseNumberOption(o.distBucketMb, '--dist-bucket-mb', 0, 4096) : undefined;
  // A data-parallel job (issue 16): every rank runs this command; rank 0 writes the outputs.
  const job = o.distributed ? await DistributedJob.join({ timeoutSeconds, bucketMiB }) : undefined;
  try {
    await pretrainAs(o, { method, traits, batchSize, seed, minutes, steps, epochs, lr, blr, device, matmulPrecision, preset, shiftRange, maskRatio, maskGroup, maskSampling, overrides }, job);
  } finally {
    await job?.leave();
  }
}

/** What runPretrain parsed and checked, for every rank. */
interface PretrainSettings {
  method: Mode;
  traits: (typeof methods)[Mode];
  batchSize: number;
  seed: number;
  minutes?: number;
  steps?: number;
  epochs?: number;
  lr?: number;
  blr: number;
  device: ReturnType<typeof parseDevice>;
  matmulPrecision: ReturnType<typeof getMatmulPrecision>;
  preset: (typeof presets)[PresetName];
  shiftRange: number;
  maskRatio?: number;
  maskGroup?: number;
  maskSampling: MaskSampling;
  overrides: ReturnType<typeof parseModelOverrides>;
}

async function pretrainAs(o: PretrainOptions, settings: PretrainSettings, job: DistributedJob | undefined): Promise<void> {
  const { method, traits, batchSize, seed, minutes, steps, epochs, lr, blr, device, matmulPrecision, preset, shiftRange, maskRatio, maskGroup, maskSampling, overrides } = settings;
  const root = !job || job.isRoot;
  const progress = root ? new ProgressBar(process.stderr) : new RankLog(job!.rank);
  // Evaluation, pictures and the summary are rank 0's (the model is the same on every rank).
  const evaluate = o.eval && root;

  // Ctrl-C from here on (the data, the baselines, training) stops at the next step, saves a
  // checkpoint and exits with 130; the baselines are not interruptible, so it may wait for them.
  const interrupt = catchInterrupts((m) => progress.log(m), 'interrupted: finishing the current step and saving a checkpoint', job ? ['SIGINT', 'SIGUSR2'] : ['SIGINT']);
  try {
    const splits = await loadSplits(o.data, { seed, imageSize: preset.imageSize });
    const channels = splits.train.channels as 1 | 3;
    const checkpoint = path.join(o.out, CHECKPOINT_FILE);
    if (o.resume && !existsSync(checkpoint)) throw new UsageError(`--resume: no checkpoint at ${checkpoint}`);
    const model = await CMAE.create({
      preset: o.preset as PresetName,
      channels,
      mode: method,
      seed,
      maskRatio,
      maskGroup,
      device,
      ...overrides,
    });
    model.recomputeActivations = o.recomputeActivations ?? false;
    // A resumed run must be the same run: the checkpoint's configuration, data and teacher are
    // compared now, before any slow work (the baselines, the data statistics).
    if (o.resume) await checkResumable(checkpoint, model.config, { data: o.data, maskSampling, ...(o.teacher !== undefined ? { teacher: o.teacher } : {}) });
    // A frozen teacher: its encoder in the momentum branch, kept there by a momentum of 1 (resume
    // restores it from the checkpoint, which holds the momentum branch).
    if (o.teacher !== undefined) await model.loadTeacher(o.teacher);
    const loader = new DataLoader(splits.train, {
      batchSize,
      seed,
      device, // the views are made where the model trains
      targetView: traits.targetView,
      augment: {
        outSize: model.config.imageSize,
        shiftRange: traits.targetView === 'none' ? 0 : shiftRange,
        scaleMin: o.minCrop !== undefined ? parseNumberOption(o.minCrop, '--min-crop', 0.01, 1) : 0.2,
      },
    });
    const normalization = await loader.normalization();
    const featureOptions = { imageSize: model.config.imageSize, normalization };
    progress.log(
      `cmae pretrain: ${method} ${o.preset} on ${splits.name} (${splits.train.size} train / ${splits.test.size} held out), ` +
        `batch ${batchSize}, ${model.numVisible}/${model.numPatches} patches visible, on ${device} (${matmulPrecision} matmuls), output in ${o.out}` +
        (job ? `; rank ${job.rank} of ${job.worldSize} (${job.engine}), each computing 1/${job.worldSize} of every batch` : ''),
    );

    // The baselines a learned encoder must beat: the same architecture and seed before any training,
    // and the raw pixels, scored the same way (k-NN and the linear probe).
    let randomInit: EvalScores = {};
    let pixels: EvalScores = {};
    // The matmul precision, when asked for, is for the training step only: the random-init baseline
    // and the pictures and evaluation use fp32 products, so the k-NN figures compare encoders.
    setMatmulPrecision('fp32', device);
    if (evaluate) {
      const fresh = o.resume ? await CMAE.create({ ...model.config, seed, device }) : model;
      randomInit = await scoresOf(fresh, splits, featureOptions, seed);
      if (fresh !== model) fresh.dispose();
      pixels = scoreFeatures(await pixelFeatures(splits.train, featureOptions), await pixelFeatures(splits.test, featureOptions), {
        knn: true,
        linear: true,
        linearOptions: { seed },
      });
      progress.log(`baselines: random-init encoder ${formatScores(randomInit)}; raw pixels ${formatScores(pixels)}`);
    }

    if (minutes !== undefined) progress.log(`time budget ${minutes} min: the LR and momentum schedules follow the fraction of the budget used`);

    const started = Date.now();
    let result;
    setMatmulPrecision(matmulPrecision, device);
    try {
      result = await train({
        model,
        data: loader,
        epochs,
        steps,
        blr,
        lr,
        outDir: o.out,
        checkpointEvery: 200,
        resumeFrom: o.resume ? checkpoint : undefined,
        signal: interrupt.signal,
        seconds: minutes !== undefined ? minutes * 60 : undefined,
        maskSampling,
        distributed: job,
        ...(o.teacher !== undefined ? { momentumBase: 1, momentumEnd: 1 } : {}),
        metadata: { normalization: JSON.stringify(normalization), data: o.data, device, matmulPrecision, ...(o.teacher !== undefined ? { teacher: o.teacher } : {}) },
        onStep: (s: StepInfo) =>
          progress.update({
            step: s.step,
            total: s.totalSteps,
            fraction: s.progress,
            elapsedSeconds: (Date.now() - started) / 1000,
            text: `${s.skipped ? `skipped (loss ${s.loss}, gradient norm ${s.gradNorm}) ` : ''}loss ${s.loss.toFixed(4)} (${lossParts(method, s)}) | ${s.imagesPerSecond.toFixed(0)} img/s`,
          }),
      });
    } finally {
      progress.done();
      setMatmulPrecision('fp32', device);
    }

    if (!root) {
      // The other ranks are done: rank 0 evaluates, draws and reports.
      model.dispose();
      if (result.aborted || interrupt.signal.aborted) throw new Interrupted();
      return;
    }
    // Pictures: loss curves from the whole metrics file (a resumed run includes earlier steps).
    const history = await readMetrics(path.join(o.out, METRICS_FILE));
    await renderLossPlot(history, path.join(o.out, 'loss.png'), `${method.toUpperCase()} pre-training on ${splits.name}`);
    const pictures = ['loss.png'];
    if (traits.reconstructs === 'pixels') {
      await drawReconstructions(model, splits.test, normalization, path.join(o.out, 'reconstruction.png'), seed);
      pictures.push('reconstruction.png');
    }

    const summary: Record<string, unknown> = {
      method,
      preset: o.preset,
      data: splits.name,
      device,
      matmulPrecision,
      steps: result.steps,
      aborted: result.aborted || interrupt.signal.aborted,
      lastLoss: result.lastLoss,
      seconds: (Date.now() - started) / 1000,
      imagesPerSecond: loader.stats.batches > 0 ? mean(result.history.map((h) => h.imagesPerSecond)) : undefined,
      dataWaitMsPerStep: loader.stats.batches > 0 ? loader.stats.waitMs / loader.stats.batches : undefined,
      outputs: ['checkpoint.safetensors', 'metrics.jsonl', ...pictures].map((f) => path.join(o.out, f)),
    };
    // A Ctrl-C during the last step lets the run complete, but the user asked to stop: no evaluation, 130.
    const interrupted = result.aborted || interrupt.signal.aborted;
    if (evaluate && !interrupted) {
      const learned = await scoresOf(model, splits, featureOptions, seed);
      Object.assign(summary, {
        knnTop1: learned.knnTop1,
        linearTop1: learned.linearTop1,
        randomInitKnnTop1: randomInit.knnTop1,
        randomInitLinearTop1: randomInit.linearTop1,
        pixelsKnnTop1: pixels.knnTop1,
        pixelsLinearTop1: pixels.linearTop1,
      });
      const row = (name: string, s: EvalScores) => `  ${name.padEnd(16)} ${pct(s.knnTop1).padStart(8)} ${pct(s.linearTop1).padStart(10)}`;
      progress.log(
        [`top-1 on the ${splits.test.size} held-out images     k-NN     linear`, row('learned encoder', learned), row('random-init', randomInit), row('raw pixels', pixels)].join('\n'),
      );
    }
    model.dispose();
    if (interrupted) {
      // Interrupted (Ctrl-C): the checkpoint is saved; say so, then exit with 130 as a shell expects.
      if (o.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      else process.stdout.write(`stopped at step ${result.steps}; checkpoint saved to ${checkpoint} (continue with --resume)\n`);
      throw new Interrupted();
    }
    if (o.json) {
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    } else {
      process.stdout.write(`done: ${result.steps} steps in ${formatDuration(Number(summary.seconds))}; wrote ${(summary.outputs as string[]).join(', ')}\n`);
    }

  } finally {
    interrupt.release();
  }
}

/** k-NN (k = 20) and linear-probe top-1 of an encoder's features. */
async function scoresOf(
  model: CMAE,
  splits: { train: import('../data/dataset').Dataset; test: import('../data/dataset').Dataset },
  options: Parameters<typeof encoderFeatures>[2],
  seed: number,
): Promise<EvalScores> {
  const train = await encoderFeatures(model, splits.train, options);
  const test = await encoderFeatures(model, splits.test, options);
  return scoreFeatures(train, test, { knn: true, linear: true, linearOptions: { seed } });
}

/** The loss terms the method has, for the progress line. */
function lossParts(method: Mode, s: StepInfo): string {
  const parts = [];
  if (methods[method].reconstructs) parts.push(`${methods[method].reconstructs === 'pixels' ? 'rc' : 'distill'} ${s.reconstruction.toFixed(4)}`);
  if (methods[method].contrastive) parts.push(`ct ${s.contrastive.toFixed(4)}`);
  if (s.dense !== undefined) parts.push(`dense ${s.dense.toFixed(4)}`);
  return parts.join(', ');
}

const pct = (v: number | undefined) => (v === undefined ? '-' : `${(100 * v).toFixed(2)}%`);
const formatScores = (s: EvalScores) => `k-NN ${pct(s.knnTop1)}, linear ${pct(s.linearTop1)}`;

export async function drawReconstructions(
  model: CMAE,
  dataset: import('../data/dataset').Dataset,
  normalization: { mean: number[]; std: number[] },
  file: string,
  seed: number,
  count = 8,
): Promise<void> {
  const loader = new DataLoader(dataset, {
    batchSize: Math.min(count, dataset.size),
    seed,
    targetView: 'none',
    normalize: normalization,
    augment: resizeOnly(model.config.imageSize),
  });
  for await (const batch of loader.batches(0)) {
    const images: Tensor = batch.images;
    const rows = await reconstructionRows(model, images, normalization);
    await renderReconstructionGrid(rows, model.config.channels, model.config.imageSize, file);
    batch.dispose();
    break;
  }
}

async function readMetrics(file: string): Promise<StepInfo[]> {
  if (!existsSync(file)) return [];
  const text = await readFile(file, 'utf8');
  return text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as StepInfo);
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
}
