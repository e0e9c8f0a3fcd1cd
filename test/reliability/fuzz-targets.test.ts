/**
 * The coverage-guided fuzzer's harness (test/fuzz/js, run offline by `npm run fuzz:js`) kept
 * working: its seeds are valid inputs that load (a fuzzer started from broken seeds explores only
 * error paths), and every target takes each seed and damaged copies of it (truncations, bit flips)
 * without throwing — a target throws only for what the fuzzer must report, an error that is not
 * a CmaeError. Runs the compiled package (dist/cjs), as the fuzzer does.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CMAE } from '../../src/index';
import { readIdx } from '../../src/data/idx';
import { parseCifar10Batch } from '../../src/data/cifar';
import { decodeImageBytes } from '../../src/data/image-folder';
import { makeRng } from '../helpers/check';

const require = createRequire(__filename);
const harness = path.join(__dirname, '..', 'fuzz', 'js');
const corpus = mkdtempSync(path.join(tmpdir(), 'cmae-fuzz-targets-'));
afterAll(() => rmSync(corpus, { recursive: true, force: true }));

type Target = (data: Buffer) => void | Promise<void>;
const TARGETS = ['checkpoint', 'safetensors', 'idx', 'cifar', 'image'];
let targets: Record<string, Target>;
const seeds = (target: string) => readdirSync(path.join(corpus, target)).map((name) => ({ name, bytes: readFileSync(path.join(corpus, target, name)) }));

beforeAll(() => {
  execFileSync(process.execPath, [path.join(harness, 'seeds.cjs'), corpus]);
  targets = require(path.join(harness, 'targets.cjs')) as Record<string, Target>;
}, 60_000);

describe('fuzz harness (test/fuzz/js)', () => {
  it('writes a valid seed for every target', async () => {
    expect(readdirSync(corpus).sort()).toEqual([...TARGETS].sort());
    const [checkpoint] = seeds('checkpoint');
    const model = await CMAE.load(path.join(corpus, 'checkpoint', checkpoint.name));
    expect(model.config.dim).toBe(8);
    model.dispose();
    for (const { name } of seeds('idx')) expect((await readIdx(path.join(corpus, 'idx', name))).dims).toEqual([3, 5, 4]);
    expect(Array.from(parseCifar10Batch(seeds('cifar')[0].bytes, 'seed').labels)).toEqual([3, 7]);
    const images = seeds('image');
    expect(images.length).toBe(5);
    for (const { name, bytes } of images) expect((await decodeImageBytes(bytes, name, 8, 3)).length, name).toBe(8 * 8 * 3);
  });

  it.each(TARGETS)('%s: the seeds and damaged copies of them end without an error the fuzzer would report', async (name) => {
    const target = targets[name];
    expect(typeof target).toBe('function');
    const rng = makeRng(11);
    let cases = 0;
    for (const { bytes } of seeds(name)) {
      const inputs = [bytes, Buffer.alloc(0)];
      for (let i = 1; i <= 8; i++) inputs.push(bytes.subarray(0, Math.floor((bytes.length * i) / 9)));
      for (let i = 0; i < 24; i++) {
        const flipped = Buffer.from(bytes);
        flipped[Math.floor(rng() * flipped.length)] ^= 1 << Math.floor(rng() * 8);
        inputs.push(flipped);
      }
      for (const input of inputs) {
        await expect(Promise.resolve().then(() => target(input))).resolves.toBeUndefined();
        cases++;
      }
    }
    expect(cases).toBeGreaterThanOrEqual(34);
  }, 120_000);
});
