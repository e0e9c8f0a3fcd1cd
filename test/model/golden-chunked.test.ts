// The golden-model suite (golden.ts) on the CPU backend with the per-sample passes cut into chunks
// of a few rows (CMAE_CHUNK_ROWS, read once when the addon loads: it loads lazily, on first use,
// after this line). The fixtures' batches are small, so the default of 512 rows runs each part in
// one chunk; 20 rows makes every part of every fixture run in chunks of one or two samples, so the
// chunked pixel decoder and momentum branch (and the way their losses add up) meet the same
// PyTorch reference.
process.env.CMAE_CHUNK_ROWS = '20';
import { describeGolden } from './golden';

describeGolden('cpu');
