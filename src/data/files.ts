/** File helpers shared by the dataset readers: typed IO errors and transparent gzip. @internal */
import { promises as fsp } from 'node:fs';
import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { FormatError, IOError } from '../errors';

const gunzipAsync = promisify(gunzip);

/** The file's bytes; IOError naming the path when it cannot be read. */
export async function readBytes(file: string): Promise<Uint8Array> {
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

/** The file's bytes, gunzipped when they start with the gzip magic (whatever the file is called). */
export async function readMaybeGzip(file: string): Promise<Uint8Array> {
  const raw = await readBytes(file);
  if (!isGzip(raw)) return raw;
  try {
    const buf = await gunzipAsync(raw);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (error) {
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
