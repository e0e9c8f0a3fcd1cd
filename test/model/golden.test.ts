// The golden-model suite (golden.ts) on the CPU backend.
import { describeGolden } from './golden';

describeGolden('cpu');
