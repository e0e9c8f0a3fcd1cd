/** The package is importable from ES modules and from CommonJS, with one addon instance. */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..', '..');

function node(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
  return { code: r.status, out: r.stdout.trim(), err: r.stderr };
}

describe('module formats', () => {
  it('import (ESM) and require (CJS) expose the same API and share the addon', () => {
    const script = [
      "import * as esm from 'cmae';",
      "import { createRequire } from 'node:module';",
      "const cjs = createRequire(import.meta.url)('cmae');",
      'const t = esm.Tensor.from(new Float32Array([1, 2]), [2]);',
      // a tensor made through one entry point is accepted by kernels reached through the other
      'const g = cjs.kernels.geluForward(t).toArray();',
      "console.log(JSON.stringify({ same: esm.CMAE === cjs.CMAE, keys: Object.keys(esm).length === Object.keys(cjs).length, g: Array.from(g) }));",
    ].join('\n');
    const r = node(['--input-type=module', '-e', script]);
    expect(r.code, r.err).toBe(0);
    const result = JSON.parse(r.out);
    expect(result.same).toBe(true);
    expect(result.keys).toBe(true);
    expect(result.g[1]).toBeCloseTo(1.9544997, 5);
  });

  it('loading the package has no side effects and no top-level await (require works synchronously)', () => {
    const r = node(['-e', "const c = require('cmae'); console.log(typeof c.info, typeof c.CMAE.create)"]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe('function function');
  });
});
