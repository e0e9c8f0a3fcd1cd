// One process of the distributed tests (test/distributed/*.test.ts), as a user's program would be:
// under `mpirun -np N` it joins the job and trains data-parallel; started plainly it trains alone.
// Trains a micro model of argv[3]'s method for argv[4] steps on seeded random images at global
// batch argv[5]; writes out/<rank or "single">.json with every step's losses and the final
// parameters (as hex of their float32 bits, to compare exactly).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const cmae = require('../../dist/cjs/index.js');

async function main() {
  const [outDir, method, stepsArg, batchArg, extra] = process.argv.slice(2);
  const steps = Number(stepsArg), batchSize = Number(batchArg);
  const options = extra ? JSON.parse(extra) : {};
  const job = cmae.launchedByMpi() ? await cmae.DistributedJob.join({ timeoutSeconds: options.timeoutSeconds ?? 60, bucketMiB: options.bucketMiB }) : undefined;
  if (job) cmae.setNumThreads(1); // one compute thread per rank, as the test asks
  const model = await cmae.CMAE.create({ preset: options.preset ?? 'micro', mode: method, seed: 7, device: options.device ?? 'cpu' });
  const { imageSize, channels } = model.config;
  // The checksum test: rank 1 starts from other parameters (one element nudged), which the ranks'
  // start-up agreement cannot see.
  if (options.perturbRank1 && job && job.rank === 1) model.native.writeArena('params', Float32Array.of(0.5), 0);
  // The same global batches on every rank: a pure function of (step, sample).
  const data = {
    batchSize,
    stepsPerEpoch: 1000,
    async *batches(epoch, start = 0) {
      for (let b = start; b < 1000; b++) {
        const step = epoch * 1000 + b;
        if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs)); // (fault tests: time to act between steps)
        if (options.abortAtStep !== undefined && step === options.abortAtStep && (job ? job.rank : 0) === (options.abortRank ?? 0)) controller.abort();
        const n = batchSize * channels * imageSize * imageSize;
        const views = [0, 1].map((v) => {
          const a = new Float32Array(n);
          let s = (step * 7919 + v * 104729 + 1) >>> 0;
          for (let i = 0; i < n; i++) {
            s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
            a[i] = s / 2 ** 32 - 0.5;
          }
          return cmae.Tensor.from(a, [batchSize, channels, imageSize, imageSize]);
        });
        yield { images: views[0], targetImages: cmae.methods[method].targetView === 'none' ? (views[1].dispose(), undefined) : views[1] };
      }
    },
  };
  if (options.outDir) {
    fs.mkdirSync(options.outDir, { recursive: true });
    fs.writeFileSync(path.join(options.outDir, `pid-${job ? job.rank : 'single'}`), String(process.pid));
  }
  // The abort test: this rank's signal fires at a step; every rank must stop after the same one.
  const controller = new AbortController();
  const history = [];
  let modelBytes = 0;
  const result = await cmae.train({
    model,
    data,
    ...(options.seconds !== undefined ? { seconds: options.seconds } : { steps }),
    lr: options.mismatch && job && job.rank === 1 ? 2e-3 : 1e-3, // (the mismatch test: rank 1 runs another run)
    warmupFraction: 0.1,
    momentumBase: 0.99,
    momentumEnd: 0.999,
    outDir: options.outDir,
    checkpointEvery: options.checkpointEvery,
    resumeFrom: options.resumeFrom,
    distributed: job,
    checksumEvery: job ? options.checksumEvery ?? 5 : 0,
    signal: controller.signal,
    onStep: (s) => {
      history.push(s);
      // its arenas and training workspace, while the job holds it
      if (history.length === 1) modelBytes = model.native.info().memoryBytes;
    },
  });
  const params = Buffer.from((await model.native.readArenaAsync('params')).buffer).toString('hex');
  const name = job ? String(job.rank) : 'single';
  fs.writeFileSync(
    path.join(outDir, `${name}.json`),
    JSON.stringify({ rank: job?.rank, worldSize: job?.worldSize, engine: job?.engine, trainable: model.trainableCount, modelBytes, maxRssKiB: process.resourceUsage().maxRSS, steps: result.steps, aborted: result.aborted, losses: history.map((h) => [h.loss, h.reconstruction, h.contrastive, h.gradNorm]), params }),
  );
  model.dispose();
  if (job) await job.leave();
}

main().catch((e) => {
  process.stderr.write(`${e.name}: ${e.message}\n`);
  process.exit(1);
});
