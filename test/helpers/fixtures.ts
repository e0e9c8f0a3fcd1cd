/** Small shared test inputs: a noise image dataset, and the compiled CLI run as a user runs it. */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { encodeIdx, type InMemoryDataset } from '../../src/data/index';

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

/**
 * Writes n labelled 28×28 images (value (i·37 + image·mix) mod 251, labels i mod classes) as the
 * four gzipped IDX files of `--data idx:DIR` (the same images for train and t10k).
 */
export function writeIdxDataset(dir: string, n: number, classes: number, mix = 0): void {
  mkdirSync(dir, { recursive: true });
  const pixels = new Uint8Array(n * 28 * 28).map((_, i) => (i * 37 + ((i / 784) | 0) * mix) % 251);
  const labels = Uint8Array.from({ length: n }, (_, i) => i % classes);
  for (const split of ['train', 't10k']) {
    writeFileSync(path.join(dir, `${split}-images-idx3-ubyte.gz`), gzipSync(encodeIdx(pixels, [n, 28, 28])));
    writeFileSync(path.join(dir, `${split}-labels-idx1-ubyte.gz`), gzipSync(encodeIdx(labels, [n])));
  }
}

/** The compiled CLI (dist/, built by npm ci or npm run build:ts). */
export const cliPath = path.resolve(__dirname, '..', '..', 'dist', 'cjs', 'cli', 'main.js');

/** Runs `cmae ...args` in a child process with this process's environment (minus CMAE_ISA). */
export function runCli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', env: { ...process.env, CMAE_ISA: undefined } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Writes a small image folder of real files, encoded by sharp: classes `cats/` (PNG) and `dogs/`
 * (JPEG, one PNG in a nested folder), each image a different smooth pattern of its own size, and
 * `dogs/broken.png`, bytes that are no image. Returns every file written (not in the folder's order).
 */
export async function writeImageFolder(dir: string, perClass = 5): Promise<{ files: string[]; broken: string }> {
  const { default: sharp } = await import('sharp');
  const files: string[] = [];
  for (const [c, cls] of ['cats', 'dogs'].entries()) {
    mkdirSync(path.join(dir, cls, 'more'), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const w = 24 + 7 * i;
      const h = 20 + 5 * ((i + c) % 3);
      const rgb = Buffer.alloc(w * h * 3);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const o = 3 * (y * w + x);
          rgb[o] = (x * 9 + i * 40) & 0xff;
          rgb[o + 1] = (y * 11 + c * 90) & 0xff;
          rgb[o + 2] = ((x + y) * 5 + i * 13) & 0xff;
        }
      }
      const image = sharp(rgb, { raw: { width: w, height: h, channels: 3 } });
      const nested = c === 1 && i === perClass - 1;
      const file = path.join(dir, cls, ...(nested ? ['more'] : []), `img${i}.${c === 0 || nested ? 'png' : 'jpg'}`);
      await (file.endsWith('.png') ? image.png() : image.jpeg({ quality: 90 })).toFile(file);
      files.push(file);
    }
  }
  const broken = path.join(dir, 'dogs', 'broken.png');
  writeFileSync(broken, Buffer.from('this is not a PNG file, whatever its name says'));
  files.push(broken);
  return { files, broken };
}

/** Runs `cmae ...args` and sends it SIGINT (Ctrl-C) once its stderr matches `when` (a progress line). */
export async function interruptCli(when: RegExp, ...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CMAE_ISA: undefined } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => {
    stderr += d;
    if (when.test(stderr) && !child.killed) child.kill('SIGINT');
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, stdout, stderr };
}
