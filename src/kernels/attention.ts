/** Multi-head self-attention core of a timm ViT block (native/ops/attention.h). */
import { Tensor, nativeOf } from '../tensor';
import { kernelsNative, outputLike } from './util';

export interface AttentionForwardOptions {
  /** (B, N, D): the heads' outputs, concatenated. */
  out?: Tensor;
  /** (B, H, N, N): the softmax probabilities, saved for backward. */
  att?: Tensor;
}

export interface AttentionForwardResult {
  out: Tensor;
  att: Tensor;
}

/**
 * Output shapes for qkv (B, N, 3D) and `heads`. An invalid qkv or head count gives empty shapes
 * here, so that the native checks (which name the argument) are the ones that report it.
 */
function attentionShapes(qkv: Tensor, heads: number): { out: number[]; att: number[] } {
  const [B = 0, N = 0, C3 = 0] = qkv.shape.length === 3 ? qkv.shape : [];
  const H = Number.isInteger(heads) && heads > 0 ? heads : 0;
  return { out: [B, N, Math.floor(C3 / 3)], att: [B, H, N, N] };
}

/**
 * Scaled dot-product attention over the fused qkv Linear's output (B, N, 3D), timm layout
 * (reshape(B, N, 3, H, D/H)): att = softmax(q·kᵀ·(D/H)^-0.5) per head, out = att·v with the heads
 * concatenated (B, N, D). Writes `out` and `att` (allocated when omitted) and returns them.
 */
export function attentionForward(qkv: Tensor, heads: number, options: AttentionForwardOptions = {}): AttentionForwardResult {
  const shapes = attentionShapes(qkv, heads);
  const out = outputLike(options.out, shapes.out, qkv);
  const att = outputLike(options.att, shapes.att, qkv);
  kernelsNative().attentionForward(nativeOf(out), nativeOf(att), nativeOf(qkv), heads);
  return { out, att };
}

/** dqkv (B, N, 3D, overwritten) from dout (B, N, D), the forward's qkv and the `att` it returned. */
export function attentionBackward(dout: Tensor, qkv: Tensor, att: Tensor, heads: number, dqkv?: Tensor): Tensor {
  const d = outputLike(dqkv, qkv.shape, qkv);
  kernelsNative().attentionBackward(nativeOf(d), nativeOf(dout), nativeOf(qkv), nativeOf(att), heads);
  return d;
}
