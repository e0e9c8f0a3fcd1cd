/** Datasets (MNIST, IDX, CIFAR-10, image folders), splits, and the prefetching DataLoader. */
export * from './dataset';
export { permutation } from './shuffle';
export { loadMnist } from './mnist';
export { loadIdx, loadFashionMnist, readIdx, parseIdx, encodeIdx, findIdxFiles, DEBIAN_FASHION_MNIST_DIR, FASHION_MNIST_CLASSES, type IdxArray, type IdxFiles, type LoadIdxOptions } from './idx';
export { loadCifar10, parseCifar10Batch, encodeCifar10Batch, CIFAR10_CLASSES } from './cifar';
export { loadImageFolder, IMAGE_EXTENSIONS, MAX_IMAGE_PIXELS, type ImageFolderOptions, type ImageFolderDataset, type CacheStats } from './image-folder';
export { DataLoader, type DataLoaderOptions, type AugmentOptions, type Normalization, type Batch, type BatchTiming, type LoaderStats } from './loader';
