/**
 * The worker of lifetimes.test.ts: three AdamW steps of a micro model with the compiled package
 * (dist/), inside a worker thread, posting the losses back.
 */
'use strict';
const path = require('node:path');
const { parentPort, workerData } = require('node:worker_threads');
const { AdamW, CMAE } = require(path.resolve(__dirname, '..', '..', 'dist', 'cjs', 'index.js'));

(async () => {
  const model = await CMAE.create({ preset: 'micro', seed: workerData.seed });
  const opt = new AdamW(model, { lr: 1e-3 });
  const x = Float32Array.from(workerData.images);
  const losses = [];
  for (let s = 0; s < 3; s++) {
    losses.push((await model.lossAndGrad({ images: x, targetImages: x })).loss);
    await opt.step();
  }
  opt.dispose();
  model.dispose();
  parentPort.postMessage(losses);
})();
