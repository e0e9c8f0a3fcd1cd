/**
 * Hostile checkpoints: the configuration in a checkpoint's metadata is checked against its tensors
 * (the parameter table the configuration implies, planned without allocating) and against sane
 * bounds before any model is built. A few-hundred-byte file claiming a huge model is a typed error
 * naming what does not match, at once, never an allocation of its claimed size or a crash.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CMAE, FormatError, ValueError, nativeMemory, presets } from '../../src/index';
import { readSafetensors, serializeSafetensors } from '../../src/io/safetensors';
import { CHECKPOINT_FORMAT, CHECKPOINT_VERSION } from '../../src/models/cmae';

const dir = mkdtempSync(path.join(tmpdir(), 'cmae-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function checkpoint(name: string, config: object, tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {}): string {
  const file = path.join(dir, name);
  const metadata = { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, config: JSON.stringify(config), seed: '0', maskCounter: '0' };
  writeFileSync(file, serializeSafetensors(new Map(Object.entries(tensors)), metadata));
  return file;
}

describe('hostile checkpoints', () => {
  it('a tiny file claiming a huge model is refused before anything is allocated, naming the missing tensors', async () => {
    const before = nativeMemory().cpuAllocatedBytes;
    const file = checkpoint('huge.safetensors', { ...presets.micro, dim: 65536, heads: 1, depth: 1024 });
    const started = Date.now();
    // A FormatError, not the DeviceError (out of memory) that building such a model would raise.
    await expect(CMAE.load(file)).rejects.toThrow(FormatError);
    await expect(CMAE.load(file)).rejects.toThrow(/the tensors do not match metadata.config \(\d+ problems\): missing 'patch_embed.proj.weight' \[65536, 3, 4, 4\]/);
    expect(Date.now() - started).toBeLessThan(10_000); // no gigabytes planned or touched
    expect(nativeMemory().cpuAllocatedBytes).toBe(before);
  });

  it('sizes beyond the bounds, or whose products would overflow, are a ValueError naming the field', async () => {
    for (const [field, value, message] of [
      ['dim', 2 ** 31, /config.dim must be in \[1, 65536\], got 2147483648/],
      ['depth', 1e6, /config.depth must be in \[1, 1024\], got 1000000/],
      ['imageSize', 2 ** 32, /config.imageSize must be in \[1, 16384\]/],
      ['mlpRatio', -4, /config.mlpRatio must be in \[1, 64\], got -4/],
    ] as const) {
      const file = checkpoint(`${field}.safetensors`, { ...presets.micro, [field]: value });
      await expect(CMAE.load(file)).rejects.toThrow(ValueError);
      await expect(CMAE.load(file)).rejects.toThrow(message);
    }
    await expect(CMAE.create({ preset: 'micro', decoderDepth: 5000 })).rejects.toThrow(/config.decoderDepth must be in \[1, 1024\], got 5000/);
    // Numbers the kernels take as float32: finite, in range, representable.
    await expect(CMAE.create({ preset: 'micro', rcWeight: 1e39 })).rejects.toThrow(/config.rcWeight must be a number in \[0, FLT_MAX\] \(float32\), got 1e\+39/);
    await expect(CMAE.create({ preset: 'micro', ctWeight: Number.NaN })).rejects.toThrow(/config.ctWeight must/);
    await expect(CMAE.create({ preset: 'micro', tau: 1e40 })).rejects.toThrow(/config.tau must be a positive number a float32 can hold/);
    await expect(CMAE.create({ preset: 'micro', bnMomentum: 2 })).rejects.toThrow(/config.bnMomentum must be in \[0, 1\], got 2/);
  });

  it('a tensor of the wrong shape or dtype is named with what the config needs; a config that is not an object is refused', async () => {
    const model = await CMAE.create({ preset: 'micro', seed: 1 });
    const good = path.join(dir, 'good.safetensors');
    await model.save(good);
    const parsed = await readSafetensors(good);
    const tensors = Object.fromEntries([...parsed.tensors].map(([n, e]) => [n, { dtype: 'F32' as const, shape: [...e.shape], data: e.data as Float32Array }]));
    tensors['blocks.1.attn.qkv.weight'] = { dtype: 'F32', shape: [96, 16], data: new Float32Array(96 * 16) };
    const wrong = checkpoint('wrong-shape.safetensors', model.config, tensors);
    await expect(CMAE.load(wrong)).rejects.toThrow(/\(1 problem\): 'blocks.1.attn.qkv.weight' is \[96, 16\], the config needs \[96, 32\]/);
    const notObject = checkpoint('array.safetensors', [1, 2, 3]);
    await expect(CMAE.load(notObject)).rejects.toThrow(/metadata.config is not an object/);
    const unknown = checkpoint('unknown.safetensors', { ...model.config, colour: 3 });
    await expect(CMAE.load(unknown)).rejects.toThrow(/unknown model option 'colour'/);
    // The good file still loads to the same parameters.
    const again = await CMAE.load(good);
    expect(again.stateDict().get('blocks.1.attn.qkv.weight')).toEqual(model.stateDict().get('blocks.1.attn.qkv.weight'));
    again.dispose();
    model.dispose();
  });
});
