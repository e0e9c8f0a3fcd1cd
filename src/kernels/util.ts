/** Helpers shared by the kernel wrappers. @internal */
import { getBinding } from '../native';
import type { NativeKernels } from '../binding-types';
import { DType, Tensor } from '../tensor';

export function kernelsNative(): NativeKernels {
  return getBinding().kernels;
}

/** The caller's output tensor, or a new uninitialised one of `shape`. Shape checks happen natively. */
export function outputLike<D extends DType = 'float32'>(out: Tensor | undefined, shape: readonly number[], dtype: D = 'float32' as D): Tensor<D> {
  return (out ?? Tensor.empty(shape, dtype)) as Tensor<D>;
}
