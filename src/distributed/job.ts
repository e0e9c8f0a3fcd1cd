/**
 * Data-parallel jobs (issue 16): a DistributedJob is this process's membership of a job launched
 * by an MPI launcher (`mpirun -np N …`, or `cmae launch`). The exchanges run in the native
 * collective plugin (native/collective/mpi_plugin.cc, cmae_mpi.so beside the addon), loaded only when a
 * job is joined: a single-process program never needs MPI.
 *
 * What a job does to training is in CmaeModel::set_collective (native/model/cmae_model.h) and the
 * trainer (src/train/trainer.ts): every rank feeds the same global batch, computes its share of the
 * samples, and holds the same parameters after every step.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { DistributedError, ValueError } from '../errors';
import { describeValue } from '../args';
import { addonOrigin, getBinding } from '../native';
import type { NativeCollective } from '../binding-types';

export interface JoinOptions {
  /**
   * Seconds a rank waits for the others at any exchange before the job stops with a
   * DistributedError naming the ranks that did not arrive (default 300: longer than any step or
   * checkpoint write should take).
   */
  timeoutSeconds?: number;
  /** Size of the gradient all-reduce's buckets in MiB (default 25, PyTorch DDP's); 0 = one bucket. */
  bucketMiB?: number;
  /** The collective engine plugin (default: CMAE_COLLECTIVE_PLUGIN, else cmae_mpi.so beside the addon). */
  plugin?: string;
}

export const DEFAULT_TIMEOUT_SECONDS = 300;
export const DEFAULT_BUCKET_MIB = 25;

/** Whether this process was started by an MPI launcher (Open MPI, MPICH/Hydra, PMIx, Slurm's srun with PMI). */
export function launchedByMpi(env: NodeJS.ProcessEnv = process.env): boolean {
  return ['OMPI_COMM_WORLD_SIZE', 'PMI_SIZE', 'PMIX_RANK', 'MPI_LOCALNRANKS'].some((k) => env[k] !== undefined);
}

/** Where the MPI plugin of the loaded addon is (it is built into the same folder). */
export function defaultPluginPath(): string {
  if (process.env.CMAE_COLLECTIVE_PLUGIN) return path.resolve(process.env.CMAE_COLLECTIVE_PLUGIN);
  return path.join(path.dirname(addonOrigin().path), 'cmae_mpi.so');
}

export class DistributedJob {
  /** @internal */
  readonly native: NativeCollective;
  readonly rank: number;
  readonly worldSize: number;
  /** The collective engine, e.g. "Open MPI v4.1.4", or "Open MPI v4.1.4 + NCCL 2.23.4 (device buffers)" where CUDA ranks exchange device memory over NCCL. */
  readonly engine: string;
  private left = false;

  private constructor(native: NativeCollective) {
    this.native = native;
    this.rank = native.rank;
    this.worldSize = native.worldSize;
    this.engine = native.engine;
  }

  /**
   * Joins the job this process was launched in (MPI_Init). A process started without a launcher
   * joins a job of one rank.
   */
  static async join(options: JoinOptions = {}): Promise<DistributedJob> {
    if (typeof options !== 'object' || options === null) throw new ValueError(`options must be an object, got ${describeValue(options)}`);
    const timeout = options.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
    if (typeof timeout !== 'number' || !(timeout > 0) || !Number.isFinite(timeout)) {
      throw new ValueError(`timeoutSeconds must be a positive number of seconds, got ${describeValue(timeout)}`);
    }
    const bucketMiB = options.bucketMiB ?? DEFAULT_BUCKET_MIB;
    if (typeof bucketMiB !== 'number' || !(bucketMiB >= 0) || !Number.isFinite(bucketMiB)) {
      throw new ValueError(`bucketMiB must be a non-negative number, got ${describeValue(bucketMiB)}`);
    }
    const plugin = options.plugin ?? defaultPluginPath();
    if (typeof plugin !== 'string') throw new ValueError(`plugin must be a path, got ${describeValue(plugin)}`);
    if (!existsSync(plugin)) {
      throw new DistributedError(
        `no collective engine plugin at ${plugin}: cmae builds cmae_mpi.so only where CMake finds an MPI ` +
          '(Debian/Ubuntu: apt install libopenmpi-dev openmpi-bin, then npm rebuild cmae)',
      );
    }
    const bucketFloats = Math.floor((bucketMiB * 1024 * 1024) / 4);
    return new DistributedJob(await getBinding().openCollective(plugin, timeout, bucketFloats));
  }

  /** Rank 0 writes checkpoints and metrics and reports progress. */
  get isRoot(): boolean {
    return this.rank === 0;
  }

  /** Every rank's bytes (the same length on each), rank 0's first. */
  async allgather(bytes: Uint8Array): Promise<Uint8Array[]> {
    const all = await this.native.allgatherBytes(bytes);
    return Array.from({ length: this.worldSize }, (_, r) => all.subarray(r * bytes.length, (r + 1) * bytes.length));
  }

  /**
   * Checks that every rank has the same `record` (configuration, code version, data): a
   * DistributedError naming each rank and field that differs from rank 0's.
   */
  async agree(record: Record<string, string>, what = 'the run'): Promise<void> {
    const mine = new TextEncoder().encode(JSON.stringify(record));
    const lengths = await this.allgather(new Uint8Array(new Uint32Array([mine.length]).buffer));
    const longest = Math.max(...lengths.map((b) => new Uint32Array(b.slice().buffer)[0]!));
    const padded = new Uint8Array(longest);
    padded.set(mine);
    const records = (await this.allgather(padded)).map((b, r) => {
      const n = new Uint32Array(lengths[r]!.slice().buffer)[0]!;
      return JSON.parse(new TextDecoder().decode(b.subarray(0, n))) as Record<string, string>;
    });
    const root = records[0]!;
    const differences: string[] = [];
    records.forEach((rec, r) => {
      if (r === 0) return;
      const keys = [...new Set([...Object.keys(root), ...Object.keys(rec)])];
      for (const k of keys) {
        if (root[k] !== rec[k]) differences.push(`rank ${r} has ${k} ${JSON.stringify(rec[k])} where rank 0 has ${JSON.stringify(root[k])}`);
      }
    });
    if (differences.length > 0) throw new DistributedError(`the ranks disagree on ${what}: ${differences.join('; ')}`);
  }

  /**
   * The trainer's per-step agreement (every rank calls it at the same point): whether any rank
   * asks to stop, and rank 0's clock, which every rank's time budget and schedules then follow.
   */
  async stepControl(stop: boolean, seconds: number): Promise<{ stop: boolean; seconds: number }> {
    const all = await this.allgather(new Uint8Array(new Float64Array([stop ? 1 : 0, seconds]).buffer));
    const values = all.map((b) => new Float64Array(b.slice().buffer));
    return { stop: values.some((v) => v[0] === 1), seconds: values[0]![1]! };
  }

  /** Ends every rank of the job now (MPI_Abort) with exit status `code`. */
  abort(code = 1): never {
    return this.native.abortJob(code);
  }

  /** Leaves the job; MPI waits until every rank has left. Idempotent. */
  async leave(): Promise<void> {
    if (this.left) return;
    this.left = true;
    await this.native.finalize();
  }
}
