/**
 * Embedding files, chosen by extension:
 * - `.jsonl`: one JSON object per line, `{"index", "path"?, "label"?, "embedding": [...]}`.
 * - `.npy`: NumPy's format, float32 (N, dim) (`numpy.load`), plus `<name>.rows.jsonl` beside it:
 *   line i is `{"index", "path"?, "label"?}` of row i, since skipped images make row ≠ index.
 * Every file is written to a temporary and renamed into place at the end; a failed or cancelled run
 * leaves nothing, and an existing file is kept unless `overwrite`.
 */
import { existsSync } from 'node:fs';
import * as nodePath from 'node:path';
import { IOError, ValueError } from '../errors';
import { AtomicFileWriter } from '../io/atomic';
import { NpyWriter } from '../io/npy';
import type { Embedding } from './embed';

export type EmbeddingFormat = 'npy' | 'jsonl';

/** The format of `out` and every file writing it creates (`out` first). */
export function embeddingOutputs(out: string): { format: EmbeddingFormat; files: string[] } {
  const ext = nodePath.extname(out).toLowerCase();
  if (ext === '.jsonl') return { format: 'jsonl', files: [out] };
  if (ext === '.npy') return { format: 'npy', files: [out, `${out.slice(0, -ext.length)}.rows.jsonl`] };
  throw new ValueError(`the embeddings file must end in .npy or .jsonl, got '${out}'`);
}

/**
 * The shortest decimal that reads back as the same float32 (`Math.fround(Number(s)) === x`), so
 * that JSONL holds exactly the float32 values in fewer characters than a double's digits.
 * Non-finite values have no JSON form: ValueError.
 */
export function formatFloat32(x: number): string {
  if (!Number.isFinite(x)) throw new ValueError(`${x} has no JSON form`);
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  // Nine significant digits always identify a float32; fewer digits that still do are searched
  // for by bisection (if p digits round-trip, so do p + 1).
  let lo = 1;
  let hi = 9;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (Math.fround(Number(x.toPrecision(mid))) === x) hi = mid;
    else lo = mid + 1;
  }
  return String(Number(x.toPrecision(lo)));
}

export interface WriteEmbeddingsOptions {
  /** Replace existing files. Default false: an IOError names the file that exists. */
  overwrite?: boolean;
  /** Write image paths relative to this folder (portable outputs); default: as the stream gives them. */
  pathsRelativeTo?: string;
}

export interface WrittenEmbeddings {
  rows: number;
  dim: number;
  files: string[];
}

/** The row's fields other than the embedding, as the start of a JSON object (no closing brace). */
function rowFields(row: Embedding, relativeTo?: string): string {
  let s = `{"index":${row.index}`;
  if (row.path !== undefined) {
    const p = relativeTo === undefined ? row.path : nodePath.relative(relativeTo, row.path).split(nodePath.sep).join('/');
    s += `,"path":${JSON.stringify(p)}`;
  }
  if (row.label !== undefined) s += `,"label":${row.label}`;
  return s;
}

/** Text lines gathered into writes of about 1 MiB. */
class LineWriter {
  private parts: string[] = [];
  private size = 0;
  constructor(readonly file: AtomicFileWriter) {}
  async line(text: string): Promise<void> {
    this.parts.push(text, '\n');
    this.size += text.length + 1;
    if (this.size >= 1 << 20) await this.flush();
  }
  async flush(): Promise<void> {
    if (this.parts.length === 0) return;
    const bytes = Buffer.from(this.parts.join(''), 'utf8');
    this.parts = [];
    this.size = 0;
    await this.file.write(bytes);
  }
}

/**
 * Writes a stream of embeddings to `out` (.npy or .jsonl, see above) and returns what it wrote.
 * If the stream fails or is cancelled, the temporaries are removed and the error is rethrown.
 */
export async function writeEmbeddings(stream: AsyncIterable<Embedding> | Iterable<Embedding>, out: string, options: WriteEmbeddingsOptions = {}): Promise<WrittenEmbeddings> {
  const { format, files } = embeddingOutputs(out);
  if (!options.overwrite) {
    const existing = files.find((f) => existsSync(f));
    if (existing) throw new IOError(`${existing} exists; it is not overwritten unless asked (--force)`);
  }
  let npy: NpyWriter | undefined;
  let lines: LineWriter | undefined;
  const abort = async () => {
    await npy?.abort();
    await lines?.file.abort();
  };
  let rows = 0;
  let dim = 0;
  try {
    lines = new LineWriter(await AtomicFileWriter.open(format === 'npy' ? files[1] : out));
    for await (const row of stream) {
      if (rows === 0) {
        dim = row.embedding.length;
        if (format === 'npy') npy = await NpyWriter.open(out, dim);
      }
      const fields = rowFields(row, options.pathsRelativeTo);
      if (npy) {
        await npy.append(row.embedding);
        await lines.line(`${fields}}`);
      } else {
        if (row.embedding.length !== dim) throw new ValueError(`embedding ${row.index} has ${row.embedding.length} values, the first had ${dim}`);
        let values: string;
        try {
          values = Array.from(row.embedding, formatFloat32).join(',');
        } catch {
          throw new ValueError(`embedding ${row.index}${row.path ? ` (${row.path})` : ''} has a non-finite value, which JSON cannot hold (write .npy instead)`);
        }
        await lines.line(`${fields},"embedding":[${values}]}`);
      }
      rows++;
    }
    if (rows === 0) throw new ValueError('no image could be embedded, so nothing was written');
    await lines.flush();
    await npy?.close();
    await lines.file.commit();
  } catch (error) {
    await abort();
    throw error;
  }
  return { rows, dim, files };
}
