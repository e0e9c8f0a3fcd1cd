/**
 * Vitest global setup: builds the native test executables (test/native/CMakeLists.txt) once per
 * `npm test`, with plain CMake into build-tests/ (incremental: a rebuild with nothing changed takes
 * a second). Test files then run them through test/native/native.ts. Given the Node headers (the
 * include directories cmake-js would pass), the same build makes cmae_emulated.node, the addon
 * whose 'cuda' device is the SIMT emulator (test/cuda/*.test.ts load it; see emulatedAddonPath).
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

export const root = path.resolve(__dirname, '..', '..');
export const buildDir = path.join(root, 'build-tests');
/** cmae_emulated.node (built when Boost.Context is present, like the emulator itself). */
export const emulatedAddonPath = path.join(buildDir, 'Release', 'cmae_emulated.node');

export default function setup(): void {
  // The emulated CUDA backend is always built (it needs no nvcc). nvcc's own build of cuda/ is the
  // addon's (npm ci compiles and links it where nvcc exists), so the tests skip it unless asked:
  // CMAE_TEST_CUDA=ON (a GPU machine also registers the real backend in the op harness).
  const cuda = process.env.CMAE_TEST_CUDA ?? 'OFF';
  const run = (args: string[]) => execFileSync('cmake', args, { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  // cmake-js is the one that knows the Node-API headers; its answer is its last output line.
  const cmakeJs = path.join(path.dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
  const nodeIncludes = execFileSync(process.execPath, [cmakeJs, 'print-cmakejs-include', '-l', 'error'], { cwd: root, encoding: 'utf8' }).trim().split('\n').pop();
  run([
    '-S', '.', '-B', buildDir, '-DCMAE_BUILD_TESTS=ON', '-DCMAKE_BUILD_TYPE=Release', `-DCMAE_CUDA=${cuda}`,
    `-DCMAKE_JS_INC=${nodeIncludes}`, '-DCMAE_BUILD_ADDON=OFF', `-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=${path.dirname(emulatedAddonPath)}`,
  ]);
  run(['--build', buildDir, '--parallel', '2']);
}
