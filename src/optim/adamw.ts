/**
 * AdamW (decoupled weight decay, torch.optim.AdamW semantics) as fused native passes over the
 * model's trainable arena, with its moments in the model's backend (native/model/optimizer.h).
 * Weight decay applies only to Linear/conv weights (spec §2.10; we also exclude BatchNorm weights,
 * which the CMAE code decays by accident of its name filter). This class owns the defaults; the
 * native side checks every value's range. `layerDecay` < 1 gives fine-tuning's layer-wise
 * learning-rate decay (BEiT, MAE): parameter p learns at lr·layerDecay^(depth + 1 − layer_id(p)),
 * layer ids 0 for the embeddings, i + 1 for block i, depth + 1 for the norm and head
 * (native/model/optimizer.h).
 */
import { getBinding } from '../native';
import type { NativeAdamW } from '../binding-types';
import { ValueError } from '../errors';
import { CMAE } from '../models/cmae';
import { Classifier } from '../models/classifier';
import { describeValue, objectArg } from '../args';

export interface AdamWOptions {
  lr?: number;
  betas?: readonly [number, number];
  eps?: number;
  weightDecay?: number;
  /** Clip the global gradient L2 norm to this value (0 = off, the MAE/CMAE default). */
  maxGradNorm?: number;
  /** Layer-wise learning-rate decay in (0, 1]; 1 (default) = one learning rate for all. */
  layerDecay?: number;
}

/** The defaults of every AdamW in cmae (MAE/CMAE's recipe): the one place they are written. */
export const adamwDefaults = Object.freeze({ lr: 1.5e-4, betas: [0.9, 0.95] as const, eps: 1e-8, weightDecay: 0.05, maxGradNorm: 0, layerDecay: 1 });

export class AdamW {
  readonly model: CMAE | Classifier;
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly maxGradNorm: number;
  readonly layerDecay: number;
  /** Steps taken so far (the t of the bias corrections). */
  stepCount = 0;
  private readonly native: NativeAdamW;

  constructor(model: CMAE | Classifier, options?: AdamWOptions) {
    if (!(model instanceof CMAE || model instanceof Classifier)) throw new ValueError(`model must be a CMAE or a Classifier, got ${describeValue(model)}`);
    const d = adamwDefaults;
    const { lr = d.lr, betas = d.betas, eps = d.eps, weightDecay = d.weightDecay, maxGradNorm = d.maxGradNorm, layerDecay = d.layerDecay } = objectArg(options, 'options', true);
    this.model = model;
    this.lr = lr;
    this.betas = [betas[0], betas[1]];
    this.eps = eps;
    this.weightDecay = weightDecay;
    this.maxGradNorm = maxGradNorm;
    this.layerDecay = layerDecay;
    this.native = new (getBinding().NativeAdamW)(model.native, { lr, beta1: betas[0], beta2: betas[1], eps, weightDecay, maxGradNorm, layerDecay });
  }

  /**
   * One update from the model's current gradients; returns the global gradient norm (before
   * clipping). A non-finite norm (NaN or Inf gradients) skips the update: parameters, moments and
   * the step count stay as they were, and the norm is returned for the caller to report.
   */
  async step(options: { lr?: number } = {}): Promise<number> {
    const step = this.stepCount + 1;
    const norm = await this.native.step(options.lr ?? this.lr, step);
    // A non-finite gradient norm skipped the update natively: the step count stays, so that the
    // bias corrections of the next update are those of an uninterrupted run.
    if (Number.isFinite(norm)) this.stepCount = step;
    return norm;
  }

  /**
   * Moments by parameter name (checkpoints store them as `optimizer.exp_avg.<name>` /
   * `optimizer.exp_avg_sq.<name>`): views of one fresh host copy of each moment, as CMAE.stateDict().
   */
  stateTensors(): Map<string, Float32Array> {
    return this.momentViews(this.native.read('expAvg'), this.native.read('expAvgSq'));
  }

  /** @internal stateTensors(), the copies made on a worker (train()'s checkpoints: a base model's moments are 2 × 0.4 GB). */
  async readStateTensors(): Promise<Map<string, Float32Array>> {
    const m = await this.native.readAsync('expAvg');
    return this.momentViews(m, await this.native.readAsync('expAvgSq'));
  }

  private momentViews(m: Float32Array, v: Float32Array): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const p of this.model.parameters()) {
      if (p.role !== 'trainable') continue;
      out.set(`optimizer.exp_avg.${p.name}`, m.subarray(p.offset, p.offset + p.numel));
      out.set(`optimizer.exp_avg_sq.${p.name}`, v.subarray(p.offset, p.offset + p.numel));
    }
    return out;
  }

  /** Restores moments written by stateTensors() and the step count. */
  loadStateTensors(tensors: Map<string, ArrayLike<number>>, stepCount: number): void {
    const n = this.model.trainableCount;
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    for (const p of this.model.parameters()) {
      if (p.role !== 'trainable') continue;
      const a = tensors.get(`optimizer.exp_avg.${p.name}`);
      const b = tensors.get(`optimizer.exp_avg_sq.${p.name}`);
      if (!a || !b || a.length !== p.numel || b.length !== p.numel) throw new ValueError(`optimizer state for '${p.name}' is missing or has the wrong size`);
      m.set(a, p.offset);
      v.set(b, p.offset);
    }
    this.native.write('expAvg', m);
    this.native.write('expAvgSq', v);
    this.stepCount = stepCount;
  }

  dispose(): void {
    this.native.dispose();
  }
}
