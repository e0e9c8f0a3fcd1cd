/** Element-wise activations (native/ops/activation.h). */
import { Tensor, nativeOf } from '../tensor';
import { kernelsNative, outputLike } from './util';

/** GELU, exact erf form. Writes `out` (allocated when omitted) and returns it. */
export function geluForward(inp: Tensor, out?: Tensor): Tensor {
  const o = outputLike(out, inp.shape, inp);
  kernelsNative().geluForward(nativeOf(o), nativeOf(inp));
  return o;
}

/** dinp = dout · GELU'(inp). */
export function geluBackward(dout: Tensor, inp: Tensor, dinp?: Tensor): Tensor {
  const d = outputLike(dinp, inp.shape, inp);
  kernelsNative().geluBackward(nativeOf(d), nativeOf(dout), nativeOf(inp));
  return d;
}

export function reluForward(inp: Tensor, out?: Tensor): Tensor {
  const o = outputLike(out, inp.shape, inp);
  kernelsNative().reluForward(nativeOf(o), nativeOf(inp));
  return o;
}

/** dinp = dout where the forward output was positive, else 0. */
export function reluBackward(dout: Tensor, out: Tensor, dinp?: Tensor): Tensor {
  const d = outputLike(dinp, out.shape, out);
  kernelsNative().reluBackward(nativeOf(d), nativeOf(dout), nativeOf(out));
  return d;
}
