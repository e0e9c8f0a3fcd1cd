// npm run bench:embed — `cmae embed`'s rate on a folder of photographs: synthetic JPEGs of
// ImageNet's typical size (500×375, quality 90, as bench:decode), embedded end to end (decode +
// resize by sharp, normalise, encode, write .npy) by a random-init checkpoint of each preset (the
// rate does not depend on the weights), beside the decoding and the encoder alone, which bound it.
//   node bench/embed.mjs [--images 1000] [--presets nano,tiny] [--json]
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { writePhotos, PHOTO_SOURCE } from './photos.mjs';

const require = createRequire(import.meta.url);
const { CMAE, embed, writeEmbeddings, loadImageFolder, getNumThreads } = require('../dist/cjs/index.js');

const argv = process.argv.slice(2);
const arg = (name, fallback) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback);
const images = Number(arg('--images', 1000)) || 1000;
const presets = String(arg('--presets', 'nano,tiny')).split(',');
const json = argv.includes('--json');
const normalization = { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };

const dir = mkdtempSync(path.join(os.tmpdir(), 'cmae-embed-bench-'));
try {
  const photos = path.join(dir, 'photos');
  mkdirSync(photos);
  await writePhotos(photos, images);
  const rows = [];
  for (const preset of presets) {
    const model = await CMAE.create({ preset, channels: 3, seed: 0 });
    const checkpoint = path.join(dir, `${preset}.safetensors`);
    await model.save(checkpoint, { metadata: { normalization: JSON.stringify(normalization) } });
    const S = model.config.imageSize;
    // The encoder alone on ready images, batch 64 (the default).
    const batch = new Float32Array(64 * 3 * S * S).map((_, i) => Math.sin(i));
    await model.encode(batch);
    let t0 = performance.now();
    for (let k = 0; k < 8; k++) await model.encode(batch);
    const encoder = (8 * 64) / ((performance.now() - t0) / 1000);
    model.dispose();
    // Decoding alone, as embed reads the folder (4 images at a time, no cache).
    const folder = await loadImageFolder(photos, { size: Math.max(64, S), cacheSize: 0 });
    t0 = performance.now();
    for (let b = 0; b < folder.size; b += 64) await folder.getPixels(Array.from({ length: Math.min(64, folder.size - b) }, (_, i) => b + i));
    const decode = folder.size / ((performance.now() - t0) / 1000);
    // End to end, as `cmae embed --out e.npy` does it.
    const out = path.join(dir, `${preset}.npy`);
    t0 = performance.now();
    const written = await writeEmbeddings(embed(checkpoint, photos), out);
    const endToEnd = written.rows / ((performance.now() - t0) / 1000);
    rows.push({ preset, imageSize: S, dim: written.dim, endToEnd, decode, encoder });
    rmSync(out);
  }
  const result = { images, source: PHOTO_SOURCE, cores: os.availableParallelism(), threads: getNumThreads(), uvThreadpool: Number(process.env.UV_THREADPOOL_SIZE || 4), rows };
  if (json) console.log(JSON.stringify(result));
  else {
    console.log(`embed ${images} synthetic 500x375 JPEGs, ${result.cores} cores, ${result.threads} compute threads`);
    for (const r of rows) {
      console.log(`  ${r.preset.padEnd(5)} (${r.imageSize}², dim ${r.dim}): ${r.endToEnd.toFixed(0).padStart(5)} img/s end to end | decode alone ${r.decode.toFixed(0)} img/s | encoder alone ${r.encoder.toFixed(0)} img/s`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
