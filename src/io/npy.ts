/**
 * A streaming writer of NumPy `.npy` files (format version 1.0) holding one float32 matrix
 * (N, dim), little-endian ('<f4'), C order: rows are appended as they come, N is only known at
 * the end, and the file appears atomically on close.
 *
 * N is filled in by rewriting the header in place rather than by writing the rows to a temporary
 * and prepending the header (which would copy every byte once more): the header leaves room for a
 * 21-digit N, as NumPy's own writer does for arrays that grow along their first axis, so the final
 * header has exactly the length of the provisional one.
 */
import { endianness } from 'node:os';
import { ValueError } from '../errors';
import { AtomicFileWriter } from './atomic';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** Digits reserved for N (NumPy's GROWTH_AXIS_MAX_DIGITS). */
const N_DIGITS = 21;
/** NumPy pads magic + version + length + header to a multiple of 64 bytes. */
const ALIGN = 64;
/** Rows are gathered into writes of about this size. */
const CHUNK_BYTES = 1 << 20;

/** The whole header (magic to '\n') for shape (rows, dim), padded to `total` bytes (or the aligned minimum). */
function npyHeader(rows: number, dim: number, total?: number): Uint8Array {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${dim}), }`;
  const reserved = dict.length + Math.max(0, N_DIGITS - String(rows).length);
  const length = total ?? Math.ceil((10 + reserved + 1) / ALIGN) * ALIGN;
  const text = dict.padEnd(length - 10 - 1, ' ') + '\n';
  if (10 + text.length !== length) throw new ValueError(`npy header for shape (${rows}, ${dim}) does not fit ${length} bytes`);
  const out = new Uint8Array(length);
  out.set(MAGIC, 0);
  out[6] = 1; // version 1.0
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, text.length, true);
  out.set(Buffer.from(text, 'latin1'), 10);
  return out;
}

export class NpyWriter {
  readonly path: string;
  readonly dim: number;
  private rowCount = 0;
  private readonly headerBytes: number;
  private readonly chunk: Float32Array;
  private filled = 0;

  private constructor(private readonly file: AtomicFileWriter, dim: number, headerBytes: number) {
    this.path = file.path;
    this.dim = dim;
    this.headerBytes = headerBytes;
    this.chunk = new Float32Array(Math.max(dim, Math.floor(CHUNK_BYTES / 4 / dim) * dim));
  }

  /** Starts `path` (a temporary until close()) for rows of `dim` float32 values. */
  static async open(path: string, dim: number): Promise<NpyWriter> {
    if (!Number.isInteger(dim) || dim < 1) throw new ValueError(`dim must be a positive integer, got ${dim}`);
    // Rows are written as the Float32Array's bytes, the platform's order; the header says '<f4'.
    if (endianness() !== 'LE') throw new ValueError('.npy output is written little-endian and needs a little-endian host');
    const header = npyHeader(0, dim);
    const file = await AtomicFileWriter.open(path);
    await file.write(header);
    return new NpyWriter(file, dim, header.length);
  }

  get rows(): number {
    return this.rowCount;
  }

  /** Appends one row of `dim` values. */
  async append(row: Float32Array): Promise<void> {
    if (!(row instanceof Float32Array) || row.length !== this.dim) {
      throw new ValueError(`${this.path}: each row must be a Float32Array of ${this.dim} values, got ${row instanceof Float32Array ? `${row.length} values` : typeof row}`);
    }
    if (this.filled + this.dim > this.chunk.length) await this.flush();
    this.chunk.set(row, this.filled);
    this.filled += this.dim;
    this.rowCount++;
  }

  /** Writes the final shape into the header and renames the file into place. */
  async close(): Promise<void> {
    await this.flush();
    await this.file.write(npyHeader(this.rowCount, this.dim, this.headerBytes), 0);
    await this.file.commit();
  }

  /** Drops the temporary: nothing appears at `path`. */
  async abort(): Promise<void> {
    await this.file.abort();
  }

  private async flush(): Promise<void> {
    if (this.filled === 0) return;
    await this.file.write(new Uint8Array(this.chunk.buffer, 0, this.filled * 4));
    this.filled = 0;
  }
}
