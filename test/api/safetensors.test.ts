import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { promises as fsp, existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  parseSafetensors,
  readSafetensors,
  readSafetensorsMetadata,
  serializeSafetensors,
  writeSafetensors,
  type SafeTensorInput,
} from '../../src/io/safetensors';
import { DTypeError, FormatError, IOError, ShapeError, ValueError } from '../../src/errors';

/** Build a safetensors byte buffer by hand: u64 LE header length, header text, data bytes. */
function build(header: unknown, data: number[] | Uint8Array = [], lengthOverride?: bigint): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const h = Buffer.from(text, 'utf8');
  const out = Buffer.alloc(8 + h.length + data.length);
  out.writeBigUInt64LE(lengthOverride ?? BigInt(h.length), 0);
  h.copy(out, 8);
  out.set(data, 8 + h.length);
  return new Uint8Array(out);
}

function expectFormatError(buf: Uint8Array, ...patterns: RegExp[]): void {
  let err: unknown;
  try {
    parseSafetensors(buf, 'bad.safetensors');
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(FormatError);
  const msg = (err as Error).message;
  expect(msg).toContain('bad.safetensors');
  for (const p of patterns) expect(msg).toMatch(p);
}

const f32 = (name: string, shape: number[], values: number[]): [string, SafeTensorInput] => [
  name,
  { dtype: 'F32', shape, data: Float32Array.from(values) },
];

describe('safetensors: round trip', () => {
  it('round-trips every dtype, shapes incl. scalar and empty, and metadata', () => {
    const input = new Map<string, SafeTensorInput>([
      ['w', { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, -2.5, 3.25, 1e-30, -0, Math.PI]) }],
      ['ids', { dtype: 'I32', shape: [4], data: Int32Array.from([0, -1, 2147483647, -2147483648]) }],
      ['d', { dtype: 'F64', shape: [3], data: Float64Array.from([Math.E, -1e300, 5e-324]) }],
      ['bytes', { dtype: 'U8', shape: [5], data: Uint8Array.from([0, 1, 127, 128, 255]) }],
      ['big', { dtype: 'I64', shape: [2], data: BigInt64Array.from([-(2n ** 63n), 2n ** 62n + 3n]) }],
      ['half', { dtype: 'F16', shape: [2], data: Uint16Array.from([0x3c00, 0xc000]) }],
      ['bhalf', { dtype: 'BF16', shape: [1, 1], data: Uint16Array.from([0x3f80]) }],
      ['scalar', { dtype: 'F32', shape: [], data: Float32Array.from([7]) }],
      ['empty', { dtype: 'F64', shape: [0, 3], data: new Float64Array(0) }],
    ]);
    const meta = { config: JSON.stringify({ dim: 32 }), note: 'héllo ✓', empty: '' };
    const bytes = serializeSafetensors(input, meta);
    // Data buffer starts 8-byte aligned.
    expect(Number(bytes.readBigUInt64LE(0)) % 8).toBe(0);
    const out = parseSafetensors(bytes);
    expect(out.metadata).toEqual(meta);
    expect(new Set(out.tensors.keys())).toEqual(new Set(input.keys()));
    for (const [name, t] of input) {
      const got = out.tensors.get(name)!;
      expect(got.dtype).toBe(t.dtype);
      expect(got.shape).toEqual(t.shape);
      expect(got.data.constructor).toBe(t.data.constructor);
      expect(Array.from(got.data as ArrayLike<number | bigint>)).toEqual(Array.from(t.data as ArrayLike<number | bigint>));
      // Own, aligned storage (never a view into the file buffer).
      expect(got.data.buffer).not.toBe(bytes.buffer);
      expect(got.data.byteOffset % got.data.BYTES_PER_ELEMENT).toBe(0);
    }
    expect(Object.is((out.tensors.get('w')!.data as Float32Array)[4], -0)).toBe(true);
  });

  it('accepts a plain object, writes tensors sorted by name with contiguous offsets', () => {
    const bytes = serializeSafetensors({
      zeta: { dtype: 'U8', shape: [3], data: Uint8Array.from([1, 2, 3]) },
      alpha: { dtype: 'F64', shape: [1], data: Float64Array.from([2]) },
      Mid: { dtype: 'I32', shape: [2], data: Int32Array.from([5, 6]) },
    });
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    expect(Object.keys(header)).toEqual(['Mid', 'alpha', 'zeta']); // code-point order, no __metadata__
    expect(header.Mid.data_offsets).toEqual([0, 8]);
    expect(header.alpha.data_offsets).toEqual([8, 16]);
    expect(header.zeta.data_offsets).toEqual([16, 19]);
    expect(bytes.length).toBe(8 + n + 19);
  });

  it('serialises typed-array views (subarray) correctly', () => {
    const backing = Float32Array.from([9, 9, 1, 2, 3, 9]);
    const view = backing.subarray(2, 5);
    const out = parseSafetensors(serializeSafetensors({ v: { dtype: 'F32', shape: [3], data: view } }));
    expect(Array.from(out.tensors.get('v')!.data as Float32Array)).toEqual([1, 2, 3]);
  });

  it('produces exactly the bytes of a file built by hand', () => {
    const bytes = serializeSafetensors(
      new Map([
        ['b', { dtype: 'I32', shape: [2], data: Int32Array.from([1, -2]) } as SafeTensorInput],
        f32('a', [], [1.5]),
      ]),
      { k: 'v' },
    );
    const json =
      '{"__metadata__":{"k":"v"},' +
      '"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},' +
      '"b":{"dtype":"I32","shape":[2],"data_offsets":[4,12]}}';
    expect(json.length).toBe(132); // 132 → padded with 4 spaces to 136
    const expected = Buffer.concat([
      Buffer.from([136, 0, 0, 0, 0, 0, 0, 0]),
      Buffer.from(json + '    ', 'ascii'),
      Buffer.from([0x00, 0x00, 0xc0, 0x3f]), // 1.5f
      Buffer.from([0x01, 0x00, 0x00, 0x00, 0xfe, 0xff, 0xff, 0xff]), // 1, -2
    ]);
    expect(Buffer.compare(bytes, expected)).toBe(0);
  });

  it('parses a hand-built file from another writer (key order, padding, alignment holes)', () => {
    const header =
      '{"y":{"data_offsets":[8,16],"shape":[2],"dtype":"F32"},' +
      '"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},' +
      '"__metadata__":{"format":"pt"}}' +
      '      ';
    const data = [7, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0xaa];
    const out = parseSafetensors(build(header, data));
    expect(out.metadata).toEqual({ format: 'pt' });
    expect(Array.from(out.tensors.get('x')!.data as Uint8Array)).toEqual([7]);
    expect(Array.from(out.tensors.get('y')!.data as Float32Array)).toEqual([1, -2]);
  });
});

describe('safetensors: malformed input throws FormatError naming the file', () => {
  const okEntry = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const eight = new Array(8).fill(0);

  it('file shorter than 8 bytes', () => {
    expectFormatError(new Uint8Array(0), /shorter than the 8-byte/);
    expectFormatError(new Uint8Array(7), /7 bytes is shorter/);
  });

  it('header length larger than the file', () => {
    expectFormatError(build({ t: okEntry }, eight, 1000n), /header length 1000 is larger/);
    expectFormatError(build({}, [], 2n ** 64n - 1n), /header length \d+ is larger/);
  });

  it('header not JSON / not an object / not UTF-8', () => {
    expectFormatError(build('{"t": {', eight), /not valid JSON/);
    expectFormatError(build('[1, 2]'), /must be an object/);
    const bad = Buffer.alloc(10);
    bad.writeBigUInt64LE(2n, 0);
    bad[8] = 0xc3;
    bad[9] = 0x28; // invalid UTF-8 sequence
    expectFormatError(bad, /not valid UTF-8/);
  });

  it('entry missing dtype / shape / data_offsets, or not an object', () => {
    expectFormatError(build({ t: { shape: [2], data_offsets: [0, 8] } }, eight), /"t".*missing "dtype"/);
    expectFormatError(build({ t: { dtype: 'F32', data_offsets: [0, 8] } }, eight), /missing "shape"/);
    expectFormatError(build({ t: { dtype: 'F32', shape: [2] } }, eight), /missing "data_offsets"/);
    expectFormatError(build({ t: 5 }, eight), /"t": entry must be an object/);
  });

  it('unknown dtype', () => {
    expectFormatError(build({ t: { ...okEntry, dtype: 'F8_E4M3' } }, eight), /unknown dtype "F8_E4M3"/);
    expectFormatError(build({ t: { ...okEntry, dtype: 3 } }, eight), /unknown dtype 3/);
  });

  it('bad shape', () => {
    expectFormatError(build({ t: { ...okEntry, shape: [-2] } }, eight), /shape must be/);
    expectFormatError(build({ t: { ...okEntry, shape: [2.5] } }, eight), /shape must be/);
    expectFormatError(build({ t: { ...okEntry, shape: 'x' } }, eight), /shape must be/);
  });

  it('offsets out of range, malformed, overlapping, or not matching shape × dtype', () => {
    expectFormatError(build({ t: { ...okEntry, data_offsets: [0, 8] } }, [0, 0, 0, 0]), /out of range.*4 bytes/);
    expectFormatError(build({ t: { ...okEntry, data_offsets: [8, 0] } }, eight), /begin > end/);
    expectFormatError(build({ t: { ...okEntry, data_offsets: [0] } }, eight), /data_offsets must be/);
    expectFormatError(build({ t: { ...okEntry, data_offsets: [-1, 7] } }, eight), /data_offsets must be/);
    expectFormatError(build({ t: { ...okEntry, data_offsets: [0, 4] } }, eight), /span 4 bytes but shape \[2\] × F32 needs 8/);
    expectFormatError(
      build({ a: okEntry, b: { dtype: 'I32', shape: [1], data_offsets: [4, 8] } }, eight),
      /"a".*"b".*overlapping/,
    );
  });

  it('non-string metadata values', () => {
    expectFormatError(build({ __metadata__: { epoch: 3 }, t: okEntry }, eight), /metadata value "epoch" must be a string, got number/);
    expectFormatError(build({ __metadata__: { x: null } }), /got null/);
    expectFormatError(build({ __metadata__: ['a'] }), /__metadata__/);
  });
});

describe('safetensors: serialise rejects invalid tensors', () => {
  it('wrong length, wrong array class, unknown dtype, reserved name, bad metadata', () => {
    expect(() => serializeSafetensors({ t: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } })).toThrowError(ShapeError);
    expect(() => serializeSafetensors({ t: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } })).toThrowError(
      /"t" has 3 elements but shape \[2, 2\] needs 4/,
    );
    expect(() => serializeSafetensors({ t: { dtype: 'F64', shape: [1], data: new Float32Array(1) } })).toThrowError(DTypeError);
    expect(() =>
      serializeSafetensors({ t: { dtype: 'X' as never, shape: [1], data: new Float32Array(1) } }),
    ).toThrowError(/unknown dtype "X"/);
    expect(() => serializeSafetensors({ __metadata__: { dtype: 'U8', shape: [0], data: new Uint8Array(0) } })).toThrowError(ValueError);
    expect(() => serializeSafetensors({}, { a: 1 as unknown as string })).toThrowError(ValueError);
  });
});

describe('safetensors: files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'cmae-st-'));
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });
  const tempFiles = async (d: string) => (await fsp.readdir(d)).filter((f) => f.includes('.tmp-'));

  it('writes and reads back a file, overwriting atomically', async () => {
    const p = path.join(dir, 'ckpt.safetensors');
    await writeSafetensors(p, new Map([f32('a', [2], [1, 2])]), { step: '1' });
    await writeSafetensors(p, new Map([f32('a', [3], [4, 5, 6])]), { step: '2' });
    const out = await readSafetensors(p);
    expect(out.metadata).toEqual({ step: '2' });
    expect(Array.from(out.tensors.get('a')!.data as Float32Array)).toEqual([4, 5, 6]);
    expect(await tempFiles(dir)).toEqual([]);
    // readSafetensors and parseSafetensors agree.
    const viaParse = parseSafetensors(await fsp.readFile(p), p);
    expect(viaParse.tensors.get('a')).toEqual(out.tensors.get('a'));
  });

  it('writes, part by part from the arrays themselves, exactly the bytes serializeSafetensors gives (views, several dtypes)', async () => {
    const p = path.join(dir, 'parts.safetensors');
    const arena = Float32Array.from({ length: 40 }, (_, i) => i * 0.5 - 3);
    const tensors = {
      b: { dtype: 'F32' as const, shape: [3, 4], data: arena.subarray(4, 16) },
      a: { dtype: 'F32' as const, shape: [5], data: arena.subarray(30, 35) },
      ids: { dtype: 'I32' as const, shape: [2], data: Int32Array.from([7, -9]) },
      empty: { dtype: 'F32' as const, shape: [0], data: new Float32Array(0) },
    };
    await writeSafetensors(p, tensors, { note: 'views' });
    expect(Buffer.compare(await fsp.readFile(p), serializeSafetensors(tensors, { note: 'views' }))).toBe(0);
  });

  it('an invalid tensor throws before anything is written; the old file stays intact', async () => {
    const p = path.join(dir, 'ckpt.safetensors');
    await writeSafetensors(p, { a: { dtype: 'F32', shape: [1], data: Float32Array.from([42]) } });
    const before = await fsp.readFile(p);
    await expect(
      writeSafetensors(p, { a: { dtype: 'F32', shape: [2], data: Float32Array.from([1]) } }),
    ).rejects.toThrowError(ShapeError);
    expect(Buffer.compare(await fsp.readFile(p), before)).toBe(0);
    expect(await tempFiles(dir)).toEqual([]);
  });

  it('a failing rename removes the temp file and leaves the target untouched', async () => {
    // The target is a non-empty directory: the temp file is written, then the rename fails.
    const target = path.join(dir, 'target.safetensors');
    await fsp.mkdir(target);
    await fsp.writeFile(path.join(target, 'keep.txt'), 'x');
    const err = await writeSafetensors(target, new Map([f32('a', [1], [1])])).catch((e) => e);
    expect(err).toBeInstanceOf(IOError);
    expect(err.message).toContain(target);
    expect((await fsp.stat(target)).isDirectory()).toBe(true);
    expect(await fsp.readFile(path.join(target, 'keep.txt'), 'utf8')).toBe('x');
    expect(await tempFiles(dir)).toEqual([]);
  });

  it('a missing target directory throws IOError naming the path', async () => {
    const p = path.join(dir, 'gone', 'ckpt.safetensors');
    const err = await writeSafetensors(p, new Map([f32('a', [1], [1])])).catch((e) => e);
    expect(err).toBeInstanceOf(IOError);
    expect(err.message).toContain(p);
    expect(err.message).toMatch(/ENOENT/);
    expect(existsSync(path.join(dir, 'gone'))).toBe(false);
    expect(await tempFiles(dir)).toEqual([]);
  });

  it('readSafetensorsMetadata gives the metadata from the header alone, with the same checks', async () => {
    const p = path.join(dir, 'meta.safetensors');
    await writeSafetensors(p, new Map([f32('a', [4], [1, 2, 3, 4])]), { config: '{"dim":8}', step: '3' });
    expect(await readSafetensorsMetadata(p)).toEqual((await readSafetensors(p)).metadata);
    expect(await readSafetensorsMetadata(p)).toEqual({ config: '{"dim":8}', step: '3' });
    // A header whose offsets run past the file is refused as readSafetensors refuses it.
    const bytes = await fsp.readFile(p);
    const cut = path.join(dir, 'cut.safetensors');
    await fsp.writeFile(cut, bytes.subarray(0, bytes.length - 4));
    await expect(readSafetensorsMetadata(cut)).rejects.toThrow(FormatError);
  });

  it('reading a missing file or a directory throws IOError naming the path', async () => {
    const p = path.join(dir, 'nope.safetensors');
    const err = await readSafetensors(p).catch((e) => e);
    expect(err).toBeInstanceOf(IOError);
    expect(err.message).toContain(p);
    const err2 = await readSafetensors(dir).catch((e) => e);
    expect(err2).toBeInstanceOf(IOError);
    expect(err2.message).toContain(dir);
  });

  it('reading a truncated or malformed file throws FormatError naming the path', async () => {
    const p = path.join(dir, 'trunc.safetensors');
    const good = serializeSafetensors(new Map([f32('a', [4], [1, 2, 3, 4])]));
    await fsp.writeFile(p, good.subarray(0, good.length - 3));
    const err = await readSafetensors(p).catch((e) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect(err.message).toContain(p);
    expect(err.message).toMatch(/out of range/);
    await fsp.writeFile(p, good.subarray(0, 20));
    await expect(readSafetensors(p)).rejects.toThrowError(/header length \d+ is larger/);
    await fsp.writeFile(p, Buffer.from([1, 2, 3]));
    await expect(readSafetensors(p)).rejects.toThrowError(FormatError);
  });
});

/**
 * The exact ends of the ranges: each case is read from memory (parseSafetensors) and from a file
 * (readSafetensors, which sizes the data buffer from the file's length), with the same outcome.
 * The rules: the data buffer is [8 + N, file end); a tensor's [begin, end) must lie inside it and
 * span shape × dtype bytes; non-empty ranges must not overlap. Holes and trailing bytes are
 * tolerated (see src/io/safetensors.ts), so they load, with the bytes in them ignored.
 */
describe('safetensors: exact boundaries', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'cmae-st-edge-'));
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  /** Reads buf both ways; returns each tensor's name → values (as numbers), identical both ways. */
  async function load(buf: Uint8Array): Promise<Record<string, number[]>> {
    const p = path.join(dir, 'edge.safetensors');
    await fsp.writeFile(p, buf);
    const values = (f: ReturnType<typeof parseSafetensors>) =>
      Object.fromEntries(Array.from(f.tensors, ([name, t]) => [name, Array.from(t.data as ArrayLike<number>)]));
    const fromMemory = values(parseSafetensors(buf));
    expect(values(await readSafetensors(p))).toEqual(fromMemory);
    return fromMemory;
  }

  /** Both readers refuse buf with a FormatError matching every pattern. */
  async function refuse(buf: Uint8Array, ...patterns: RegExp[]): Promise<void> {
    expectFormatError(buf, ...patterns);
    const p = path.join(dir, 'bad.safetensors');
    await fsp.writeFile(p, buf);
    const err = await readSafetensors(p).catch((e) => e);
    expect(err).toBeInstanceOf(FormatError);
    for (const re of patterns) expect(err.message).toMatch(re);
  }

  const bytes = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
  const u8 = (begin: number, end: number) => ({ dtype: 'U8', shape: [end - begin], data_offsets: [begin, end] });

  it("the last tensor's data ending exactly at the end of the file loads", async () => {
    expect(await load(build({ a: u8(0, 3), b: u8(3, 8) }, bytes(8)))).toEqual({ a: [1, 2, 3], b: [4, 5, 6, 7, 8] });
  });

  it('a tensor claiming one byte past the end, or a file one byte short, is a FormatError', async () => {
    await refuse(build({ a: u8(0, 3), b: u8(3, 9) }, bytes(8)), /"b": data_offsets \[3, 9\] out of range: the data buffer has 8 bytes/);
    const whole = build({ a: u8(0, 3), b: u8(3, 8) }, bytes(8));
    await refuse(whole.subarray(0, whole.length - 1), /"b": data_offsets \[3, 8\] out of range: the data buffer has 7 bytes/);
  });

  it('a tensor ending one byte before the end loads; the trailing byte is ignored', async () => {
    expect(await load(build({ a: u8(0, 3), b: u8(3, 7) }, bytes(8)))).toEqual({ a: [1, 2, 3], b: [4, 5, 6, 7] });
  });

  it('a header length pointing exactly at the end of the file loads (no data); one byte more is a FormatError', async () => {
    const header = Buffer.from('{"__metadata__":{"k":"v"}}');
    const exact = build(header.toString());
    expect(exact.length).toBe(8 + header.length);
    expect(parseSafetensors(exact).metadata).toEqual({ k: 'v' });
    expect(await load(exact)).toEqual({});
    await refuse(build(header.toString(), [], BigInt(header.length + 1)), new RegExp(`header length ${header.length + 1} is larger than the ${header.length} bytes`));
    // At the end, with a tensor that needs data: its range is outside the (empty) data buffer.
    await refuse(build({ a: u8(0, 1) }), /"a": data_offsets \[0, 1\] out of range: the data buffer has 0 bytes/);
  });

  it('zero-element tensors: at the very end they load (empty); one past the end is a FormatError; inside another tensor they load', async () => {
    const empty = (at: number) => ({ dtype: 'F32', shape: [0, 4], data_offsets: [at, at] });
    expect(await load(build({ a: u8(0, 4), z: empty(4) }, bytes(4)))).toEqual({ a: [1, 2, 3, 4], z: [] });
    expect(await load(build({ z: empty(0) }))).toEqual({ z: [] });
    await refuse(build({ a: u8(0, 4), z: empty(5) }, bytes(4)), /"z": data_offsets \[5, 5\] out of range: the data buffer has 4 bytes/);
    // An empty range occupies no byte, so it overlaps nothing.
    expect(await load(build({ a: u8(0, 4), z: empty(2) }, bytes(4)))).toEqual({ a: [1, 2, 3, 4], z: [] });
  });

  it('adjacent ranges load; one shared byte or identical ranges overlap; a hole loads', async () => {
    expect(await load(build({ a: u8(0, 4), b: u8(4, 8) }, bytes(8)))).toEqual({ a: [1, 2, 3, 4], b: [5, 6, 7, 8] });
    await refuse(build({ a: u8(0, 4), b: u8(3, 8) }, bytes(8)), /"a" \[0, 4\] and "b" \[3, 8\] have overlapping data_offsets/);
    await refuse(build({ a: u8(0, 4), b: u8(0, 4) }, bytes(4)), /"a" \[0, 4\] and "b" \[0, 4\] have overlapping data_offsets/);
    // Listed out of order, the overlap is still found (the check sorts by offset).
    await refuse(build({ b: u8(6, 8), a: u8(0, 4), c: u8(2, 5) }, bytes(8)), /"a" \[0, 4\] and "c" \[2, 5\] have overlapping/);
    expect(await load(build({ a: u8(0, 2), b: u8(5, 8) }, bytes(8)))).toEqual({ a: [1, 2], b: [6, 7, 8] });
  });
});

describe('safetensors: golden fixtures written by test/reference/make_fixtures.py', () => {
  const fixtures = path.join(__dirname, '..', 'fixtures');

  it('cmae_micro.safetensors parses with the expected names, dtypes and shapes', async () => {
    const f = await readSafetensors(path.join(fixtures, 'cmae_micro.safetensors'));
    const cfg = JSON.parse(f.metadata.config);
    expect(cfg.dim).toBe(32);
    const t = (n: string) => {
      const e = f.tensors.get(n);
      if (!e) throw new Error(`missing ${n}`);
      return e;
    };
    expect(t('input.images')).toMatchObject({ dtype: 'F32', shape: [4, 3, 16, 16] });
    expect(t('input.target_images')).toMatchObject({ dtype: 'F32', shape: [4, 3, 16, 16] });
    expect(t('input.mask_noise')).toMatchObject({ dtype: 'F32', shape: [4, 4] });
    expect(t('expect.ids_keep')).toMatchObject({ dtype: 'I32', shape: [4, 4] });
    expect(t('expect.ids_restore')).toMatchObject({ dtype: 'I32', shape: [4, 16] });
    expect(t('expect.mask')).toMatchObject({ dtype: 'F32', shape: [4, 16] });
    expect(t('expect.pred')).toMatchObject({ dtype: 'F64', shape: [4, 16, 48] });
    expect(t('expect.z_t')).toMatchObject({ dtype: 'F64', shape: [4, 16] });
    expect(t('expect.q')).toMatchObject({ dtype: 'F64', shape: [4, 16] });
    expect(t('param.patch_embed.proj.weight')).toMatchObject({ dtype: 'F32', shape: [32, 3, 4, 4] });
    expect(t('param.momentum_projector.bn.running_var')).toMatchObject({ dtype: 'F32', shape: [64] });
    expect(t('grad.blocks.1.attn.qkv.weight')).toMatchObject({ dtype: 'F32', shape: [96, 32] });
    expect(f.tensors.has('grad.pos_embed')).toBe(false);
    expect(f.tensors.has('grad.momentum_encoder.cls_token')).toBe(false);
    expect(t('step3.momentum_encoder.blocks.0.mlp.fc1.weight')).toMatchObject({ dtype: 'F32', shape: [128, 32] });
    expect(f.tensors.has('param.momentum_encoder.norm.weight')).toBe(false);
    // Every trainable parameter has a gradient and every parameter/buffer a step-3 value.
    for (const name of f.tensors.keys()) {
      if (!name.startsWith('param.')) continue;
      const base = name.slice('param.'.length);
      expect(f.tensors.has(`step3.${base}`)).toBe(true);
      const frozen = /pos_embed$/.test(base) || base.startsWith('momentum_') || /running_(mean|var)$/.test(base);
      expect(f.tensors.has(`grad.${base}`)).toBe(!frozen);
    }
    // Mask bookkeeping is consistent: ids_restore inverts [kept ascending, masked ascending].
    const keep = t('expect.ids_keep').data as Int32Array;
    const restore = t('expect.ids_restore').data as Int32Array;
    const mask = t('expect.mask').data as Float32Array;
    for (let b = 0; b < 4; b++) {
      const kept = Array.from(keep.subarray(b * 4, b * 4 + 4));
      expect(kept).toEqual([...kept].sort((x, y) => x - y));
      const masked = Array.from({ length: 16 }, (_, i) => i).filter((i) => !kept.includes(i));
      const order = [...kept, ...masked];
      for (let i = 0; i < 16; i++) {
        expect(order[restore[b * 16 + i]]).toBe(i);
        expect(mask[b * 16 + i]).toBe(kept.includes(i) ? 0 : 1);
      }
    }
  });

  it('re-serialising a fixture reproduces the Python writer byte for byte', async () => {
    for (const name of ['cmae_micro.safetensors', 'mae_micro.safetensors']) {
      const file = path.join(fixtures, name);
      const bytes = await fsp.readFile(file);
      const f = parseSafetensors(bytes, file);
      expect(Buffer.compare(serializeSafetensors(f.tensors, f.metadata), bytes)).toBe(0);
    }
  });

  it('mae_micro.safetensors parses', async () => {
    const f = await readSafetensors(path.join(fixtures, 'mae_micro.safetensors'));
    expect(f.tensors.get('expect.pred')).toMatchObject({ dtype: 'F64', shape: [4, 16, 48] });
    expect(f.tensors.has('param.feature_mask_token')).toBe(false);
    expect(f.tensors.has('grad.decoder_pred.weight')).toBe(true);
  });
});
