/**
 * The child process of memory.test.ts: one scenario of a long-lived process using the compiled
 * package (dist/, like a user's server; the addon is the one CMAE_ADDON_PATH or build/Release names,
 * src/native.ts). Prints one JSON line: the resident size after a warm-up and at the end (bytes,
 * process.memoryUsage().rss), and what else the scenario measured. A scenario stops early once
 * its growth passes `stopAbove` bytes, so a leaking build fails fast instead of filling the machine.
 *
 *   node memory-probe.cjs cycles <count> <stopAbove>     create a nano model, one training step, dispose
 *   node memory-probe.cjs loader <batches> <stopAbove>   DataLoader batches, each disposed by the consumer
 *   node memory-probe.cjs train <steps> <stopAbove>      train() on a DataLoader (micro)
 *   node memory-probe.cjs accounting                     what cmae reports to V8, around dispose and GC
 *   node memory-probe.cjs peak <steps> <recompute 0|1>   `cmae pretrain`'s set-up at tiny, batch 64, on
 *                                                        MNIST: the process's peak resident size (VmHWM)
 */
'use strict';
const path = require('node:path');
const cmae = require(path.resolve(__dirname, '..', '..', 'dist', 'cjs', 'index.js'));
const { AdamW, CMAE, DataLoader, Tensor, nativeMemory, train } = cmae;

const [scenario, countArg, stopArg] = process.argv.slice(2);
const count = Number(countArg);
const stopAbove = Number(stopArg);
const rss = () => process.memoryUsage().rss;

// n RGB images of side s, deterministic bytes.
function dataset(n, s) {
  const pixels = new Uint8Array(n * s * s * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37 + (i >> 9)) % 251;
  return { name: 'probe', size: n, height: s, width: s, channels: 3, pixels };
}

// Runs `body(i)` count times; the warm-up is the first tenth (at least 5): allocator pools, the
// thread pools' stacks and the JS heap settle there.
async function repeat(body) {
  const warmup = Math.max(5, Math.floor(count / 10));
  let warm = 0;
  let done = 0;
  for (let i = 0; i < count; i++) {
    await body(i);
    done = i + 1;
    if (done === warmup) warm = rss();
    if (done > warmup && rss() - warm > stopAbove) break;
  }
  return { warm, end: rss(), done };
}

async function cycles() {
  const images = new Float32Array(2 * 1 * 32 * 32).map((_, k) => Math.sin(k));
  return repeat(async (i) => {
    const model = await CMAE.create({ preset: 'nano', seed: i });
    const optimizer = new AdamW(model);
    await model.lossAndGrad({ images, targetImages: images });
    await optimizer.step();
    optimizer.dispose();
    model.dispose();
  });
}

async function loader() {
  // Batches of 16 micro-sized views (49 KB each, below the mmap threshold): the heap path.
  const data = new DataLoader(dataset(256, 16), { batchSize: 16, seed: 1, augment: { outSize: 16 } });
  let epoch = 0;
  let iterator = data.batches(epoch)[Symbol.asyncIterator]();
  return repeat(async () => {
    let next = await iterator.next();
    if (next.done) {
      iterator = data.batches(++epoch)[Symbol.asyncIterator]();
      next = await iterator.next();
    }
    next.value.dispose();
  });
}

async function trainLoop() {
  const model = await CMAE.create({ preset: 'micro', seed: 0 });
  const data = new DataLoader(dataset(256, 16), { batchSize: 16, seed: 1, augment: { outSize: 16 } });
  const warmup = Math.max(5, Math.floor(count / 10));
  let warm = 0;
  const controller = new AbortController();
  const result = await train({
    model,
    data,
    steps: count,
    signal: controller.signal,
    onStep: ({ step }) => {
      if (step === warmup) warm = rss();
      if (step > warmup && rss() - warm > stopAbove) controller.abort();
    },
  });
  const end = rss();
  model.dispose();
  return { warm, end, done: result.steps };
}

// What cmae reports to V8 (nativeMemory().reportedBytes; process.memoryUsage() does not show it)
// and what the CPU backend holds, at a baseline and after each way of letting go.
async function accounting() {
  const settle = async () => {
    for (let i = 0; i < 4; i++) {
      global.gc();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  const snapshot = () => {
    const m = nativeMemory();
    return { reported: m.reportedBytes, cpu: m.cpuAllocatedBytes, arrayBuffers: process.memoryUsage().arrayBuffers };
  };
  const out = {};
  await settle();
  out.baseline = snapshot();

  // Tensors: disposed; a view kept past dispose and then dropped; a tensor left to the GC.
  let t = Tensor.empty([1 << 20]);
  out.tensorAlive = snapshot();
  t.dispose();
  out.tensorDisposed = snapshot();
  t = Tensor.empty([1 << 20]);
  let view = t.view();
  t.dispose();
  out.viewAlive = snapshot();
  view = undefined;
  t = undefined;
  Tensor.empty([1 << 20]); // never disposed: the finalizer's job
  await settle();
  out.viewsAndTensorsCollected = snapshot();

  // A model with its optimizer and a planned workspace, disposed model first, then the optimizer.
  const images = new Float32Array(4 * 3 * 16 * 16).map((_, k) => Math.cos(k));
  let model = await CMAE.create({ preset: 'micro', seed: 1 });
  let optimizer = new AdamW(model);
  await model.lossAndGrad({ images, targetImages: images });
  await optimizer.step();
  out.modelAlive = snapshot();
  model.dispose();
  optimizer.dispose();
  out.modelDisposed = snapshot();

  // The same, left to the GC.
  model = await CMAE.create({ preset: 'micro', seed: 2 });
  optimizer = new AdamW(model);
  await model.lossAndGrad({ images, targetImages: images });
  model = undefined;
  optimizer = undefined;
  await settle();
  out.modelCollected = snapshot();
  return out;
}

// The peak resident size of a tiny, batch-64 pre-training process as `cmae pretrain` sets it up
// (the bundled MNIST in memory, a DataLoader with prefetch, train() with its AdamW), with or
// without activation recomputation.
async function peak() {
  const recompute = stopArg === '1';
  const data = new DataLoader(await cmae.loadMnist(), { batchSize: 64, seed: 0, augment: { outSize: 32, shiftRange: 7 }, targetView: 'shifted' });
  const model = await CMAE.create({ preset: 'tiny', channels: 1, seed: 0 });
  model.recomputeActivations = recompute;
  const result = await train({ model, data, steps: count });
  model.dispose();
  const hwm = Number(/VmHWM:\s+(\d+)/.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
  return { peak: hwm, done: result.steps, recompute };
}

const scenarios = { cycles, loader, train: trainLoop, accounting, peak };
scenarios[scenario]().then(
  (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
  (error) => {
    process.stderr.write(`${error.stack}\n`);
    process.exit(1);
  },
);
