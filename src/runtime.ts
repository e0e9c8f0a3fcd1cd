/** Process-wide runtime settings and build facts: threads, SIMD path, CUDA. */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { addonOrigin, getBinding, packageRoot, type AddonOrigin } from './native';
import { defaultPluginPath, launchedByMpi } from './distributed/job';
import { ValueError } from './errors';
import type { NativeCudaInfo } from './binding-types';
import type { Device } from './tensor';

/** The CPU kernel paths: 'portable' (any CPU, the only one off x86-64), 'avx2' (AVX2 + FMA), 'avx512'. */
export type Isa = 'portable' | 'avx2' | 'avx512';
export type MatmulPrecision = 'fp32' | 'bf16' | 'tf32';

export interface RuntimeInfo {
  /** cmae package version. */
  version: string;
  buildType: string;
  buildSystem: string;
  compiler: string;
  napiVersion: number;
  /** SIMD path in use for kernels that have several. */
  isa: Isa;
  /** Best SIMD path this CPU supports. */
  bestIsa: Isa;
  /** Precision of the CPU's matrix products (setMatmulPrecision). */
  matmulPrecision: MatmulPrecision;
  /** Whether this CPU can run the bf16 matmul path (AVX512_BF16). */
  bf16: boolean;
  openmp: boolean;
  threads: number;
  defaultThreads: number;
  /**
   * The CUDA backend: whether this build carries it (and which: 'gpu', the nvcc build; 'emulated',
   * the SIMT emulator of test builds), why no device is usable if none is, and each device (name,
   * compute capability, memory). Its matrix products are cmae's own kernels (mma.sync tensor cores
   * for tf32/bf16, SIMT fp32).
   */
  cuda: NativeCudaInfo;
  node: string;
  platform: string;
  /** The addon in use: from CMAE_ADDON_PATH, a local build (build/Release) or the prebuilt platform package, and its file. */
  addon: AddonOrigin;
  /**
   * Data-parallel training (DistributedJob): the collective engine plugin this addon would load
   * (null when the build found no MPI) and whether an MPI launcher started this process.
   */
  distributed: { plugin: string | null; launchedByMpi: boolean };
}

/** The cmae package's version (its package.json's), without loading the addon. */
export function packageVersion(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require(path.join(packageRoot, 'package.json')) as { version: string }).version;
}

export function info(): RuntimeInfo {
  const n = getBinding().info();
  return {
    version: packageVersion(),
    buildType: n.buildType,
    buildSystem: n.buildSystem,
    compiler: n.compiler,
    napiVersion: n.napiVersion,
    isa: n.isa as Isa,
    bestIsa: n.bestIsa as Isa,
    matmulPrecision: n.matmulPrecision as MatmulPrecision,
    bf16: n.bf16,
    openmp: n.openmp,
    threads: n.threads,
    defaultThreads: n.defaultThreads,
    cuda: n.cuda,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    addon: addonOrigin(),
    distributed: { plugin: existsSync(defaultPluginPath()) ? defaultPluginPath() : null, launchedByMpi: launchedByMpi() },
  };
}

export interface NativeMemory {
  /**
   * Bytes of native memory cmae has reported to V8 (tensors, models, optimizers alive in JS), so
   * that the garbage collector runs sooner when handles hold much of it. process.memoryUsage()
   * does not include this figure.
   */
  reportedBytes: number;
  /** Bytes the CPU backend holds for tensors, parameter arenas and workspaces (CPU devices only). */
  cpuAllocatedBytes: number;
  /** Bytes of CPU kernel working memory kept between calls (per compute thread, grows to the largest use). */
  cpuScratchBytes: number;
}

/** Native memory in use now, for monitoring a long-lived process and for leak checks. */
export function nativeMemory(): NativeMemory {
  const m = getBinding().nativeMemory();
  return { reportedBytes: m.reported, cpuAllocatedBytes: m.cpuAllocated, cpuScratchBytes: m.cpuScratch };
}

/** Sets the number of compute threads used by every kernel (0 = default: all cores or OMP_NUM_THREADS). */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 1024) throw new ValueError(`threads must be an integer in [0, 1024], got ${n}`);
  getBinding().setNumThreads(n);
}

export function getNumThreads(): number {
  return getBinding().getNumThreads();
}

/**
 * Forces a SIMD path: 'portable' runs every CPU kernel as compiled without AVX2, 'avx2' with AVX2 +
 * FMA, 'avx512' adds the AVX-512 variants of the kernels that have one.
 */
export function setIsa(isa: Isa): void {
  getBinding().setIsa(isa);
}

export function getIsa(): Isa {
  return getBinding().getIsa() as Isa;
}

export function supportedIsas(): Isa[] {
  return getBinding().supportedIsas() as Isa[];
}

/**
 * Precision of every matrix product of one device (GEMMs, Linear layers, the model's training step),
 * like PyTorch's `set_float32_matmul_precision`; the CPU when `device` is omitted. 'fp32': float32
 * products (the CPU's default). 'tf32' (CUDA tensor cores, compute capability >= 8.0, the GPU's
 * default as PyTorch's "high"): operands rounded to a 10-bit mantissa, float32 sums. 'bf16' (CPUs with
 * AVX512_BF16, or CUDA tensor cores): operands rounded to bfloat16, float32 sums — about twice the
 * GEMM throughput, at a relative error of ~2^-8 per operand instead of 2^-24 (see `npm run bench --
 * --bf16`). Bias, activations, norms, losses and the optimizer stay float32. A precision a device
 * cannot run is a ValueError. With the CPU's AVX2 path forced (setIsa('avx2')) CPU products are
 * float32 whatever this says.
 */
export function setMatmulPrecision(precision: MatmulPrecision, device?: Device): void {
  if (precision !== 'fp32' && precision !== 'bf16' && precision !== 'tf32') {
    throw new ValueError(`matmul precision must be 'fp32', 'tf32' or 'bf16', got ${String(precision)}`);
  }
  getBinding().setMatmulPrecision(precision, device);
}

export function getMatmulPrecision(device?: Device): MatmulPrecision {
  return getBinding().getMatmulPrecision(device) as MatmulPrecision;
}
