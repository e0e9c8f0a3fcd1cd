/** cmae: Contrastive Masked Autoencoders for Node.js. Public API. */
export {
  CmaeError, ShapeError, DTypeError, DeviceError, ValueError, FormatError, IOError, DisposedError, BusyError, AbortError, AddonLoadError,
} from './errors';
export { Tensor, type DType, type Device } from './tensor';
export { CMAE, type CreateOptions, type LossParts, type LossAndGradInput, type EncodeOptions, type ParameterInfo } from './models/cmae';
export { type LoadEncoderOptions, type LoadedEncoder, type ClassifierHead } from './models/foreign';
export { Classifier, softTargets, CLASSIFIER_FORMAT, type ClassifierConfig, type ClassifierOptions } from './models/classifier';
export { methods, presets, resolveConfig, type MethodTraits, type ModelConfig, type PresetName, type Mode } from './models/config';
export { AdamW, type AdamWOptions } from './optim/adamw';
export { cosineWithWarmup, momentumSchedule } from './optim/schedules';
export { readSafetensors, readSafetensorsMetadata, writeSafetensors, parseSafetensors, serializeSafetensors } from './io/safetensors';
export {
  info,
  setNumThreads,
  getNumThreads,
  setIsa,
  getIsa,
  supportedIsas,
  setMatmulPrecision,
  getMatmulPrecision,
  nativeMemory,
  type NativeMemory,
  type Isa,
  type MatmulPrecision,
  type RuntimeInfo,
} from './runtime';
export type { AddonOrigin } from './native';
export * as kernels from './kernels/index';
export { DataLoader, type Batch, type DataLoaderOptions, type AugmentOptions, type Normalization } from './data/loader';
export {
  loadMnist, loadIdx, loadFashionMnist, loadCifar10, loadImageFolder, holdoutSplit, subset,
  type Dataset, type InMemoryDataset, type LazyDataset,
} from './data/index';
export { finetune, scoreClassifier, finetuneDefaults, type FinetuneOptions, type FinetuneResult, type FinetuneEpoch, type FinetuneStep } from './train/finetune';
export { train, type TrainOptions, type TrainResult, type StepInfo, type BatchSource } from './train/trainer';
export { knnClassify, type KnnOptions, type KnnResult } from './eval/knn';
export { linearProbe, type LinearProbeOptions, type LinearProbeResult } from './eval/linear-probe';
export { encoderFeatures, pixelFeatures } from './eval/evaluate';
export { embed, type Embedding, type EmbedOptions, type EmbedProgress, type EmbeddingStream, type SkippedImage } from './embed/embed';
export { writeEmbeddings, formatFloat32, type WriteEmbeddingsOptions, type WrittenEmbeddings } from './embed/writers';
export { NpyWriter } from './io/npy';
export { exportOnnx, encodeOnnx, SUPPORTED_OPSETS, type OnnxExportOptions, type OnnxExportInfo, type OnnxClassifierHead, type ShapedTensor } from './export/onnx';
