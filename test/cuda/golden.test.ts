// The golden-model suite (test/model/golden.ts) on the emulated CUDA backend, with fp32 matrix
// products: the CUDA model against the PyTorch reference, with the CPU's tolerances.
import './emulated';
import { beforeAll } from 'vitest';
import { setMatmulPrecision } from '../../src/index';
import { describeGolden } from '../model/golden';

beforeAll(() => setMatmulPrecision('fp32', 'cuda'));

describeGolden('cuda');
