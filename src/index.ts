/** cmae: Contrastive Masked Autoencoders for Node.js. Public API. */
export {
  CmaeError, ShapeError, DTypeError, DeviceError, ValueError, FormatError, IOError, DisposedError, BusyError, AbortError, DistributedError, AddonLoadError,
} from './errors';
export { Tensor, type DType, type Device, type TensorOptions, type TypedArrayFor } from './tensor';
export { CMAE, type CreateOptions, type LossParts, type LossAndGradInput, type EncodeOptions, type FeaturePool, type ParameterInfo, type ImagesInput } from './models/cmae';
export { type ImageSource, type EmbedImagesOptions } from './embed/images';
export { type LoadEncoderOptions, type LoadedEncoder, type ClassifierHead } from './models/foreign';
export { Classifier, softTargets, CLASSIFIER_FORMAT, type ClassifierConfig, type ClassifierOptions } from './models/classifier';
export { methods, presets, resolveConfig, type MethodTraits, type ModelConfig, type PresetName, type Mode } from './models/config';
export { AdamW, type AdamWOptions } from './optim/adamw';
export { DistributedJob, launchedByMpi, type JoinOptions } from './distributed/job';
export { cosineWithWarmup, momentumSchedule, type CosineScheduleOptions } from './optim/schedules';
export {
  readSafetensors, readSafetensorsMetadata, writeSafetensors, parseSafetensors, serializeSafetensors,
  type SafeTensorsFile, type SafeTensorsInput, type SafeTensorEntry, type SafeTensorInput, type SafeTensorDType, type SafeTensorData,
} from './io/safetensors';
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
export type { NativeCudaInfo as CudaInfo, NativeCudaDevice as CudaDevice } from './binding-types';
export type { AddonOrigin } from './native';
export * as kernels from './kernels/index';
export { DataLoader, type Batch, type DataLoaderOptions, type AugmentOptions, type Normalization, type BatchTiming, type LoaderStats } from './data/loader';
export {
  loadMnist, loadIdx, loadFashionMnist, loadCifar10, loadImageFolder, holdoutSplit, subset,
  type Dataset, type InMemoryDataset, type LazyDataset, type DatasetInfo, type HoldoutOptions,
  type IdxFiles, type LoadIdxOptions, type ImageFolderOptions, type ImageFolderDataset, type CacheStats,
} from './data/index';
export {
  finetune, scoreClassifier, finetuneDefaults,
  type FinetuneOptions, type FinetuneResult, type FinetuneEpoch, type FinetuneStep, type ClassifierScores, type LabeledBatchSource,
} from './train/finetune';
export { train, type TrainOptions, type TrainResult, type StepInfo, type BatchSource } from './train/trainer';
export { type MaskSampling } from './train/amt';
export { knnClassify, type KnnOptions, type KnnResult } from './eval/knn';
export { linearProbe, type LinearProbeOptions, type LinearProbeResult } from './eval/linear-probe';
export { encoderFeatures, pixelFeatures, type FeatureOptions } from './eval/evaluate';
export { type LabeledFeatures } from './eval/features';
export { embed, type Embedding, type EmbedOptions, type EmbedProgress, type EmbeddingStream, type SkippedImage } from './embed/embed';
export { writeEmbeddings, formatFloat32, type WriteEmbeddingsOptions, type WrittenEmbeddings } from './embed/writers';
export { NpyWriter } from './io/npy';
export { exportOnnx, encodeOnnx, SUPPORTED_OPSETS, type OnnxExportOptions, type OnnxExportInfo, type OnnxClassifierHead, type ShapedTensor } from './export/onnx';
export { type Dim as OnnxDim } from './export/onnx-proto';
