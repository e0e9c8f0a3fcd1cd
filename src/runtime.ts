/** Process-wide runtime settings and build facts: threads, SIMD path, CUDA. */
import * as path from 'node:path';
import { getBinding, packageRoot } from './native';
import { ValueError } from './errors';

export type Isa = 'avx2' | 'avx512';
export type MatmulPrecision = 'fp32' | 'bf16';

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
  /** Precision of the matrix products (setMatmulPrecision). */
  matmulPrecision: MatmulPrecision;
  /** Whether this CPU can run the bf16 matmul path (AVX512_BF16). */
  bf16: boolean;
  openmp: boolean;
  threads: number;
  defaultThreads: number;
  cuda: { compiled: boolean; devices: number; status: string };
  node: string;
  platform: string;
}

export function info(): RuntimeInfo {
  const n = getBinding().info();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { version } = require(path.join(packageRoot, 'package.json')) as { version: string };
  return {
    version,
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
    cuda: { compiled: n.cudaCompiled, devices: n.cudaDevices, status: n.cudaStatus },
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
}

/** Sets the number of compute threads used by every kernel (0 = default: all cores or OMP_NUM_THREADS). */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 1024) throw new ValueError(`threads must be an integer in [0, 1024], got ${n}`);
  getBinding().setNumThreads(n);
}

export function getNumThreads(): number {
  return getBinding().getNumThreads();
}

/** Forces a SIMD path (kernels with an AVX-512 variant use it only when set to 'avx512'). */
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
 * Precision of every matrix product (GEMMs, Linear layers, the model's training step), process-wide,
 * like PyTorch's `set_float32_matmul_precision`. 'fp32' (default): float32 products. 'bf16' (opt-in,
 * CPUs with AVX512_BF16 only, else a ValueError): operands rounded to bfloat16, products summed in
 * float32 — about twice the GEMM throughput, at a relative error of ~2^-8 per operand instead of
 * 2^-24 (see `npm run bench -- --bf16`). Bias, activations, norms, losses and the optimizer stay
 * float32. With the AVX2 path forced (setIsa('avx2')) products are float32 whatever this says.
 */
export function setMatmulPrecision(precision: MatmulPrecision): void {
  if (precision !== 'fp32' && precision !== 'bf16') throw new ValueError(`matmul precision must be 'fp32' or 'bf16', got ${String(precision)}`);
  getBinding().setMatmulPrecision(precision);
}

export function getMatmulPrecision(): MatmulPrecision {
  return getBinding().getMatmulPrecision() as MatmulPrecision;
}
