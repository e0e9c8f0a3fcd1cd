/** Small shared test inputs: a noise image dataset, and the compiled CLI run as a user runs it. */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import type { InMemoryDataset } from '../../src/data/index';

/** n random 20×20 RGB images (an LCG from `seed`), labels i mod 4. */
export function noiseDataset(n: number, seed = 12345): InMemoryDataset {
  const pixels = new Uint8Array(n * 20 * 20 * 3);
  let s = seed;
  for (let i = 0; i < pixels.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    pixels[i] = (s >>> 16) & 0xff;
  }
  return { name: 'noise', size: n, height: 20, width: 20, channels: 3, pixels, labels: Int32Array.from({ length: n }, (_, i) => i % 4), numClasses: 4 };
}

/** The compiled CLI (dist/, built by npm ci or npm run build:ts). */
export const cliPath = path.resolve(__dirname, '..', '..', 'dist', 'cjs', 'cli', 'main.js');

/** Runs `cmae ...args` in a child process with this process's environment (minus CMAE_ISA). */
export function runCli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', env: { ...process.env, CMAE_ISA: undefined } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}
