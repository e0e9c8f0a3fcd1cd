// The classifier's PyTorch-reference suite (test/model/classifier-golden.ts) on the emulated CUDA
// backend, with fp32 matrix products: fine-tuning, drop path included, through the CUDA kernels.
import './emulated';
import { beforeAll } from 'vitest';
import { setMatmulPrecision } from '../../src/index';
import { describeClassifierGolden } from '../model/classifier-golden';

beforeAll(() => setMatmulPrecision('fp32', 'cuda'));

describeClassifierGolden('cuda');
