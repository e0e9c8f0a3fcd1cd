// Jazzer.js fuzz targets for the TypeScript parsers a user's files reach (scripts/fuzz-js.sh runs
// them; never CI). Each entry point takes the fuzzer's bytes as a file and reads it as a user would:
// it must load or fail with one of the package's typed errors (CmaeError). Anything else — a
// TypeError, a RangeError, an uncaught rejection, a hang or an allocation over libFuzzer's
// -rss_limit_mb — is a finding. Runs against the compiled package (dist/cjs): build it first.
'use strict';
const { mkdtempSync, writeFileSync, rmSync } = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const dist = path.join(__dirname, '..', '..', '..', 'dist', 'cjs');
const { CmaeError } = require(path.join(dist, 'errors.js'));
const { parseSafetensors, readSafetensors } = require(path.join(dist, 'io', 'safetensors.js'));
const { CMAE } = require(path.join(dist, 'models', 'cmae.js'));
const { readIdx } = require(path.join(dist, 'data', 'idx.js'));
const { parseCifar10Batch } = require(path.join(dist, 'data', 'cifar.js'));
const { decodeImageBytes } = require(path.join(dist, 'data', 'image-folder.js'));

const dir = mkdtempSync(path.join(os.tmpdir(), 'cmae-jazzer-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const asFile = (data, name) => {
  const file = path.join(dir, name);
  writeFileSync(file, data);
  return file;
};
const typedOnly = (error) => {
  if (!(error instanceof CmaeError)) throw error;
};
// A target that lets only CmaeErrors pass; synchronous where `read` is (Jazzer's --sync mode).
const guarded = (read) => (data) => {
  try {
    const pending = read(data);
    return pending instanceof Promise ? pending.then(() => undefined, typedOnly) : undefined;
  } catch (error) {
    return typedOnly(error);
  }
};

/** A safetensors file, then (when it says it is a cmae checkpoint) the model it describes. */
module.exports.checkpoint = guarded(async (data) => {
  const file = await readSafetensors(asFile(data, 'checkpoint.safetensors'));
  if (file.metadata.format !== 'cmae-checkpoint') return;
  const { model } = await CMAE.fromCheckpointFile(file, 'fuzz.safetensors');
  model.dispose();
});

/** The in-memory safetensors parser alone (synchronous: many more executions per second). */
module.exports.safetensors = guarded((data) => parseSafetensors(data, 'fuzz'));

/** An IDX file, raw or gzip'd (the reader decides by its magic bytes, as for Fashion-MNIST). */
module.exports.idx = guarded((data) => readIdx(asFile(data, 'images-idx3-ubyte')));

module.exports.cifar = guarded((data) => parseCifar10Batch(data, 'fuzz.bin'));

/** An image folder's file (PNG, JPEG, …): header check, then decoding with sharp. */
module.exports.image = guarded((data) => decodeImageBytes(data, 'fuzz.img', 32, 3));
