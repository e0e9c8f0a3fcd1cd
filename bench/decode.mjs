// npm run bench:decode — how fast this machine decodes training images for the GPU: synthetic
// JPEGs of ImageNet's typical size (500×375, quality 90) decoded and resized to 224×224 by
// loadImageFolder (sharp/libvips), per core (libvips single-threaded, one image at a time) and
// with every core busy. The figure says how many cores a given GPU training rate needs.
//   node bench/decode.mjs [--images 256] [--json]
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { writePhotos, PHOTO_SOURCE } from './photos.mjs';

const require = createRequire(import.meta.url);
const sharp = require('sharp');
const { loadImageFolder } = require('../dist/cjs/index.js');

const argv = process.argv.slice(2);
const images = Number(argv[argv.indexOf('--images') + 1] || 256) || 256;
const json = argv.includes('--json');
const cores = os.availableParallelism();

async function rate(dataset, concurrencyNote) {
  const all = Int32Array.from({ length: dataset.size }, (_, i) => i);
  dataset.clearCache();
  await dataset.getPixels(all.subarray(0, 8)); // warm-up: sharp's first call loads libvips
  dataset.clearCache();
  const t0 = performance.now();
  for (let b = 0; b < all.length; b += 64) await dataset.getPixels(all.subarray(b, b + 64));
  const seconds = (performance.now() - t0) / 1000;
  return { setting: concurrencyNote, imagesPerSecond: dataset.size / seconds };
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'cmae-decode-'));
try {
  await writePhotos(dir, images);
  const rows = [];
  // Per core: libvips single-threaded, one image at a time.
  sharp.concurrency(1);
  rows.push(await rate(await loadImageFolder(dir, { size: 224, cacheSize: 0, concurrency: 1 }), '1 image at a time, libvips 1 thread (per core)'));
  // Every core: as many images in flight as cores (libuv's pool must be at least that large:
  // UV_THREADPOOL_SIZE, default 4).
  const pool = Number(process.env.UV_THREADPOOL_SIZE || 4);
  rows.push(await rate(await loadImageFolder(dir, { size: 224, cacheSize: 0, concurrency: cores }), `${cores} images at a time (${cores} cores, libuv pool ${pool})`));
  const perCore = rows[0].imagesPerSecond;
  const result = { cores, images, source: PHOTO_SOURCE, target: '224x224 RGB', rows, coresFor5000ImagesPerSecond: Math.ceil(5000 / perCore) };
  if (json) console.log(JSON.stringify(result));
  else {
    console.log(`decode + resize to 224x224, ${images} synthetic 500x375 JPEGs, ${cores} cores`);
    for (const r of rows) console.log(`  ${r.imagesPerSecond.toFixed(0).padStart(6)} img/s  ${r.setting}`);
    console.log(`  → a GPU step at 5,000 img/s needs about ${result.coresFor5000ImagesPerSecond} such cores for decoding alone`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
