/** Per-step schedules (spec §1.8, §2.9, §2.10). Pure functions of the step; no state. */
import { ValueError } from '../errors';

export interface CosineScheduleOptions {
  /** Peak learning rate (reached at the end of warmup). */
  baseLr: number;
  /** Final learning rate of the cosine. Default 0. */
  minLr?: number;
  warmupSteps: number;
  totalSteps: number;
  /** Warmup starts at warmupStartFactor·baseLr: 0 for MAE (spec §1.8), 1e-4 for CMAE (§2.10). Default 0. */
  warmupStartFactor?: number;
}

/** Linear warmup then half-cosine decay, evaluated per step (k = 0 … totalSteps − 1). */
export function cosineWithWarmup(options: CosineScheduleOptions): (step: number) => number {
  const { baseLr, minLr = 0, warmupSteps, totalSteps, warmupStartFactor = 0 } = options;
  if (!(baseLr >= 0) || !(minLr >= 0)) throw new ValueError('baseLr and minLr must be non-negative');
  if (!Number.isInteger(totalSteps) || totalSteps < 1) throw new ValueError(`totalSteps must be a positive integer, got ${totalSteps}`);
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0 || warmupSteps > totalSteps) {
    throw new ValueError(`warmupSteps must be an integer in [0, totalSteps], got ${warmupSteps}`);
  }
  return (step: number) => {
    if (step < warmupSteps) {
      const start = baseLr * warmupStartFactor;
      return start + (baseLr - start) * (step / warmupSteps);
    }
    const span = Math.max(1, totalSteps - warmupSteps);
    const progress = Math.min(1, (step - warmupSteps) / span);
    return minLr + (baseLr - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}

/** Momentum m(k) = m_end − (m_end − m_base)·(cos(πk/K) + 1)/2 (spec §2.9). m_base = m_end gives a constant. */
export function momentumSchedule(mBase: number, mEnd: number, totalSteps: number): (step: number) => number {
  if (!(mBase >= 0 && mBase <= 1 && mEnd >= 0 && mEnd <= 1)) throw new ValueError('momentum values must be in [0, 1]');
  if (!(totalSteps >= 1)) throw new ValueError('totalSteps must be at least 1');
  return (step: number) => mEnd - (mEnd - mBase) * (Math.cos((Math.PI * Math.min(step, totalSteps)) / totalSteps) + 1) / 2;
}
