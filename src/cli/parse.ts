import type { MaskSampling } from '../train/amt';
import { UsageError } from './errors';
import { info, type MatmulPrecision } from '../runtime';
import type { Device } from '../tensor';
import type { FeaturePool } from '../models/cmae';

export function parsePositiveInt(value: string, flag: string, allowZero = false): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1)) throw new UsageError(`${flag} must be a ${allowZero ? 'non-negative' : 'positive'} integer, got '${value}'`);
  return n;
}

/** --pool of eval, embed and export: cls | mean | avg, or undefined (the checkpoint's own, CMAE.featurePool). */
export function parseFeaturePool(value: string | undefined): FeaturePool | undefined {
  if (value === undefined) return undefined;
  if (value !== 'cls' && value !== 'mean' && value !== 'avg') throw new UsageError(`--pool must be cls, mean or avg, got '${value}'`);
  return value;
}

export function parseNumberOption(value: string, flag: string, min = -Infinity, max = Infinity): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > max) throw new UsageError(`${flag} must be a number in [${min}, ${max}], got '${value}'`);
  return n;
}

/**
 * --device: 'cpu', 'cuda' or 'cuda:N', checked against the devices this build can use, so that a
 * missing GPU is one clear line at start-up rather than an error after the data has loaded.
 */
export function parseDevice(value: string): Device {
  const match = /^(cpu|cuda)(?::(\d+))?$/.exec(value);
  if (!match || (match[1] === 'cpu' && match[2] !== undefined)) throw new UsageError(`--device must be cpu, cuda or cuda:N, got '${value}'`);
  if (match[1] === 'cpu') return 'cpu';
  const cuda = info().cuda;
  const index = match[2] === undefined ? 0 : Number(match[2]);
  if (cuda.devices.length === 0) throw new UsageError(`--device ${value}: no CUDA device is usable (${cuda.status})`);
  if (index >= cuda.devices.length) throw new UsageError(`--device ${value}: this machine has ${cuda.devices.length} CUDA device(s), cuda:0 to cuda:${cuda.devices.length - 1}`);
  return `cuda:${index}`;
}

/**
 * --matmul-precision for a device: fp32 everywhere; bf16 on CPUs with AVX512_BF16 and on CUDA
 * devices of compute capability 8.0 or more; tf32 on those CUDA devices only.
 */
export function parseMatmulPrecision(value: string, device: Device): MatmulPrecision {
  if (value !== 'fp32' && value !== 'tf32' && value !== 'bf16') throw new UsageError(`--matmul-precision must be fp32, tf32 or bf16, got '${value}'`);
  if (value === 'fp32') return value;
  if (device === 'cpu') {
    if (value === 'tf32') throw new UsageError('--matmul-precision tf32 is for CUDA devices (tensor cores); the CPU runs fp32 or bf16');
    if (!info().bf16) throw new UsageError('--matmul-precision bf16 needs a CPU with AVX512_BF16; this one has not');
    return value;
  }
  const index = device === 'cuda' ? 0 : Number(device.slice(5));
  const capability = info().cuda.devices[index]?.computeCapability ?? '0.0';
  if (Number(capability.split('.')[0]) < 8) throw new UsageError(`--matmul-precision ${value} needs tensor cores of compute capability 8.0 or more; ${device} has ${capability}`);
  return value;
}

/** Keys of the model configuration that have their own flag (--method, --mask-ratio, --masking; channels follow the data). */
const MODEL_KEYS_WITH_FLAGS: Record<string, string> = { mode: '--method', maskRatio: '--mask-ratio', maskGroup: '--masking', channels: 'the data' };

/**
 * --masking: which patches a mask removes — per patch ('random', MAE's), in 2×2 groups ('group',
 * CMAE's), or per patch drawn by the encoder's cls attention ('amt', src/train/amt.ts).
 */
export const MASKING: Readonly<Record<string, { maskGroup: number; maskSampling: MaskSampling }>> = {
  random: { maskGroup: 1, maskSampling: 'uniform' },
  group: { maskGroup: 2, maskSampling: 'uniform' },
  amt: { maskGroup: 1, maskSampling: 'attention' },
};

/**
 * --model k=v,k=v: overrides of model configuration fields (src/models/config.ts ModelConfig),
 * numbers or true/false, e.g. "tau=0.2,featureDecoderDepth=1". Unknown keys and keys that have
 * their own flag are usage errors; the values are checked where the config is (CMAE.create).
 */
export function parseModelOverrides(value: string, knownKeys: readonly string[]): Record<string, number | boolean> {
  const out: Record<string, number | boolean> = {};
  for (const item of value.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--model takes key=value pairs separated by commas, got '${item}'`);
    const key = item.slice(0, eq).trim();
    const raw = item.slice(eq + 1).trim();
    if (key in MODEL_KEYS_WITH_FLAGS) throw new UsageError(`--model ${key}: set it with ${MODEL_KEYS_WITH_FLAGS[key]}`);
    if (!knownKeys.includes(key)) throw new UsageError(`--model: unknown key '${key}' (expected one of ${knownKeys.filter((k) => !(k in MODEL_KEYS_WITH_FLAGS)).join(', ')})`);
    if (raw === 'true' || raw === 'false') out[key] = raw === 'true';
    else if (raw !== '' && Number.isFinite(Number(raw))) out[key] = Number(raw);
    else throw new UsageError(`--model ${key}: expected a number or true/false, got '${raw}'`);
  }
  return out;
}
