/** The comparison chart of bench:ssl: a PNG whose bars grow with the scores they draw. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { renderScoreBars } from '../../src/viz/pictures';

const dir = mkdtempSync(path.join(tmpdir(), 'cmae-pictures-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Pixels of exactly this colour in an RGB(A) PNG. */
async function count(file: string, rgb: [number, number, number]): Promise<number> {
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  let n = 0;
  for (let i = 0; i < data.length; i += info.channels) if (data[i] === rgb[0] && data[i + 1] === rgb[1] && data[i + 2] === rgb[2]) n++;
  return n;
}

describe('renderScoreBars', () => {
  it('draws one k-NN and one linear bar per method, their areas following the scores', async () => {
    // The baselines span both renders' scores, so that both share one axis.
    const baselines = [{ name: 'raw pixels', knn: 0.95, linear: 0.95 }, { name: 'random-init', knn: 0.5, linear: 0.5 }];
    const low = path.join(dir, 'low.png');
    const high = path.join(dir, 'high.png');
    await renderScoreBars([{ name: 'a', knn: 0.8, linear: 0.7 }, { name: 'b', knn: 0.8, linear: 0.7 }], baselines, low, 'low');
    await renderScoreBars([{ name: 'a', knn: 0.8, linear: 0.9 }, { name: 'b', knn: 0.8, linear: 0.9 }], baselines, high, 'high');
    const meta = await sharp(low).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 640, 480]);
    const knnBlue: [number, number, number] = [0x1f, 0x77, 0xb4];
    const linearOrange: [number, number, number] = [0xff, 0x7f, 0x0e];
    // Same k-NN scores: the blue bars cover the same area; higher linear scores: more orange.
    expect(await count(high, linearOrange)).toBeGreaterThan(1.2 * (await count(low, linearOrange)));
    expect(Math.abs((await count(high, knnBlue)) - (await count(low, knnBlue)))).toBeLessThan(0.05 * (await count(low, knnBlue)));
  });
});
