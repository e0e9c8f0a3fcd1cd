/** Atomic file writes: nothing the user had is lost if a write fails half way. */
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as nodePath from 'node:path';
import { IOError } from '../errors';

/**
 * Writes `bytes` (or its parts, one after the other) to a temporary file in the same directory,
 * fsyncs it and renames it over `path`.
 * On failure the temporary file is removed, any existing file at `path` is left untouched, and an
 * IOError naming the path is thrown.
 * `overwrite: false` refuses an existing file (an IOError saying so): the finished temporary file
 * is then hard-linked to `path`, which fails if the name exists, so no check-then-write race can
 * replace a file that appeared meanwhile.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array | string | readonly Uint8Array[], options: { overwrite?: boolean } = {}): Promise<void> {
  const overwrite = options.overwrite ?? true;
  const dir = nodePath.dirname(nodePath.resolve(path));
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fh: fsp.FileHandle | undefined;
  let created = false;
  try {
    fh = await fsp.open(tmp, 'wx', 0o644);
    created = true;
    if (Array.isArray(bytes)) {
      for (const part of bytes as readonly Uint8Array[]) {
        for (let done = 0; done < part.byteLength; ) done += (await fh.write(part, done, part.byteLength - done)).bytesWritten;
      }
    } else {
      await fh.writeFile(bytes as Uint8Array | string);
    }
    await fh.sync();
    await fh.close();
    fh = undefined;
    if (overwrite) {
      await fsp.rename(tmp, path);
    } else {
      await fsp.link(tmp, path);
      await fsp.unlink(tmp);
    }
    created = false;
  } catch (e) {
    if (fh) await fh.close().catch(() => undefined);
    if (created) await fsp.unlink(tmp).catch(() => undefined);
    const code = (e as NodeJS.ErrnoException).code;
    if (!overwrite && code === 'EEXIST') throw new IOError(`${path} already exists (not overwritten; pass --force, or force: true, to replace it)`);
    throw new IOError(`cannot write ${path}${code ? ` (${code})` : ''}: ${(e as Error).message}`);
  }
  // Make the rename itself durable (best effort: not every platform can fsync a directory).
  try {
    const dh = await fsp.open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    /* ignore */
  }
}
