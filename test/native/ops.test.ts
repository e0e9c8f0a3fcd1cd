import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { expect, it } from 'vitest';
import { binaryPath, nativeCases } from './native';

// The backend-parametrised op harness (test/native/ops): every op case on every backend under
// test against float64 references, one vitest case per harness case.
nativeCases('cmae_op_tests');

// The CUDA kernels run here on the SIMT emulator, which needs Boost.Context: without it the harness
// would quietly test the CPU alone, so its absence fails loudly instead.
it('the emulated CUDA backend is under test (every CUDA kernel runs in CI)', () => {
  const binary = binaryPath('cmae_op_tests');
  expect(existsSync(binary), `${binary} was not built`).toBe(true);
  const names = execFileSync(binary, ['--list'], { encoding: 'utf8' });
  for (const schedule of ['forward', 'reverse', 'shuffle']) {
    expect(names.includes(`"cuda-emu-${schedule}/`), `no cuda-emu-${schedule} cases: install Boost.Context (Debian: apt-get install libboost-context-dev) and rerun`).toBe(true);
  }
});
