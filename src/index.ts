/** cmae: Contrastive Masked Autoencoders for Node.js. Public API. */
export * from './errors';
export { Tensor, type DType, type Device } from './tensor';
export { CMAE, type CreateOptions, type LossParts, type LossAndGradInput, type EncodeOptions, type ParameterInfo } from './models/cmae';
export { presets, resolveConfig, type ModelConfig, type PresetName, type Mode } from './models/config';
export { AdamW, type AdamWOptions } from './optim/adamw';
export { cosineWithWarmup, momentumSchedule } from './optim/schedules';
export { readSafetensors, writeSafetensors, parseSafetensors, serializeSafetensors } from './io/safetensors';
export { info, setNumThreads, getNumThreads, setIsa, getIsa, supportedIsas, type Isa, type RuntimeInfo } from './runtime';
export * as kernels from './kernels/index';
