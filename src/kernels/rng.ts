/** Counter-based Philox-4x32-10 draws, identical to what native code uses (native/core/rng.h). */
import { Tensor, nativeOf } from '../tensor';
import { kernelsNative, outputLike } from './util';

/** out[i] = uniform [0,1) draw for (seed, stream, offset + i). */
export function philoxUniform(shape: readonly number[], seed: number, stream: number, offset = 0, out?: Tensor): Tensor {
  const o = outputLike(out, shape, null);
  kernelsNative().philoxUniform(nativeOf(o), seed, stream, offset);
  return o;
}

/** The four 32-bit words of the Philox block (seed, stream, index). */
export function philoxWords(seed: number, stream: number, index: number): [number, number, number, number] {
  return kernelsNative().philoxWords(seed, stream, index);
}
