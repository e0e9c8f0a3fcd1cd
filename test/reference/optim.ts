/**
 * Float64 references for native/ops/optim.h, transcribed from PyTorch's single-tensor
 * torch.optim.AdamW (torch/optim/adamw.py, `_single_tensor_adamw`) and the CMAE momentum hook.
 */

export interface AdamwRefState {
  param: Float64Array;
  m: Float64Array; // exp_avg
  v: Float64Array; // exp_avg_sq
}

export interface AdamwRefHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/**
 * One AdamW step at 1-based `step`, in place. Element i belongs to a parameter group with weight
 * decay `weightDecay · decayMask[i]` (PyTorch param groups with wd and with wd 0). The gradient
 * is `gradScale · grad` (what clip_grad_norm_ leaves in .grad).
 */
export function adamwRefStep(s: AdamwRefState, grad: ArrayLike<number>, h: AdamwRefHyper, step: number, decayMask?: ArrayLike<number>, gradScale = 1): void {
  const bc1 = 1 - h.beta1 ** step;
  const bc2 = 1 - h.beta2 ** step;
  const stepSize = h.lr / bc1;
  const bc2Sqrt = Math.sqrt(bc2);
  for (let i = 0; i < s.param.length; i++) {
    const g = gradScale * grad[i];
    const wd = h.weightDecay * (decayMask ? decayMask[i] : 1);
    s.param[i] *= 1 - h.lr * wd; // param.mul_(1 - lr * weight_decay)
    s.m[i] += (g - s.m[i]) * (1 - h.beta1); // exp_avg.lerp_(grad, 1 - beta1)
    s.v[i] = s.v[i] * h.beta2 + (1 - h.beta2) * g * g; // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    const denom = Math.sqrt(s.v[i]) / bc2Sqrt + h.eps; // (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    s.param[i] -= (stepSize * s.m[i]) / denom; // param.addcdiv_(exp_avg, denom, value=-step_size)
  }
}

/** θ_t ← m·θ_t + (1 − m)·θ_o (spec §2.9). */
export function emaRef(target: ArrayLike<number>, online: ArrayLike<number>, momentum: number): Float64Array {
  return Float64Array.from(target, (t, i) => momentum * t + (1 - momentum) * online[i]);
}

/** sqrt(Σ g²) in float64, summed in index order. */
export function globalNormRef(g: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < g.length; i++) s += g[i] * g[i];
  return Math.sqrt(s);
}
