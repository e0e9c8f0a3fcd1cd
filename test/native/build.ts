/**
 * Vitest global setup: builds the native test executables (test/native/CMakeLists.txt) once per
 * `npm test`, with plain CMake into build-tests/ (incremental: a rebuild with nothing changed takes
 * a second). Test files then run them through test/native/native.ts.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

export const root = path.resolve(__dirname, '..', '..');
export const buildDir = path.join(root, 'build-tests');

export default function setup(): void {
  // The emulated CUDA backend is always built (it needs no nvcc). nvcc's own build of cuda/ is the
  // addon's (npm ci compiles and links it where nvcc exists), so the tests skip it unless asked:
  // CMAE_TEST_CUDA=ON (a GPU machine also registers the real backend in the op harness).
  const cuda = process.env.CMAE_TEST_CUDA ?? 'OFF';
  const run = (args: string[]) => execFileSync('cmake', args, { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  run(['-S', '.', '-B', buildDir, '-DCMAE_BUILD_TESTS=ON', '-DCMAKE_BUILD_TYPE=Release', `-DCMAE_CUDA=${cuda}`]);
  run(['--build', buildDir, '--parallel', '2']);
}
