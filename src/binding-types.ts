/** The shape of the compiled addon's exports (native/napi/addon.cc). Internal. */

export type NativeDType = 'float32' | 'int32';

export interface NativeTensorHandle {
  shape(): number[];
  dtype(): NativeDType;
  device(): 'cpu' | 'cuda';
  disposed(): boolean;
  toArray(): Float32Array | Int32Array;
  view(): Float32Array | Int32Array;
  copyFrom(source: Float32Array | Int32Array): void;
  dispose(): void;
}

export interface NativeInfo {
  buildType: string;
  buildSystem: string;
  compiler: string;
  napiVersion: number;
  isa: string;
  bestIsa: string;
  matmulPrecision: string;
  bf16: boolean;
  openmp: boolean;
  threads: number;
  defaultThreads: number;
  cudaCompiled: boolean;
  cudaDevices: number;
  cudaStatus: string;
}

/**
 * Kernel bindings are declared per op family next to their TypeScript wrappers
 * (src/kernels/<family>.ts); here they are an open record.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NativeKernels = Record<string, (...args: any[]) => any>;

export interface NativeBinding {
  NativeTensor: new (...args: never[]) => NativeTensorHandle;
  setErrorClasses(classes: Record<string, unknown>): void;
  tensorFromArray(data: Float32Array | Int32Array, shape: readonly number[]): NativeTensorHandle;
  tensorEmpty(shape: readonly number[], dtype: NativeDType): NativeTensorHandle;
  tensorFull(shape: readonly number[], dtype: NativeDType, value: number): NativeTensorHandle;
  info(): NativeInfo;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  setIsa(isa: string): void;
  getIsa(): string;
  setMatmulPrecision(precision: string): void;
  getMatmulPrecision(): string;
  supportedIsas(): string[];
  kernels: NativeKernels;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  [name: string]: any;
}
