/** Helpers shared by the kernel wrappers. @internal */
import { getBinding } from '../native';
import type { NativeKernels } from '../binding-types';
import { DType, Tensor } from '../tensor';

export function kernelsNative(): NativeKernels {
  return getBinding().kernels;
}

/**
 * The caller's output tensor, or a new uninitialised one of `shape` on the device of `like` (the
 * call's input, as PyTorch allocates; the CPU when null). Shape and device checks happen natively.
 */
export function outputLike<D extends DType = 'float32'>(out: Tensor | undefined, shape: readonly number[], like: Tensor | null, dtype: D = 'float32' as D): Tensor<D> {
  return (out ?? Tensor.empty(shape, dtype, { device: like?.device ?? 'cpu' })) as Tensor<D>;
}

/** A new zero tensor of `shape` on the device of `like` (gradient accumulators). */
export function zerosLike(shape: readonly number[], like: Tensor): Tensor<'float32'> {
  return Tensor.zeros(shape, 'float32', { device: like.device });
}
