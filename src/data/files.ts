/** File helpers shared by the dataset readers: typed IO errors and transparent gzip. @internal */
import { promises as fsp } from 'node:fs';
import { createGunzip, gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { FormatError, IOError } from '../errors';
import { requireRegularFile } from '../io/regular-file';

const gunzipAsync = promisify(gunzip);

/** The file's bytes; IOError naming the path when it cannot be read. */
export async function readBytes(file: string): Promise<Uint8Array> {
  await requireRegularFile(file);
  try {
    const buf = await fsp.readFile(file);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EISDIR' ? 'is a directory' : e.message;
    throw new IOError(`cannot read ${file}: ${why}`);
  }
}

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Deflate's largest expansion (a stream of repeated bytes): no gzip file inflates beyond this many times its size. */
export const MAX_DEFLATE_RATIO = 1032;

/** The first `count` bytes (or fewer, at its end) of a gzip stream, without inflating the rest. */
async function gunzipPrefix(raw: Uint8Array, count: number, file: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const z = createGunzip();
    const chunks: Buffer[] = [];
    let have = 0;
    const finish = () => {
      z.removeAllListeners();
      z.on('error', () => undefined); // late errors of a destroyed stream
      z.destroy();
      resolve(new Uint8Array(Buffer.concat(chunks, have).subarray(0, Math.min(have, count))));
    };
    z.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      have += chunk.length;
      if (have >= count) finish();
    });
    z.on('end', finish);
    z.on('error', (error) => reject(new FormatError(`${file}: corrupt or truncated gzip data (${error.message})`)));
    z.end(raw);
  });
}

/**
 * The file's bytes, gunzipped when they start with the gzip magic (whatever the file is called).
 * `expectedSize`, given the first `headerBytes` inflated bytes, says how large the whole must be
 * (e.g. an IDX header's dims): a size the gzip file cannot hold (deflate expands at most 1032×) is
 * refused without inflating, and the inflation stops at that size + 1, so a small file never
 * inflates to more than it declares (a gzip bomb stays a FormatError, not gigabytes of memory).
 */
export async function readMaybeGzip(
  file: string,
  limit?: { headerBytes: number; expectedSize: (header: Uint8Array) => number },
): Promise<Uint8Array> {
  const raw = await readBytes(file);
  if (!isGzip(raw)) return raw;
  let maxOutputLength: number | undefined;
  if (limit) {
    const expected = limit.expectedSize(await gunzipPrefix(raw, limit.headerBytes, file));
    if (expected > MAX_DEFLATE_RATIO * raw.length + limit.headerBytes) {
      throw new FormatError(`${file}: its header declares ${expected} bytes, more than a ${raw.length}-byte gzip file can hold (truncated or forged)`);
    }
    maxOutputLength = expected + 1; // one byte more shows trailing data without inflating all of it
  }
  try {
    const buf = await gunzipAsync(raw, maxOutputLength !== undefined ? { maxOutputLength } : {});
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new FormatError(`${file}: inflates to more than the ${maxOutputLength! - 1} bytes its header declares`);
    }
    throw new FormatError(`${file}: corrupt or truncated gzip data (${(error as Error).message})`);
  }
}

/** Whether a path exists and is a directory / file. */
export async function statKind(path: string): Promise<'file' | 'dir' | 'missing' | 'other'> {
  try {
    const st = await fsp.stat(path);
    return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
  } catch {
    return 'missing';
  }
}

/** IOError unless `dir` is a readable directory. */
export async function requireDir(dir: string, what: string): Promise<void> {
  const kind = await statKind(dir);
  if (kind === 'missing') throw new IOError(`${what} directory ${dir} does not exist`);
  if (kind !== 'dir') throw new IOError(`${what} path ${dir} is not a directory`);
}
