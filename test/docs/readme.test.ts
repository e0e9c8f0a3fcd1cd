/**
 * The README does what it says: every ```js example is a whole program, run as a user runs it
 * (`import … from 'cmae'` resolving to this package's dist/, through a node_modules/cmae link in a
 * temporary app), and must exit 0 and print what its marker says. The marker above each block:
 *
 *   <!-- doctest: esm, prints: REGEX -->   an ES module; also run as CommonJS (imports turned into
 *                                          require, the body wrapped in an async main)
 *   <!-- doctest: cjs, prints: REGEX -->   a CommonJS program, run as it stands
 *
 * Each example runs in its own directory holding `checkpoint.safetensors` (written by
 * `cmae pretrain --preset micro`) and `photos/` (two PNG files and a JPEG), as the README says.
 * No ```ts block may remain: an example runs, a signature listing is a ```text block.
 */
import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliPath } from '../helpers/fixtures';

const repo = path.resolve(__dirname, '..', '..');
const readme = readFileSync(path.join(repo, 'README.md'), 'utf8');
const run = promisify(execFile);

interface Example {
  line: number;
  kind: 'esm' | 'cjs';
  prints: RegExp;
  code: string;
}

/** The README's ```js blocks with their markers; a block without a marker is an error. */
function examples(): Example[] {
  const out: Example[] = [];
  const lines = readme.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '```js') continue;
    const end = lines.indexOf('```', i + 1);
    let m = i - 1;
    while (m >= 0 && lines[m].trim() === '') m--;
    const marker = /^<!-- doctest: (esm|cjs), prints: (.+) -->$/.exec(lines[m] ?? '');
    if (!marker) throw new Error(`README.md:${i + 1}: a js block without a '<!-- doctest: esm|cjs, prints: REGEX -->' marker above it`);
    out.push({ line: i + 1, kind: marker[1] as 'esm' | 'cjs', prints: new RegExp(marker[2]), code: lines.slice(i + 1, end).join('\n') });
    i = end;
  }
  return out;
}

/** An ES-module example as CommonJS: each `import { a, b as c } from 'x'` a require, the rest in an async main. */
function toCommonJs(code: string): string {
  const requires: string[] = [];
  const body: string[] = [];
  for (const line of code.split('\n')) {
    const named = /^import \{([^}]+)\} from '([^']+)';$/.exec(line);
    if (named) requires.push(`const {${named[1].replace(/ as /g, ': ')}} = require('${named[2]}');`);
    else if (/^import\b/.test(line)) throw new Error(`cannot turn this import into a require: ${line}`);
    else body.push(line);
  }
  return `${requires.join('\n')}\n\nasync function main() {\n${body.join('\n')}\n}\nmain().catch((error) => {\n  console.error(error);\n  process.exitCode = 1;\n});\n`;
}

const root = mkdtempSync(path.join(tmpdir(), 'cmae-readme-'));
const fixtures = path.join(root, 'fixtures');
afterAll(() => rmSync(root, { recursive: true, force: true }));

beforeAll(async () => {
  if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: build the TypeScript first (npm run build:ts)`);
  mkdirSync(path.join(fixtures, 'photos'), { recursive: true });
  const pretrained = path.join(root, 'pretrain');
  execFileSync(process.execPath, [cliPath, 'pretrain', '--preset', 'micro', '--steps', '2', '--batch-size', '8', '--no-eval', '--out', pretrained], { stdio: 'ignore' });
  cpSync(path.join(pretrained, 'checkpoint.safetensors'), path.join(fixtures, 'checkpoint.safetensors'));
  for (const [name, colour] of [['a.png', { r: 200, g: 40, b: 40 }], ['b.png', { r: 30, g: 160, b: 90 }], ['c.jpg', { r: 20, g: 60, b: 220 }]] as const) {
    const image = sharp({ create: { width: 40 + name.charCodeAt(0) % 7, height: 32, channels: 3, background: colour } });
    await (name.endsWith('.png') ? image.png() : image.jpeg()).toFile(path.join(fixtures, 'photos', name));
  }
});

/** A fresh app directory with the fixtures and `cmae` installed as a link to this package. */
function app(name: string): string {
  const dir = path.join(root, name);
  cpSync(fixtures, dir, { recursive: true });
  mkdirSync(path.join(dir, 'node_modules'));
  symlinkSync(repo, path.join(dir, 'node_modules', 'cmae'), 'dir');
  return dir;
}

async function runExample(dir: string, file: string, source: string): Promise<{ code: number; stdout: string; stderr: string }> {
  writeFileSync(path.join(dir, file), source);
  try {
    const { stdout, stderr } = await run(process.execPath, [file], { cwd: dir, timeout: 90_000, env: { ...process.env, CMAE_ISA: undefined } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string; message: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

describe('the README', () => {
  it('has no ```ts block left (examples are ```js programs, signatures ```text listings)', () => {
    expect(readme.split('\n').filter((l) => l.startsWith('```ts'))).toEqual([]);
  });

  const all = examples();
  it('has examples of every kind it promises', () => {
    expect(all.filter((e) => e.kind === 'esm').length).toBeGreaterThanOrEqual(5);
    expect(all.filter((e) => e.kind === 'cjs').length).toBeGreaterThanOrEqual(1);
    for (const name of ['train(', 'new DataLoader(', 'cosineWithWarmup(', 'momentumSchedule(', '.normalization', 'embedImages(']) {
      expect(all.some((e) => e.code.includes(name)), name).toBe(true);
    }
  });

  for (const example of all) {
    const variants: ['esm' | 'cjs', string][] = example.kind === 'esm' ? [['esm', 'example.mjs'], ['cjs', 'example.cjs']] : [['cjs', 'example.cjs']];
    for (const [variant, file] of variants) {
      it(`example at README.md:${example.line} runs as ${variant === 'esm' ? 'an ES module' : 'CommonJS'}`, async () => {
        const source = variant === example.kind ? example.code : toCommonJs(example.code);
        const r = await runExample(app(`line${example.line}-${variant}`), file, `${source}\n`);
        expect(r.code, `${r.stderr}\n--- ${file}:\n${source}`).toBe(0);
        expect(r.stdout, r.stderr).toMatch(example.prints);
      });
    }
  }
});
