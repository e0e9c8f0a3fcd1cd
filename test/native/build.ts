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
  const cuda = process.env.CMAE_CUDA ?? 'AUTO';
  const run = (args: string[]) => execFileSync('cmake', args, { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  run(['-S', '.', '-B', buildDir, '-DCMAE_BUILD_TESTS=ON', '-DCMAKE_BUILD_TYPE=Release', `-DCMAE_CUDA=${cuda}`]);
  run(['--build', buildDir, '--parallel', '2']);
}
