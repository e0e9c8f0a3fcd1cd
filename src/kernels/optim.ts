/** Optimiser steps over flat parameter arenas (native/ops/optim.h; spec §1.8, §2.9, §2.10). */
import { Tensor, nativeOf } from '../tensor';
import { kernelsNative } from './util';
import { adamwDefaults } from '../optim/adamw';

export interface AdamwOptions {
  /** Learning rate of this step. */
  lr: number;
  /** 1-based step number (bias corrections use β^step). */
  step: number;
  /** (β1, β2). Default adamwDefaults.betas. */
  betas?: readonly [number, number];
  /** Default adamwDefaults.eps. */
  eps?: number;
  /** Decoupled weight decay. Default adamwDefaults.weightDecay. */
  weightDecay?: number;
  /** Same shape as params: 1 = decayed, 0 = excluded (biases, norms, tokens). Default: all decayed. */
  decayMask?: Tensor;
  /** Multiplies the gradients (global-norm clipping: min(1, maxNorm / norm)). Default 1. */
  gradScale?: number;
}

/** One torch.optim.AdamW step, in place on params, m (first moment) and v (second moment). */
export function adamwStep(params: Tensor, m: Tensor, v: Tensor, grads: Tensor, options: AdamwOptions): void {
  const { lr, step, betas = adamwDefaults.betas, eps = adamwDefaults.eps, weightDecay = adamwDefaults.weightDecay, decayMask, gradScale = 1 } = options;
  kernelsNative().adamwStep(nativeOf(params), nativeOf(m), nativeOf(v), nativeOf(grads), nativeOf(decayMask) ?? null, lr, betas[0], betas[1], eps, weightDecay, step, gradScale);
}

/** Momentum-encoder update in place: target ← momentum·target + (1 − momentum)·online. */
export function emaUpdate(target: Tensor, online: Tensor, momentum: number): void {
  kernelsNative().emaUpdate(nativeOf(target), nativeOf(online), momentum);
}

/** sqrt(Σ t²), accumulated in double; the same value for any thread count. */
export function globalNorm(t: Tensor): number {
  return kernelsNative().globalNorm(nativeOf(t));
}

/** x *= s, in place. */
export function scaleInplace(x: Tensor, s: number): void {
  kernelsNative().scaleInplace(nativeOf(x), s);
}

/**
 * Global-norm gradient clipping (torch.nn.utils.clip_grad_norm_ semantics): scales grads in place
 * by min(1, maxNorm / (norm + 1e-6)) and returns the norm before clipping.
 */
export function clipGradNorm(grads: Tensor, maxNorm: number): number {
  return kernelsNative().clipGradNorm(nativeOf(grads), maxNorm);
}
