/** Model configuration and presets (spec §1.5, §2; issue presets). */
import { ValueError } from '../errors';

export type Mode = 'cmae' | 'mae';

export interface ModelConfig {
  /** 'cmae' (default): online + momentum branches; 'mae': encoder + pixel decoder only. */
  mode: Mode;
  imageSize: number;
  channels: 1 | 3;
  patchSize: number;
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  decoderDim: number;
  decoderDepth: number;
  decoderHeads: number;
  featureDecoderDim: number;
  featureDecoderDepth: number;
  featureDecoderHeads: number;
  projectorHidden: number;
  projectorDim: number;
  /** Fraction of patches removed (rounded down to whole groups, as the reference code does). */
  maskRatio: number;
  /** 1 = MAE per-patch masking, 2 = CMAE's 2×2 groups. */
  maskGroup: number;
  /** InfoNCE temperature τ. */
  tau: number;
  ctWeight: number;
  rcWeight: number;
  normPixLoss: boolean;
  bnEps: number;
  bnMomentum: number;
}

const common = {
  mode: 'cmae' as Mode,
  mlpRatio: 4,
  maskRatio: 0.65,
  maskGroup: 2,
  tau: 0.07,
  ctWeight: 1,
  rcWeight: 1,
  normPixLoss: true,
  bnEps: 1e-6,
  bnMomentum: 0.1,
};

export const presets = {
  /** The golden-test configuration (test/fixtures): 16×16, patch 4, D 32, depth 2. */
  micro: {
    ...common, imageSize: 16, channels: 3, patchSize: 4, dim: 32, depth: 2, heads: 2,
    decoderDim: 24, decoderDepth: 1, decoderHeads: 2, featureDecoderDim: 24, featureDecoderDepth: 1, featureDecoderHeads: 2,
    projectorHidden: 64, projectorDim: 16,
  },
  /** CPU-friendly: 32×32, patch 4, D 128, depth 6 — learns MNIST-like data in minutes on 2 cores. */
  nano: {
    ...common, imageSize: 32, channels: 1, patchSize: 4, dim: 128, depth: 6, heads: 4,
    decoderDim: 96, decoderDepth: 2, decoderHeads: 4, featureDecoderDim: 96, featureDecoderDepth: 1, featureDecoderHeads: 4,
    projectorHidden: 256, projectorDim: 64,
  },
  /** ViT-Tiny on 32×32 (64 patches): D 192, depth 12, heads 3; decoders 128 wide. */
  tiny: {
    ...common, imageSize: 32, channels: 3, patchSize: 4, dim: 192, depth: 12, heads: 3,
    decoderDim: 128, decoderDepth: 4, decoderHeads: 4, featureDecoderDim: 128, featureDecoderDepth: 2, featureDecoderHeads: 4,
    projectorHidden: 512, projectorDim: 128,
  },
  /** ViT-S/16 at 224: D 384, depth 12, heads 6; decoders 256 wide. */
  small: {
    ...common, imageSize: 224, channels: 3, patchSize: 16, dim: 384, depth: 12, heads: 6,
    decoderDim: 256, decoderDepth: 4, decoderHeads: 8, featureDecoderDim: 256, featureDecoderDepth: 2, featureDecoderHeads: 8,
    projectorHidden: 1536, projectorDim: 256,
  },
  /** ViT-B/16 exactly as the CMAE paper's configuration (spec §2.13). */
  base: {
    ...common, imageSize: 224, channels: 3, patchSize: 16, dim: 768, depth: 12, heads: 12,
    decoderDim: 512, decoderDepth: 8, decoderHeads: 16, featureDecoderDim: 512, featureDecoderDepth: 2, featureDecoderHeads: 16,
    projectorHidden: 1536, projectorDim: 256,
  },
} satisfies Record<string, ModelConfig>;

export type PresetName = keyof typeof presets;

/** A full config from a preset name plus overrides. Unknown keys are rejected. */
export function resolveConfig(preset: PresetName | undefined, overrides: Partial<ModelConfig> = {}): ModelConfig {
  const name = preset ?? 'tiny';
  const base = (presets as Record<string, ModelConfig>)[name];
  if (!base) throw new ValueError(`unknown preset '${name}' (expected one of ${Object.keys(presets).join(', ')})`);
  for (const key of Object.keys(overrides)) {
    if (!(key in base)) throw new ValueError(`unknown model option '${key}'`);
  }
  const config = { ...base, ...stripUndefined(overrides) } as ModelConfig;
  if (config.mode !== 'cmae' && config.mode !== 'mae') throw new ValueError(`mode must be 'cmae' or 'mae', got '${config.mode}'`);
  return config;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
