/**
 * `kernels`: direct access to every native op, forward and backward (for tests, benchmarks and
 * advanced users). Each function writes into output tensors you pass, or allocates them.
 */
export * from './activation';
export * from './attention';
export * from './data';
export * from './linear';
export * from './loss';
export * from './norm';
export * from './optim';
export * from './patch';
export * from './rng';
