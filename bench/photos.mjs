// Synthetic photographs for the folder benchmarks: `count` JPEGs of ImageNet's typical size
// (500×375, quality 90), smooth colour fields with a little noise, so that their sizes are like
// photographs' (~60–120 kB), not noise's.
import { createRequire } from 'node:module';
import * as path from 'node:path';

const require = createRequire(import.meta.url);
const sharp = require('sharp');

export const PHOTO_SOURCE = '500x375 JPEG q90';

export async function writePhotos(dir, count) {
  const [W, H] = [500, 375];
  for (let i = 0; i < count; i++) {
    const px = Buffer.alloc(W * H * 3);
    let s = i * 2654435761 + 1;
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        s = (s * 1103515245 + 12345) >>> 0;
        const n = (s >>> 24) & 31;
        const o = (y * W + x) * 3;
        px[o] = (x * 255) / W + n;
        px[o + 1] = (y * 255) / H + n;
        px[o + 2] = ((x + y + i * 17) % 256) ^ n;
      }
    await sharp(px, { raw: { width: W, height: H, channels: 3 } }).jpeg({ quality: 90 }).toFile(path.join(dir, `${String(i).padStart(5, '0')}.jpg`));
  }
}
