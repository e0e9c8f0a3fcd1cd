/**
 * The training loop: schedules, momentum updates, checkpoints, metrics.jsonl, AbortSignal and
 * resume. Each step awaits native work (lossAndGrad, AdamW, EMA) that runs off the event loop,
 * so a server embedding cmae keeps serving while it trains.
 */
import { appendFile, mkdir, readdir, readFile, unlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { ValueError } from '../errors';
import type { Tensor } from '../tensor';
import { CMAE, type LossParts } from '../models/cmae';
import { describeValue, objectArg } from '../args';
import { methods, type ModelConfig } from '../models/config';
import { AdamW, type AdamWOptions } from '../optim/adamw';
import { cosineWithWarmup, momentumSchedule } from '../optim/schedules';
import { readSafetensors, readSafetensorsMetadata } from '../io/safetensors';
import { writeFileAtomic } from '../io/atomic';
import type { Normalization } from '../data/loader';
import { attentionMaskNoiseFor, maskSamplingProblem, type MaskSampling } from './amt';
import { DistributedJob } from '../distributed/job';
import { DistributedError } from '../errors';
import { packageVersion } from '../runtime';

/** What the trainer needs from a data loader (src/data/loader.ts implements it). */
export interface BatchSource {
  readonly batchSize: number;
  readonly stepsPerEpoch: number;
  /** Batches of one epoch, starting at batch `startBatch` (for exact resume). */
  batches(epoch: number, startBatch?: number): AsyncIterable<{ images: Tensor; targetImages?: Tensor }>;
  /** The pixel normalisation of the batches (a DataLoader's): recorded in every checkpoint, which CMAE.load reads back as model.normalization. */
  normalization?(): Promise<Normalization>;
}

export interface StepInfo {
  step: number;
  epoch: number;
  /** Planned steps (with a time budget: the estimate at the current speed). */
  totalSteps: number;
  /** Fraction of the run done, 0..1 (steps, or wall time with a time budget). */
  progress: number;
  lr: number;
  momentum: number;
  loss: number;
  reconstruction: number;
  contrastive: number;
  /** DenseCL only: the dense part of `contrastive` (LossParts.dense). */
  dense?: number;
  gradNorm: number;
  /** The step's loss or gradient norm was not finite: nothing was applied (see TrainOptions.maxSkippedSteps). */
  skipped?: boolean;
  imagesPerSecond: number;
  /** Milliseconds this step waited for its batch (0 when prefetch kept up). */
  dataWaitMs: number;
  elapsedSeconds: number;
}

export interface TrainOptions {
  model: CMAE;
  data: BatchSource;
  /** Train for this many epochs (default 1) … */
  epochs?: number;
  /** … or exactly this many steps (overrides epochs). */
  steps?: number;
  /** Base learning rate per 256 images: lr = blr·batchSize/256 (spec §1.8). Default 1.5e-4. */
  blr?: number;
  /** Absolute learning rate (overrides blr). */
  lr?: number;
  minLr?: number;
  /** Warmup length as a fraction of the run (default 0.05, since short runs cannot afford 40 epochs). */
  warmupFraction?: number;
  /** Warmup starts at this fraction of lr (CMAE: 1e-4, MAE: 0). */
  warmupStartFactor?: number;
  /**
   * Momentum schedule m_base → m_end (spec §2.9; CMAE code: constant 0.996). A momentum of 1 leaves
   * the momentum branch as it is (no EMA call): MaskDistill's frozen teacher (CMAE.loadTeacher).
   */
  momentumBase?: number;
  momentumEnd?: number;
  optimizer?: Omit<AdamWOptions, 'lr'>;
  /** Directory for checkpoint.safetensors and metrics.jsonl (nothing written when omitted). */
  outDir?: string;
  /** Save a checkpoint every N steps (and always at the end or on abort). */
  checkpointEvery?: number;
  /** Resume from this checkpoint (written by this trainer). */
  resumeFrom?: string;
  signal?: AbortSignal;
  /**
   * Train for this much wall time instead of a step count. The LR and momentum schedules follow
   * the fraction of the budget used, so the run ends at the budget with its schedule complete.
   * Such a run depends on timing and is not bit-reproducible (use steps for that).
   */
  seconds?: number;
  onStep?: (info: StepInfo) => void | Promise<void>;
  /**
   * Consecutive skipped steps (non-finite loss or gradient norm: reported with `skipped: true`, not
   * applied) after which the run stops with a ValueError. Default 5.
   */
  maxSkippedSteps?: number;
  /**
   * Steps kept in the result's `history`: the last N (default 1000; Infinity keeps every step). A
   * run of a million steps would otherwise hold a million StepInfo objects; metrics.jsonl (outDir)
   * has every step.
   */
  historyLimit?: number;
  /**
   * How each step's mask is drawn: 'uniform' (default: the model's seeded noise) or 'attention'
   * (AMT's attention-driven masking, src/train/amt.ts: the encoder's cls attention makes the
   * patches it looks at likelier to be masked; mae, cmae and maskdistill). Recorded in
   * checkpoints as metadata.maskSampling; a resume must use the same (checkResumable; a checkpoint
   * from before this option has none and resumes either way).
   */
  maskSampling?: MaskSampling;
  /** Extra string metadata stored in every checkpoint (the data's normalisation is recorded without it, when `data` has one). */
  metadata?: Record<string, string>;
  /**
   * Train data-parallel in this job (src/distributed/job.ts). Every rank runs train() with the same
   * options and a data source that yields the same global batches (a DataLoader with the same
   * seed does): each computes its share of the samples, the gradients are summed across ranks, and
   * all hold the same parameters. Only rank 0 writes to outDir and calls onStep; every rank reads
   * resumeFrom. The ranks first agree on the configuration, the run and the cmae version; an abort
   * (signal) on any rank stops all after the same step; a time budget (`seconds`) follows rank
   * 0's clock.
   */
  distributed?: DistributedJob;
  /**
   * With `distributed`: every N steps the ranks compare a checksum of their parameters (a
   * DistributedError if any differs). A debugging aid: off by default, or the CLI's and any
   * program's with CMAE_DIST_CHECKSUM_EVERY=N in the environment.
   */
  checksumEvery?: number;
}

export interface TrainResult {
  steps: number;
  aborted: boolean;
  lastLoss: number;
  checkpointPath?: string;
  /** The last `historyLimit` steps (default 1000), in order. */
  history: StepInfo[];
}

const DEFAULT_HISTORY_LIMIT = 1000;

export const CHECKPOINT_FILE = 'checkpoint.safetensors';
export const METRICS_FILE = 'metrics.jsonl';

export async function train(options: TrainOptions): Promise<TrainResult> {
  const { model, data, signal } = objectArg(options, 'options');
  if (!(model instanceof CMAE)) throw new ValueError(`options.model must be a CMAE, got ${describeValue(model)}`);
  if (typeof data?.batches !== 'function' || !Number.isInteger(data.batchSize) || !Number.isInteger(data.stepsPerEpoch)) {
    throw new ValueError(`options.data must be a batch source (a DataLoader, or { batchSize, stepsPerEpoch, batches() }), got ${describeValue(data)}`);
  }
  const batchSize = data.batchSize;
  const stepsPerEpoch = data.stepsPerEpoch;
  if (!(stepsPerEpoch >= 1)) throw new ValueError('the data source yields no full batch; lower batchSize or add data');
  const budget = options.seconds;
  if (budget !== undefined && !(budget > 0)) throw new ValueError(`seconds must be positive, got ${budget}`);
  const totalSteps = budget !== undefined ? Number.MAX_SAFE_INTEGER : options.steps ?? (options.epochs ?? 1) * stepsPerEpoch;
  if (!Number.isInteger(totalSteps) || totalSteps < 1) throw new ValueError(`steps must be a positive integer, got ${totalSteps}`);
  // With a time budget the schedules run over a virtual step axis indexed by the budget fraction.
  const scheduleSteps = budget !== undefined ? 1_000_000 : totalSteps;
  const lr = options.lr ?? (options.blr ?? 1.5e-4) * (batchSize / 256);
  const warmupSteps = Math.min(scheduleSteps, Math.round((options.warmupFraction ?? 0.05) * scheduleSteps));
  const lrAt = cosineWithWarmup({ baseLr: lr, minLr: options.minLr ?? 0, warmupSteps, totalSteps: scheduleSteps, warmupStartFactor: options.warmupStartFactor ?? (model.config.mode === 'cmae' ? 1e-4 : 0) });
  const momentumAt = momentumSchedule(options.momentumBase ?? 0.996, options.momentumEnd ?? 0.996, scheduleSteps);
  const maskSampling = options.maskSampling ?? 'uniform';
  const samplingProblem = maskSamplingProblem(model.config.mode, maskSampling);
  if (samplingProblem) throw new ValueError(samplingProblem);
  const job = options.distributed;
  if (job !== undefined && !(job instanceof DistributedJob)) throw new ValueError(`distributed must be a DistributedJob, got ${describeValue(job)}`);
  const checksumEvery = options.checksumEvery ?? (process.env.CMAE_DIST_CHECKSUM_EVERY ? Number(process.env.CMAE_DIST_CHECKSUM_EVERY) : 0);
  if (!Number.isInteger(checksumEvery) || checksumEvery < 0) throw new ValueError(`checksumEvery (or CMAE_DIST_CHECKSUM_EVERY) must be a non-negative integer, got ${describeValue(checksumEvery)}`);
  // Only rank 0 writes files and reports steps.
  const writer = !job || job.isRoot;
  const optimizer = new AdamW(model, { ...options.optimizer, lr });

  // The moments are this run's: freed when it ends, also when it throws.
  try {
    let step = 0;
    let priorSeconds = 0; // training time of the run before a resume
    if (options.resumeFrom) ({ step, trainedSeconds: priorSeconds } = await restoreTrainerState(options.resumeFrom, model, optimizer, { maskSampling }));
    if (job) {
      await job.agree(
        {
          cmae: packageVersion(),
          config: JSON.stringify(model.config),
          seed: String(model.seed),
          batchSize: String(batchSize),
          stepsPerEpoch: String(stepsPerEpoch),
          totalSteps: String(totalSteps),
          lr: String(lr),
          warmupSteps: String(warmupSteps),
          maskSampling,
          optimizer: JSON.stringify(options.optimizer ?? {}),
          momentum: `${options.momentumBase ?? 0.996}..${options.momentumEnd ?? 0.996}`,
          resumeStep: String(step),
          metadata: JSON.stringify(options.metadata ?? {}),
        },
        'the training run',
      );
      model.setDistributed(job);
    }
    const outDir = writer ? options.outDir : undefined;
    const checkpointPath = outDir ? path.join(outDir, CHECKPOINT_FILE) : undefined;
    const metricsPath = outDir ? path.join(outDir, METRICS_FILE) : undefined;
    if (outDir) {
      await mkdir(outDir, { recursive: true });
      if (step === 0) await writeFile(metricsPath!, '');
      else await truncateMetrics(metricsPath!, step);
      await removeStaleTemporaries(checkpointPath!);
    }
    // What the encoder was trained on, so that a loaded checkpoint embeds images as it saw them.
    const normalization = typeof data.normalization === 'function' ? JSON.stringify(await data.normalization()) : undefined;
    const save = async () => {
      if (!checkpointPath) return; // (a distributed run's other ranks have none: rank 0 writes)
      await model.save(checkpointPath, {
        tensors: await optimizer.readStateTensors(),
        metadata: {
          ...(normalization !== undefined ? { normalization } : {}),
          ...options.metadata,
          maskSampling,
          step: String(step),
          optimizerStep: String(optimizer.stepCount),
          totalSteps: String(budget !== undefined ? step : totalSteps),
          trainedSeconds: String(ownSeconds()), // (rank 0's own clock: the one a distributed run follows)
        },
      });
    };

    const history: StepInfo[] = [];
    const historyLimit = options.historyLimit ?? DEFAULT_HISTORY_LIMIT;
    if (!(historyLimit === Infinity || (Number.isInteger(historyLimit) && historyLimit >= 0))) {
      throw new ValueError(`historyLimit must be a non-negative integer or Infinity, got ${describeValue(historyLimit)}`);
    }
    const started = Date.now();
    const ownSeconds = () => priorSeconds + (Date.now() - started) / 1000;
    // A distributed run follows rank 0's clock, read at the start of each step (stepControl), so
    // that every rank stops at the same step and draws the same learning rates.
    let rootSeconds = 0;
    const trainedSeconds = () => (job ? rootSeconds : ownSeconds());
    // Position on the schedule axis: the step, or the budget fraction on the virtual axis.
    const scheduleStep = () => (budget !== undefined ? Math.min(scheduleSteps - 1, Math.floor((trainedSeconds() / budget) * scheduleSteps)) : step);
    let aborted = false;
    let lastLoss = NaN;
    let consecutiveSkips = 0;
    const maxSkips = options.maxSkippedSteps ?? 5;
    if (!Number.isInteger(maxSkips) || maxSkips < 1) throw new ValueError(`maxSkippedSteps must be a positive integer, got ${maxSkips}`);
    outer: while (step < totalSteps) {
      const epoch = Math.floor(step / stepsPerEpoch);
      const iterator = data.batches(epoch, step % stepsPerEpoch)[Symbol.asyncIterator]();
      // However the epoch ends (its last batch, the step budget, an abort, an error), the iterator is
      // closed, so the loader disposes the batch it prefetched instead of leaving it to a GC.
      try {
        while (step < totalSteps) {
          // A distributed run stops on every rank after the same step: the ranks tell each other.
          let stop = signal?.aborted ?? false;
          if (job) ({ stop, seconds: rootSeconds } = await job.stepControl(stop, ownSeconds()));
          if (stop) {
            aborted = true;
            break outer;
          }
          if (budget !== undefined && trainedSeconds() >= budget) break outer;
          const waitStart = performance.now();
          const next = await iterator.next();
          const dataWaitMs = performance.now() - waitStart;
          if (next.done) break;
          const stepStart = performance.now();
          const { images, targetImages } = next.value;
          let parts: LossParts, lrNow: number, gradNorm: number, momentum: number;
          let skipped = false;
          try {
            const maskNoise = maskSampling === 'attention' ? await attentionMaskNoiseFor(model, images, step) : undefined;
            parts = await model.lossAndGrad({ images, targetImages, maskNoise });
            const position = scheduleStep();
            lrNow = lrAt(position);
            momentum = momentumAt(position);
            // A non-finite loss or gradient norm skips the step: no update, no EMA (the model put
            // its BatchNorm statistics back itself, and AdamW skips a non-finite norm), so the
            // model and every checkpoint stay as they were before it.
            gradNorm = Number.isFinite(parts.loss) ? await optimizer.step({ lr: lrNow }) : NaN;
            skipped = !Number.isFinite(gradNorm);
            if (!skipped && methods[model.config.mode].momentum && momentum < 1) await model.updateMomentum(momentum);
          } finally {
            // The batch is this step's: freed when the step ends, also when it throws.
            images.dispose();
            targetImages?.dispose();
          }
          step++;
          consecutiveSkips = skipped ? consecutiveSkips + 1 : 0;
          if (!skipped) lastLoss = parts.loss;
          const seconds = (performance.now() - stepStart) / 1000;
          const progress = budget !== undefined ? Math.min(1, trainedSeconds() / budget) : step / totalSteps;
          const info: StepInfo = {
            step,
            epoch: (step - 1) / stepsPerEpoch,
            totalSteps: budget !== undefined ? Math.max(step, Math.round(step / Math.max(progress, 1e-9))) : totalSteps,
            progress,
            lr: lrNow,
            momentum,
            loss: parts.loss,
            reconstruction: parts.reconstruction,
            contrastive: parts.contrastive,
            ...(parts.dense !== undefined ? { dense: parts.dense } : {}),
            gradNorm,
            ...(skipped ? { skipped: true } : {}),
            imagesPerSecond: batchSize / Math.max(seconds, 1e-9),
            dataWaitMs,
            elapsedSeconds: ownSeconds(),
          };
          history.push(info);
          // Trimmed in batches (amortised O(1) per step), to the limit at the end.
          if (history.length > 2 * historyLimit) history.splice(0, history.length - historyLimit);
          if (metricsPath) await appendFile(metricsPath, `${JSON.stringify(info)}\n`);
          if (options.onStep && writer) await options.onStep(info);
          if (job && checksumEvery > 0 && step % checksumEvery === 0) await checkSameParameters(job, model, step);
          if (consecutiveSkips >= maxSkips) {
            throw new ValueError(
              `${consecutiveSkips} consecutive steps had a non-finite loss or gradient (the last, step ${step}: loss ${parts.loss}, gradient norm ${gradNorm}); ` +
                `none was applied and the checkpoint holds the model from before them. Lower the learning rate or check the data`,
            );
          }
          if (options.checkpointEvery && step % options.checkpointEvery === 0 && step < totalSteps) await save();
        }
      } finally {
        await iterator.return?.();
      }
    }
    await save();
    if (history.length > historyLimit) history.splice(0, history.length - historyLimit);
    return { steps: step, aborted, lastLoss, checkpointPath, history };
  } finally {
    if (job && !model.disposed) model.setDistributed(null);
    optimizer.dispose();
  }
}

/** Every rank's parameters hash to the same value, or a DistributedError naming those that differ from rank 0. */
async function checkSameParameters(job: DistributedJob, model: CMAE, step: number): Promise<void> {
  const words = new Uint32Array((await model.native.readArenaAsync('params')).buffer);
  let h1 = 0x811c9dc5, h2 = 0x01000193;
  for (let i = 0; i < words.length; i++) {
    h1 = Math.imul(h1 ^ words[i]!, 0x01000193) >>> 0;
    h2 = (Math.imul(h2, 31) + words[i]!) >>> 0;
  }
  const all = await job.allgather(new Uint8Array(new Uint32Array([h1, h2]).buffer));
  const key = (b: Uint8Array) => Array.from(b).join(',');
  const differ = all.map((b, r) => (key(b) !== key(all[0]!) ? r : -1)).filter((r) => r > 0);
  if (differ.length > 0) throw new DistributedError(`after step ${step} the parameters of rank ${differ.join(', ')} differ from rank 0's (checksum)`);
}

/**
 * Whether the trainer checkpoint `file` can continue a run of `config` with `metadata` (e.g. the
 * data it trains on): throws a ValueError naming every configuration field and every given
 * metadata key whose value differs, before anything slow (the caller runs it first). Reads the
 * file's header only; builds nothing.
 */
export async function checkResumable(file: string, config: Readonly<ModelConfig>, metadata: Record<string, string> = {}): Promise<void> {
  const meta = await readSafetensorsMetadata(file);
  let saved: Record<string, unknown>;
  try {
    saved = JSON.parse(meta.config ?? 'null') as Record<string, unknown>;
  } catch {
    throw new ValueError(`${file}: metadata.config is not valid JSON`);
  }
  if (typeof saved !== 'object' || saved === null) throw new ValueError(`${file} is not a trainer checkpoint (no metadata.config)`);
  const current = config as unknown as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(saved), ...Object.keys(current)])];
  const differ = keys.filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(current[k])).map((k) => `${k} (checkpoint ${JSON.stringify(saved[k])}, now ${JSON.stringify(current[k])})`);
  for (const [k, v] of Object.entries(metadata)) if (meta[k] !== undefined && meta[k] !== v) differ.push(`${k} (checkpoint ${JSON.stringify(meta[k])}, now ${JSON.stringify(v)})`);
  if (differ.length > 0) throw new ValueError(`cannot resume from ${file}: it was written for another run; it differs in ${differ.join(', ')}`);
}

/**
 * A run resumed at `step` continues metrics.jsonl from there: lines of later steps (written after
 * the checkpoint by a run that was then killed) are dropped, so no step is listed twice.
 */
async function truncateMetrics(file: string, step: number): Promise<void> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return;
  }
  const kept = text.split('\n').filter((line) => line.trim() && (JSON.parse(line) as { step: number }).step <= step);
  await writeFileAtomic(file, kept.map((l) => `${l}\n`).join(''));
}

/** Loads model weights, optimizer moments, the step counter and the time trained from a trainer checkpoint. */
async function restoreTrainerState(file: string, model: CMAE, optimizer: AdamW, metadata: Record<string, string>): Promise<{ step: number; trainedSeconds: number }> {
  await checkResumable(file, model.config, metadata);
  const parsed = await readSafetensors(file);
  const { model: loaded, extra } = await CMAE.fromCheckpointFile(parsed, file);
  model.loadStateDict(loaded.stateDict());
  model.maskCounter = loaded.maskCounter;
  loaded.dispose();
  const moments = new Map<string, Float32Array>();
  for (const [name, entry] of extra) if (name.startsWith('optimizer.')) moments.set(name, entry.data as Float32Array);
  optimizer.loadStateTensors(moments, Number(parsed.metadata.optimizerStep ?? 0));
  return { step: Number(parsed.metadata.step ?? 0), trainedSeconds: Number(parsed.metadata.trainedSeconds ?? 0) };
}


/**
 * Removes what a killed writer of `file` left behind: writeFileAtomic's temporaries
 * (`<file>.tmp-<pid>-<random>`) whose process no longer runs.
 */
async function removeStaleTemporaries(file: string): Promise<void> {
  const dir = path.dirname(file);
  const prefix = `${path.basename(file)}.tmp-`;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isRunning(pid)) continue;
    await unlink(path.join(dir, name)).catch(() => undefined);
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
