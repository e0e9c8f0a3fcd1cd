/**
 * safetensors reader and writer (checkpoints, golden fixtures).
 *
 * File layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON
 *   {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "string value"}}
 * (possibly padded with trailing spaces), then the raw little-endian data buffer; offsets are
 * relative to the start of that buffer.
 *
 * Reading is strict: every malformed file throws `FormatError` naming the file and the problem.
 * Holes between tensors and trailing bytes after the last tensor are tolerated (they are harmless
 * and some writers align tensors); overlapping byte ranges are not.
 *
 * Writing produces a canonical file: tensors sorted by name (code-point order), contiguous offsets
 * starting at 0, `__metadata__` first in the header (only when it has keys), header padded with
 * spaces so that the data buffer starts at a multiple of 8 bytes.
 */
import { writeFileAtomic } from './atomic';
import { requireRegularFile } from './regular-file';
import { promises as fsp } from 'node:fs';
import { FormatError, IOError, ShapeError, DTypeError, ValueError } from '../errors';

export type SafeTensorDType = 'F32' | 'I32' | 'F64' | 'I64' | 'U8' | 'F16' | 'BF16';

export type SafeTensorData = Float32Array | Int32Array | Float64Array | BigInt64Array | Uint8Array | Uint16Array;

export interface SafeTensorEntry {
  dtype: SafeTensorDType;
  shape: number[];
  /** Element data in row-major order. F16/BF16 are kept as raw 16-bit patterns (Uint16Array). */
  data: SafeTensorData;
}

/** What the writer accepts: the data array must be the class that belongs to the dtype. */
export interface SafeTensorInput {
  dtype: SafeTensorDType;
  shape: readonly number[];
  data: SafeTensorData;
}

export interface SafeTensorsFile {
  tensors: Map<string, SafeTensorEntry>;
  metadata: Record<string, string>;
}

export type SafeTensorsInput = Map<string, SafeTensorInput> | Record<string, SafeTensorInput>;

interface DTypeInfo {
  size: number;
  ctor: { new (buffer: ArrayBuffer, byteOffset?: number, length?: number): SafeTensorData; name: string };
}

const DTYPES: Record<SafeTensorDType, DTypeInfo> = {
  F32: { size: 4, ctor: Float32Array },
  I32: { size: 4, ctor: Int32Array },
  F64: { size: 8, ctor: Float64Array },
  I64: { size: 8, ctor: BigInt64Array },
  U8: { size: 1, ctor: Uint8Array },
  F16: { size: 2, ctor: Uint16Array },
  BF16: { size: 2, ctor: Uint16Array },
};

/** The dtypes this module reads and writes. */
export const SAFETENSOR_DTYPES: readonly SafeTensorDType[] = Object.keys(DTYPES) as SafeTensorDType[];

/** Bytes per element of a dtype. */
export function dtypeSize(dtype: SafeTensorDType): number {
  return DTYPES[dtype].size;
}

const METADATA_KEY = '__metadata__';
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isDType(x: unknown): x is SafeTensorDType {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, x);
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Reverse the byte order of every element (only used on big-endian hosts). */
function swapBytes(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i + size <= bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Header parsing (shared by parseSafetensors and readSafetensors)

interface HeaderEntry {
  name: string;
  dtype: SafeTensorDType;
  shape: number[];
  begin: number;
  end: number;
}

interface ParsedHeader {
  entries: HeaderEntry[];
  metadata: Record<string, string>;
}

/**
 * Validate the 8-byte prefix against the total file size and return the header length N.
 * The data buffer then spans [8 + N, fileSize).
 */
function readHeaderLength(prefix: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8) {
    throw new FormatError(`${source}: not a safetensors file: ${fileSize} bytes is shorter than the 8-byte header length`);
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(fileSize - 8)) {
    throw new FormatError(
      `${source}: header length ${n} is larger than the ${fileSize - 8} bytes that follow the 8-byte prefix (truncated or not a safetensors file)`,
    );
  }
  return Number(n);
}

function parseHeader(headerBytes: Uint8Array, dataLength: number, source: string): ParsedHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new FormatError(`${source}: header is not valid UTF-8`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FormatError(`${source}: header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(json)) {
    throw new FormatError(`${source}: header JSON must be an object, got ${Array.isArray(json) ? 'an array' : typeof json}`);
  }

  const metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === METADATA_KEY) {
      if (!isPlainObject(value)) {
        throw new FormatError(`${source}: "${METADATA_KEY}" must be an object of string values`);
      }
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') {
          throw new FormatError(
            `${source}: metadata value "${k}" must be a string, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`,
          );
        }
        metadata[k] = v;
      }
      continue;
    }
    const where = `${source}: tensor "${name}"`;
    if (!isPlainObject(value)) throw new FormatError(`${where}: entry must be an object`);
    for (const key of ['dtype', 'shape', 'data_offsets']) {
      if (!(key in value)) throw new FormatError(`${where}: entry is missing "${key}"`);
    }
    const { dtype, shape, data_offsets: offsets } = value;
    if (!isDType(dtype)) {
      throw new FormatError(`${where}: unknown dtype ${JSON.stringify(dtype)} (supported: ${SAFETENSOR_DTYPES.join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new FormatError(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
    ) {
      throw new FormatError(`${where}: data_offsets must be [begin, end] with non-negative integers, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) throw new FormatError(`${where}: data_offsets [${begin}, ${end}] has begin > end`);
    if (end > dataLength) {
      throw new FormatError(`${where}: data_offsets [${begin}, ${end}] out of range: the data buffer has ${dataLength} bytes`);
    }
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    const expected = numel * DTYPES[dtype].size;
    if (end - begin !== expected) {
      throw new FormatError(
        `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape ${fmtShape(shape as number[])} × ${dtype} needs ${expected}`,
      );
    }
    entries.push({ name, dtype, shape: (shape as number[]).slice(), begin, end });
  }

  // Overlap check over the non-empty byte ranges.
  const ranges = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1];
    const cur = ranges[i];
    if (cur.begin < prev.end) {
      throw new FormatError(
        `${source}: tensors "${prev.name}" [${prev.begin}, ${prev.end}] and "${cur.name}" [${cur.begin}, ${cur.end}] have overlapping data_offsets`,
      );
    }
  }
  return { entries, metadata };
}

function makeEntry(h: HeaderEntry, bytes: Uint8Array): SafeTensorEntry {
  const info = DTYPES[h.dtype];
  const ab = new ArrayBuffer(h.end - h.begin);
  const dst = new Uint8Array(ab);
  dst.set(bytes);
  if (!LITTLE_ENDIAN_HOST) swapBytes(dst, info.size);
  const data = new info.ctor(ab, 0, (h.end - h.begin) / info.size);
  return { dtype: h.dtype, shape: h.shape, data };
}

/**
 * Parse a safetensors file held in memory. Each tensor's data is copied into its own (aligned)
 * typed array, so the result does not alias `buffer`.
 * @param source name used in error messages (usually the file path)
 */
export function parseSafetensors(buffer: Uint8Array, source = '<buffer>'): SafeTensorsFile {
  const n = readHeaderLength(buffer, buffer.length, source);
  const dataStart = 8 + n;
  const { entries, metadata } = parseHeader(buffer.subarray(8, dataStart), buffer.length - dataStart, source);
  const tensors = new Map<string, SafeTensorEntry>();
  for (const h of entries) {
    tensors.set(h.name, makeEntry(h, buffer.subarray(dataStart + h.begin, dataStart + h.end)));
  }
  return { tensors, metadata };
}

// ------------------------------------------------------------------------------------------------
// Serialisation

function entriesOf(tensors: SafeTensorsInput): [string, SafeTensorInput][] {
  if (tensors instanceof Map) return Array.from(tensors.entries());
  if (!isPlainObject(tensors)) throw new ValueError('safetensors: tensors must be a Map or a plain object');
  return Object.entries(tensors);
}

function compareCodePoints(a: string, b: string): number {
  // Code-point order (same as Python's sorted()), not UTF-16 code-unit order.
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const cx = x.value.codePointAt(0)!;
    const cy = y.value.codePointAt(0)!;
    if (cx !== cy) return cx - cy;
  }
}

/**
 * Serialise tensors (+ string metadata) to a safetensors byte buffer.
 * Invalid input throws before anything is produced: `ValueError` (names, metadata),
 * `DTypeError` (unknown dtype or a data array of the wrong class), `ShapeError` (bad shape, or
 * data length ≠ product of the shape).
 */
export function serializeSafetensors(tensors: SafeTensorsInput, metadata?: Record<string, string>): Buffer {
  return Buffer.concat(safetensorsParts(tensors, metadata));
}

/**
 * The bytes of a safetensors file as consecutive parts: the length and header, then each tensor's
 * data, a view of the caller's array where the host is little-endian (no copy). Checks as
 * serializeSafetensors says.
 */
function safetensorsParts(tensors: SafeTensorsInput, metadata?: Record<string, string>): Uint8Array[] {
  const list = entriesOf(tensors);
  const names = new Set<string>();
  for (const [name, t] of list) {
    if (typeof name !== 'string' || name.length === 0) throw new ValueError('safetensors: tensor names must be non-empty strings');
    if (name === METADATA_KEY) throw new ValueError(`safetensors: "${METADATA_KEY}" is reserved and cannot be a tensor name`);
    if (names.has(name)) throw new ValueError(`safetensors: duplicate tensor name "${name}"`);
    names.add(name);
    if (!isPlainObject(t)) throw new ValueError(`safetensors: tensor "${name}" must be an object {dtype, shape, data}`);
    if (!isDType(t.dtype)) {
      throw new DTypeError(`safetensors: tensor "${name}" has unknown dtype ${JSON.stringify(t.dtype)} (supported: ${SAFETENSOR_DTYPES.join(', ')})`);
    }
    const info = DTYPES[t.dtype];
    if (!(t.data instanceof info.ctor)) {
      const got = t.data === null || typeof t.data !== 'object' ? String(t.data) : (t.data as object).constructor.name;
      throw new DTypeError(`safetensors: tensor "${name}" has dtype ${t.dtype}, which needs a ${info.ctor.name}, got ${got}`);
    }
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new ShapeError(`safetensors: tensor "${name}" shape must be an array of non-negative integers, got ${JSON.stringify(t.shape)}`);
    }
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== numel) {
      throw new ShapeError(`safetensors: tensor "${name}" has ${t.data.length} elements but shape ${fmtShape(t.shape)} needs ${numel}`);
    }
  }
  const meta: Record<string, string> = {};
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) throw new ValueError('safetensors: metadata must be a plain object of strings');
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new ValueError(`safetensors: metadata value "${k}" must be a string, got ${typeof v}`);
      meta[k] = v;
    }
  }

  list.sort((a, b) => compareCodePoints(a[0], b[0]));
  const header: Record<string, unknown> = {};
  if (Object.keys(meta).length > 0) header[METADATA_KEY] = meta;
  let offset = 0;
  for (const [name, t] of list) {
    const nbytes = t.data.byteLength;
    header[name] = { dtype: t.dtype, shape: Array.from(t.shape), data_offsets: [offset, offset + nbytes] };
    offset += nbytes;
  }
  let headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(headerBytes.length / 8) * 8;
  if (padded !== headerBytes.length) {
    headerBytes = Buffer.concat([headerBytes, Buffer.alloc(padded - headerBytes.length, 0x20)]);
  }
  const head = Buffer.alloc(8 + headerBytes.length);
  head.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(head, 8);
  const parts: Uint8Array[] = [head];
  for (const [, t] of list) parts.push(littleEndianBytes(t.data));
  return parts;
}

/**
 * An array's elements as little-endian bytes (the byte order of safetensors and ONNX files): a
 * view of the array where the host is little-endian (no copy), a byte-swapped copy elsewhere. @internal
 */
export function littleEndianBytes(data: SafeTensorData): Uint8Array {
  const src = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (LITTLE_ENDIAN_HOST) return src;
  const swapped = Uint8Array.from(src);
  swapBytes(swapped, data.BYTES_PER_ELEMENT);
  return swapped;
}

// ------------------------------------------------------------------------------------------------
// Files

function ioError(what: string, path: string, e: unknown): IOError {
  const err = e as NodeJS.ErrnoException;
  const message = String((err && err.message) || err);
  const detail = err && err.code && !message.includes(err.code) ? `${err.code}: ${message}` : message;
  return new IOError(`${what} ${path} failed: ${detail}`);
}

async function readFully(fh: fsp.FileHandle, dst: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < dst.length) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(dst, done, dst.length - done, position + done));
    } catch (e) {
      throw ioError('reading', path, e);
    }
    if (bytesRead === 0) throw new IOError(`reading ${path} failed: unexpected end of file (file changed while reading?)`);
    done += bytesRead;
  }
}

/** Opens `path` and reads and checks its header; `body` may then read the data. */
async function withHeader<T>(path: string, body: (fh: fsp.FileHandle, header: ParsedHeader, dataStart: number) => Promise<T>): Promise<T> {
  await requireRegularFile(path);
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, 'r');
  } catch (e) {
    throw ioError('opening', path, e);
  }
  try {
    let size: number;
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new IOError(`opening ${path} failed: not a regular file`);
      size = st.size;
    } catch (e) {
      if (e instanceof IOError) throw e;
      throw ioError('reading', path, e);
    }
    const prefix = new Uint8Array(8);
    if (size >= 8) await readFully(fh, prefix, 0, path);
    const n = readHeaderLength(prefix, size, path);
    const headerBytes = new Uint8Array(n);
    await readFully(fh, headerBytes, 8, path);
    const dataStart = 8 + n;
    return await body(fh, parseHeader(headerBytes, size - dataStart, path), dataStart);
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** The `__metadata__` of a safetensors file, from its (checked) header alone: no tensor is read. */
export async function readSafetensorsMetadata(path: string): Promise<Record<string, string>> {
  return withHeader(path, async (_fh, header) => header.metadata);
}

/**
 * Read a safetensors file. Tensors are read straight into their own typed arrays (no whole-file
 * buffer), so files larger than Node's 2 GiB readFile limit work too.
 * Throws `IOError` when the file cannot be opened/read, `FormatError` when it is malformed.
 */
export async function readSafetensors(path: string): Promise<SafeTensorsFile> {
  return withHeader(path, async (fh, { entries, metadata }, dataStart) => {
    const tensors = new Map<string, SafeTensorEntry>();
    for (const h of entries) {
      const info = DTYPES[h.dtype];
      const ab = new ArrayBuffer(h.end - h.begin);
      const bytes = new Uint8Array(ab);
      await readFully(fh, bytes, dataStart + h.begin, path);
      if (!LITTLE_ENDIAN_HOST) swapBytes(bytes, info.size);
      tensors.set(h.name, { dtype: h.dtype, shape: h.shape, data: new info.ctor(ab, 0, bytes.length / info.size) });
    }
    return { tensors, metadata };
  });
}

/**
 * Write a safetensors file atomically: the bytes go to `${path}.tmp-<pid>-<random>` in the same
 * directory, are fsync'ed, and the temp file is renamed over `path`. Invalid tensors throw (see
 * serializeSafetensors) before the disk is touched; on an I/O failure the temp file is removed,
 * any existing file at `path` is left untouched, and an `IOError` naming the path is thrown.
 * The tensors' data are written from the arrays themselves, not from a serialised copy (a
 * checkpoint of a tiny model and its AdamW is 100 MB): they must not change until the promise
 * settles.
 */
export async function writeSafetensors(path: string, tensors: SafeTensorsInput, metadata?: Record<string, string>): Promise<void> {
  await writeFileAtomic(path, safetensorsParts(tensors, metadata));
}
