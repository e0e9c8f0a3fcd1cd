/**
 * Each preset is what the README's table documents, and the shared defaults are the method spec's
 * (the golden tests build from their fixtures' own configs, so without this a changed default
 * would pass them). The README is parsed, so the table and the code cannot drift apart.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AdamW, CMAE, methods, presets, resolveConfig } from '../../src/index';

const readme = readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');

describe('presets', () => {
  it("match the README's table, row by row", () => {
    const table = readme.slice(readme.indexOf('### Presets'), readme.indexOf('## On a GPU'));
    const rows = table.split('\n').filter((l) => /^\| `\w+`/.test(l));
    expect(rows.map((r) => /`(\w+)`/.exec(r)![1])).toEqual(Object.keys(presets));
    for (const row of rows) {
      const name = /`(\w+)`/.exec(row)![1] as keyof typeof presets;
      const cells = row.split('|').slice(2, -1).map((c) => c.match(/\d+(?:\.\d+)?/g)!.map(Number));
      const [[input], [patch], [dim, depth, heads], [dec, decDepth, decHeads], [fdec, fdecDepth, fdecHeads], [hIn, hidden, proj], [maskRatio, maskGroup]] = cells;
      const p = presets[name];
      expect([p.imageSize, p.patchSize, p.dim, p.depth, p.heads], name).toEqual([input, patch, dim, depth, heads]);
      expect([p.decoderDim, p.decoderDepth, p.decoderHeads], `${name} pixel decoder`).toEqual([dec, decDepth, decHeads]);
      expect([p.featureDecoderDim, p.featureDecoderDepth, p.featureDecoderHeads], `${name} feature decoder`).toEqual([fdec, fdecDepth, fdecHeads]);
      expect([p.dim, p.projectorHidden, p.projectorDim], name).toEqual([hIn, hidden, proj]);
      expect([p.maskRatio, p.maskGroup], `${name} CMAE masking`).toEqual([maskRatio, maskGroup]);
    }
  });

  it("share the method spec's defaults (τ, eps, masking, weights), and each method its own", () => {
    // nano alone masks as the sweep chose (45 % per patch: its 64 patches, bench/SWEEP.md); the
    // others as the spec (65 % in 2×2 groups). The README's table states both (test above).
    const specMasking = { maskRatio: 0.65, maskGroup: 2 };
    for (const [name, p] of Object.entries(presets)) {
      expect({ mode: p.mode, mlpRatio: p.mlpRatio, maskRatio: p.maskRatio, maskGroup: p.maskGroup, tau: p.tau, ctWeight: p.ctWeight, rcWeight: p.rcWeight, normPixLoss: p.normPixLoss, bnEps: p.bnEps, bnMomentum: p.bnMomentum }, name).toEqual({
        mode: 'cmae', mlpRatio: 4, ...(name === 'nano' ? { maskRatio: 0.45, maskGroup: 1 } : specMasking), tau: 0.07, ctWeight: 1, rcWeight: 1, normPixLoss: true, bnEps: 1e-6, bnMomentum: 0.1,
      });
    }
    expect(Object.keys(methods)).toEqual(['cmae', 'mae', 'mocov3', 'maskdistill', 'simclr', 'densecl']);
    const of = (mode: keyof typeof methods) => resolveConfig('tiny', { mode });
    expect([of('mae').maskRatio, of('mae').maskGroup]).toEqual([0.75, 1]);
    expect([of('maskdistill').maskRatio, of('maskdistill').maskGroup]).toEqual([0.75, 1]);
    expect([of('mocov3').maskRatio, of('mocov3').tau]).toEqual([0, 0.07]);
    expect([of('simclr').maskRatio, of('simclr').tau]).toEqual([0, 0.2]);
    expect([of('densecl').maskRatio, of('densecl').tau, of('densecl').denseWeight]).toEqual([0, 0.07, 0.5]);
  });
});

describe('AdamW defaults', () => {
  it("are MAE/CMAE's recipe (lr 1.5e-4, betas (0.9, 0.95), weight decay 0.05, no clipping) with torch's eps 1e-8", async () => {
    const model = await CMAE.create({ preset: 'micro', seed: 0 });
    try {
      const opt = new AdamW(model);
      expect({ lr: opt.lr, betas: opt.betas, eps: opt.eps, weightDecay: opt.weightDecay, maxGradNorm: opt.maxGradNorm }).toEqual({
        lr: 1.5e-4, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.05, maxGradNorm: 0,
      });
    } finally {
      model.dispose();
    }
  });
});
