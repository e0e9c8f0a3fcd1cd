/**
 * The child process of kill.test.ts: trains `micro` on a fixed synthetic dataset with a checkpoint
 * after every step, resuming from the checkpoint when there is one, against the compiled package
 * (dist/). The parent kills it with SIGKILL at random moments, checkpoint writes included.
 *
 *   node train-child.cjs <outDir> <steps>
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { CMAE, DataLoader, setNumThreads, train } = require(path.resolve(__dirname, '..', '..', 'dist', 'cjs', 'index.js'));

const [outDir, stepsArg] = process.argv.slice(2);
const steps = Number(stepsArg);
const n = 64;
const s = 16;
const pixels = new Uint8Array(n * s * s * 3);
for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37 + (i >> 9)) % 251;

(async () => {
  setNumThreads(1); // the parent and its other children share the cores
  const model = await CMAE.create({ preset: 'micro', seed: 5 });
  const data = new DataLoader({ name: 'kill', size: n, height: s, width: s, channels: 3, pixels }, { batchSize: 8, seed: 5, augment: { outSize: s, shiftRange: 3 } });
  const checkpoint = path.join(outDir, 'checkpoint.safetensors');
  const result = await train({
    model, data, steps, lr: 1e-3, outDir, checkpointEvery: 1,
    resumeFrom: fs.existsSync(checkpoint) ? checkpoint : undefined,
    onStep: (info) => process.stdout.write(`step ${info.step}\n`),
  });
  model.dispose();
  process.stdout.write(`done ${result.steps}\n`);
})().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
