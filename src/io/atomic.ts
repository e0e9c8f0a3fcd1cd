/** Atomic file writes: nothing the user had is lost if a write fails half way. */
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as nodePath from 'node:path';
import { IOError } from '../errors';

function ioError(path: string, e: unknown): IOError {
  if (e instanceof IOError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  return new IOError(`cannot write ${path}${code ? ` (${code})` : ''}: ${(e as Error).message}`);
}

/** overwrite (default true): replace an existing file at `path`; false: refuse it (an IOError saying so). */
export interface CommitOptions {
  overwrite?: boolean;
}

/**
 * A file written in parts to a temporary beside `path` (`<path>.tmp-<pid>-<random>`, which
 * `train()` recognises as a killed writer's leftover) and renamed over `path` by commit(): until
 * then any existing file at `path` is untouched, and abort() (or a failed write) removes the
 * temporary. For outputs whose size is only known at the end (streamed embeddings).
 */
export class AtomicFileWriter {
  readonly path: string;
  readonly tempPath: string;
  private fh?: fsp.FileHandle;
  private done = false;

  private constructor(path: string, tempPath: string, fh: fsp.FileHandle) {
    this.path = path;
    this.tempPath = tempPath;
    this.fh = fh;
  }

  /** Creates the temporary (IOError naming `path` if the directory cannot take it). */
  static async open(path: string): Promise<AtomicFileWriter> {
    const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
    try {
      return new AtomicFileWriter(path, tmp, await fsp.open(tmp, 'wx', 0o644));
    } catch (e) {
      throw ioError(path, e);
    }
  }

  /** Appends `bytes`, or writes them at `position` (a header patched once the size is known). */
  async write(bytes: Uint8Array, position?: number): Promise<void> {
    const fh = this.handle();
    try {
      for (let done = 0; done < bytes.byteLength; ) {
        done += (await fh.write(bytes, done, bytes.byteLength - done, position === undefined ? null : position + done)).bytesWritten;
      }
    } catch (e) {
      await this.abort();
      throw ioError(this.path, e);
    }
  }

  /** fsyncs the temporary and renames it over `path` (or, with `overwrite: false`, links it there). */
  async commit(options: CommitOptions = {}): Promise<void> {
    const fh = this.handle();
    try {
      await fh.sync();
      await fh.close();
      this.fh = undefined;
      if (options.overwrite ?? true) {
        await fsp.rename(this.tempPath, this.path);
      } else {
        // A hard link fails if the name exists: no check-then-write race can replace a file that
        // appeared meanwhile.
        await fsp.link(this.tempPath, this.path);
        await fsp.unlink(this.tempPath).catch(() => undefined);
      }
      this.done = true;
    } catch (e) {
      await this.abort();
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && options.overwrite === false) {
        throw new IOError(`${this.path} already exists (not overwritten; pass --force, or force: true, to replace it)`);
      }
      throw ioError(this.path, e);
    }
    // Make the rename itself durable (best effort: not every platform can fsync a directory).
    try {
      const dh = await fsp.open(nodePath.dirname(nodePath.resolve(this.path)), 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    } catch {
      /* ignore */
    }
  }

  /** Removes the temporary; `path` keeps what it had. Idempotent, never throws. */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    if (this.fh) await this.fh.close().catch(() => undefined);
    this.fh = undefined;
    await fsp.unlink(this.tempPath).catch(() => undefined);
  }

  private handle(): fsp.FileHandle {
    if (this.done || !this.fh) throw new IOError(`${this.path}: the writer was already committed or aborted`);
    return this.fh;
  }
}

/**
 * Writes `bytes` (or its parts, one after the other) to a temporary file in the same directory,
 * fsyncs it and renames it over `path`.
 * On failure the temporary file is removed, any existing file at `path` is left untouched, and an
 * IOError naming the path is thrown.
 * `overwrite: false` refuses an existing file (an IOError saying so): the finished temporary file
 * is then hard-linked to `path`, which fails if the name exists, so no check-then-write race can
 * replace a file that appeared meanwhile.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array | string | readonly Uint8Array[], options: CommitOptions = {}): Promise<void> {
  const writer = await AtomicFileWriter.open(path);
  const parts = typeof bytes === 'string' ? [Buffer.from(bytes, 'utf8')] : Array.isArray(bytes) ? (bytes as readonly Uint8Array[]) : [bytes as Uint8Array];
  for (const part of parts) await writer.write(part);
  await writer.commit(options);
}
