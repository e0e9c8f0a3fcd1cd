/** The one rule of every file reader: regular files only. @internal */
import { promises as fsp } from 'node:fs';
import { IOError } from '../errors';

/**
 * IOError unless `file` is a regular file. Checked before opening: opening a FIFO for reading
 * blocks until a writer comes, and reading a device may never end.
 */
export async function requireRegularFile(file: string): Promise<void> {
  let st;
  try {
    st = await fsp.stat(file);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    throw new IOError(`cannot read ${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  }
  if (!st.isFile()) throw new IOError(`cannot read ${file}: ${st.isDirectory() ? 'is a directory' : 'not a regular file'}`);
}

