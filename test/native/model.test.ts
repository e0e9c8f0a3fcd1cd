/**
 * cmae_model_check (test/native/model/model_check.cc): the whole model on each non-CPU backend of
 * the native test build (here the emulated CUDA backend) against the CPU, one vitest case per
 * native case; and the binary's own copies of what TypeScript owns — the presets, and the FLOP
 * count its GPU bench divides by — checked against their owners.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { presets } from '../../src/index';
import { binaryPath, nativeCases } from './native';

nativeCases('cmae_model_check', [], 'it needs Boost.Context (Debian: apt-get install libboost-context-dev) for the emulated CUDA backend');

describe('cmae_model_check agrees with the TypeScript owners', () => {
  const binary = binaryPath('cmae_model_check');
  const print = (flag: string) => JSON.parse(execFileSync(binary, [flag], { encoding: 'utf8' })) as Record<string, unknown>;

  it('has the presets of src/models/config.ts', () => {
    expect(existsSync(binary)).toBe(true);
    const native = print('--print-presets');
    for (const name of ['micro', 'tiny', 'small', 'base'] as const) {
      const { mode: _mode, ...want } = presets[name];
      expect(native[name], name).toEqual(want);
    }
  });

  it('counts the FLOPs of a training step as bench/flops.mjs does', async () => {
    const { flopsPerImage } = await import('../../bench/flops.mjs');
    const native = print('--print-flops');
    for (const name of ['micro', 'tiny', 'small', 'base'] as const)
      for (const mode of ['cmae', 'mae'] as const) {
        const config = { ...presets[name], mode, ...(mode === 'mae' ? { maskRatio: 0.75, maskGroup: 1 } : {}) };
        expect(native[`${name} ${mode}`], `${name} ${mode}`).toBe(flopsPerImage(config, 64, 'train'));
      }
  });
});
