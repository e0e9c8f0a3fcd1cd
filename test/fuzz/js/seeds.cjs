// Writes one valid input per target into CORPUS/<target>/ (the fuzzer's starting points):
//   node test/fuzz/js/seeds.cjs CORPUS
'use strict';
const { mkdirSync, writeFileSync, readFileSync, rmSync } = require('node:fs');
const path = require('node:path');
const { gzipSync } = require('node:zlib');
const dist = path.join(__dirname, '..', '..', '..', 'dist', 'cjs');
const { CMAE } = require(path.join(dist, 'models', 'cmae.js'));
const { encodeIdx } = require(path.join(dist, 'data', 'idx.js'));
const { encodeCifar10Batch } = require(path.join(dist, 'data', 'cifar.js'));
const sharp = require('sharp');

(async () => {
  const corpus = process.argv[2];
  const put = (target, name, bytes) => {
    mkdirSync(path.join(corpus, target), { recursive: true });
    writeFileSync(path.join(corpus, target, name), bytes);
  };
  // The smallest model a checkpoint can describe (depth 1, 8 wide): small seeds mutate faster.
  const model = await CMAE.create({ preset: 'micro', dim: 8, depth: 1, heads: 1, decoderDim: 8, decoderHeads: 1,
    featureDecoderDim: 8, featureDecoderHeads: 1, projectorHidden: 8, projectorDim: 4, seed: 1 });
  mkdirSync(corpus, { recursive: true });
  const ckpt = path.join(corpus, 'seed.safetensors');
  await model.save(ckpt);
  model.dispose();
  const bytes = readFileSync(ckpt);
  rmSync(ckpt);
  put('checkpoint', 'micro.safetensors', bytes);
  put('safetensors', 'micro.safetensors', bytes);
  const pixels = Uint8Array.from({ length: 3 * 5 * 4 }, (_, i) => (i * 37) % 256);
  const idx = encodeIdx(pixels, [3, 5, 4]);
  put('idx', 'images.idx', idx);
  put('idx', 'images.idx.gz', gzipSync(idx));
  put('cifar', 'two.bin', encodeCifar10Batch(Uint8Array.from({ length: 2 * 32 * 32 * 3 }, (_, i) => i % 251), [3, 7]));
  const rgb = { raw: { width: 6, height: 5, channels: 3 } };
  const raw = Buffer.from(Uint8Array.from({ length: 90 }, (_, i) => (i * 53) % 256));
  put('image', 'rgb.png', await sharp(raw, rgb).png().toBuffer());
  put('image', 'rgb.jpg', await sharp(raw, rgb).jpeg({ quality: 80 }).toBuffer());
  put('image', 'rgb-progressive.jpg', await sharp(raw, rgb).jpeg({ progressive: true }).toBuffer());
  put('image', 'rgb.gif', await sharp(raw, rgb).gif().toBuffer());
  put('image', 'rgb.webp', await sharp(raw, rgb).webp().toBuffer());
})();
