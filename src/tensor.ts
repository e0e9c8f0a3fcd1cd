/**
 * Tensor: contiguous, 64-byte aligned native memory with a shape, a dtype and a device ('cpu', or
 * 'cuda' / 'cuda:N' where a CUDA backend is compiled in). Float32 values and int32 indices. Data
 * crosses devices only explicitly: `to(device)`, `toArray()` (a host copy from any device), and
 * `view()` (zero-copy, CPU only).
 */
import { getBinding } from './native';
import type { NativeTensorHandle } from './binding-types';
import { DTypeError, DisposedError, ShapeError, ValueError } from './errors';

export type DType = 'float32' | 'int32';
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;
export type TypedArrayFor<D extends DType> = D extends 'float32' ? Float32Array : Int32Array;

function checkShape(shape: readonly number[], what = 'shape'): number {
  if (!Array.isArray(shape)) throw new ShapeError(`${what} must be an array of dimensions, got ${typeof shape}`);
  let n = 1;
  shape.forEach((d, i) => {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`${what}[${i}] must be a non-negative integer, got ${d}`);
    n *= d;
  });
  return n;
}

// Releases native memory if the user forgets dispose(); dispose() is still the way to free early.
const finalizer = new FinalizationRegistry<NativeTensorHandle>((handle) => {
  if (!handle.disposed()) handle.dispose();
});

export interface TensorOptions {
  /** 'cpu' (default), 'cuda' or 'cuda:N'. */
  device?: Device;
}

export class Tensor<D extends DType = DType> {
  /** @internal */
  readonly handle: NativeTensorHandle;
  readonly shape: readonly number[];
  readonly dtype: D;
  readonly device: Device;
  private isDisposed = false;

  /** @internal Wraps a native handle; use the static constructors. */
  constructor(handle: NativeTensorHandle) {
    this.handle = handle;
    this.shape = Object.freeze(handle.shape());
    this.dtype = handle.dtype() as D;
    this.device = handle.device();
    finalizer.register(this, handle, this);
  }

  /** Copies `data` into a new tensor of the given shape (Float32Array → float32, Int32Array → int32), on `device` (default 'cpu'). */
  static from(data: Float32Array, shape: readonly number[], options?: TensorOptions): Tensor<'float32'>;
  static from(data: Int32Array, shape: readonly number[], options?: TensorOptions): Tensor<'int32'>;
  static from(data: Float32Array | Int32Array, shape: readonly number[], options: TensorOptions = {}): Tensor {
    if (!(data instanceof Float32Array) && !(data instanceof Int32Array)) {
      throw new DTypeError('data must be a Float32Array (float32) or an Int32Array (int32)');
    }
    const n = checkShape(shape);
    if (n !== data.length) {
      throw new ShapeError(`data has ${data.length} elements but shape [${shape.join(', ')}] needs ${n}`);
    }
    return new Tensor(getBinding().tensorFromArray(data, shape, options.device));
  }

  /** A tensor with uninitialised contents. */
  static empty<D extends DType = 'float32'>(shape: readonly number[], dtype: D = 'float32' as D, options: TensorOptions = {}): Tensor<D> {
    checkShape(shape);
    checkDType(dtype);
    return new Tensor<D>(getBinding().tensorEmpty(shape, dtype, options.device));
  }

  /** A tensor with every element set to `value` (NaN allowed: tests use it to catch unwritten outputs). */
  static full<D extends DType = 'float32'>(shape: readonly number[], value: number, dtype: D = 'float32' as D, options: TensorOptions = {}): Tensor<D> {
    checkShape(shape);
    checkDType(dtype);
    return new Tensor<D>(getBinding().tensorFull(shape, dtype, value, options.device));
  }

  static zeros<D extends DType = 'float32'>(shape: readonly number[], dtype: D = 'float32' as D, options: TensorOptions = {}): Tensor<D> {
    return Tensor.full(shape, 0, dtype, options);
  }

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  get disposed(): boolean {
    return this.isDisposed;
  }

  /** A copy of this tensor on `device` (a new tensor; this one is unchanged). */
  to(device: Device): Tensor<D> {
    this.assertAlive();
    return new Tensor<D>(this.handle.to(device));
  }

  /** A host copy of the contents (from any device). */
  toArray(): TypedArrayFor<D> {
    this.assertAlive();
    return this.handle.toArray() as TypedArrayFor<D>;
  }

  /**
   * A zero-copy view of the contents of a CPU tensor. It stays valid after dispose() (it holds the
   * memory), and writes through it change the tensor. Throws DeviceError on another device, or
   * where the runtime forbids external buffers (Electron); use toArray() there.
   */
  view(): TypedArrayFor<D> {
    this.assertAlive();
    return this.handle.view() as TypedArrayFor<D>;
  }

  /** Overwrites the contents from a TypedArray of the same dtype and length. */
  copyFrom(source: TypedArrayFor<D>): void {
    this.assertAlive();
    this.handle.copyFrom(source);
  }

  /** Frees the native memory now (views taken earlier keep their own reference). Idempotent. */
  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    finalizer.unregister(this);
    this.handle.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device}${this.isDisposed ? ', disposed' : ''})`;
  }

  private assertAlive(): void {
    if (this.isDisposed) throw new DisposedError('tensor was disposed and can no longer be used');
  }
}

function checkDType(dtype: string): void {
  if (dtype !== 'float32' && dtype !== 'int32') {
    throw new DTypeError(`unsupported dtype '${dtype}' (expected 'float32' or 'int32')`);
  }
}

/** Accepts a Tensor or plain data; used by APIs that take either. */
export function asTensor(value: Tensor | Float32Array, shape: readonly number[], name: string): Tensor<'float32'> {
  if (value instanceof Tensor) {
    if (value.dtype !== 'float32') throw new DTypeError(`${name} must be float32, got ${value.dtype}`);
    const expected = shape.join(',');
    if (value.shape.join(',') !== expected) {
      throw new ShapeError(`${name} must have shape [${shape.join(', ')}], got [${value.shape.join(', ')}]`);
    }
    return value as Tensor<'float32'>;
  }
  if (value instanceof Float32Array) return Tensor.from(value, shape);
  throw new ValueError(`${name} must be a Tensor or a Float32Array`);
}

/** Unwraps the native handle of a tensor argument (for kernel wrappers); absent stays absent. @internal */
export function nativeOf(tensor: Tensor): NativeTensorHandle;
export function nativeOf(tensor: Tensor | undefined | null): NativeTensorHandle | undefined;
export function nativeOf(tensor: Tensor | undefined | null): NativeTensorHandle | undefined {
  if (tensor === undefined || tensor === null) return undefined;
  if (!(tensor instanceof Tensor)) throw new ValueError('expected a Tensor');
  if (tensor.disposed) throw new DisposedError('tensor was disposed and can no longer be used');
  return tensor.handle;
}
