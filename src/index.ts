/** cmae: Contrastive Masked Autoencoders for Node.js. Public API. */
export * from './errors';
export { Tensor, type DType, type Device } from './tensor';
export { info, setNumThreads, getNumThreads, setIsa, getIsa, supportedIsas, type Isa, type RuntimeInfo } from './runtime';
export * as kernels from './kernels/index';
