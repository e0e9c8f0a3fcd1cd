#!/usr/bin/env node
// cmae's install script (package.json "install"), and the one definition of the from-source build.
//
// Installed as a dependency, it first tries the addon the loader would take (src/native.ts: the
// prebuilt platform package, a local build) and exits 0 when one loads: a prebuilt install needs
// no compiler. It compiles with cmake-js when nothing loads, when asked (`npm install
// --build-from-source`, which npm passes on as npm_config_build_from_source, or this script's own
// --build-from-source flag), and always in a development checkout (the package not under a
// node_modules folder), whose sources are the point.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

/** cmake-js over CMakeLists.txt; `command` is 'compile' (incremental) or 'rebuild' (clean), `defines` extra -D options. */
function buildFromSource({ command = 'compile', defines = {} } = {}) {
  const cmakeJs = path.join(path.dirname(require.resolve('cmake-js/package.json', { paths: [root] })), 'bin', 'cmake-js');
  const allDefines = { CMAE_CUDA: process.env.CMAE_CUDA || 'AUTO', ...defines };
  const args = [cmakeJs, command, '--parallel', '2', ...Object.entries(allDefines).map(([k, v]) => `--CD${k}=${v}`)];
  console.log(`cmae: building the addon from source: cmake-js ${args.slice(1).join(' ')}`);
  const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (result.error) throw result.error;
  return result.status ?? 1;
}

function buildFromSourceRequested(argv) {
  const flag = process.env.npm_config_build_from_source;
  return argv.includes('--build-from-source') || (flag !== undefined && flag !== '' && flag !== 'false');
}

function isDevelopmentCheckout() {
  return !root.split(path.sep).includes('node_modules');
}

/** The loader's answer, or why it has none. dist/ is in every packed cmae; a checkout may not have built it yet. */
function loadInstalledAddon() {
  const loader = path.join(root, 'dist', 'cjs', 'native.js');
  if (!fs.existsSync(loader)) return { error: `${loader} is missing` };
  try {
    return { origin: require(loader).addonOrigin() };
  } catch (error) {
    return { error: error.message };
  }
}

function main(argv) {
  if (buildFromSourceRequested(argv)) return buildFromSource();
  if (isDevelopmentCheckout()) return buildFromSource();
  const { origin, error } = loadInstalledAddon();
  if (origin) {
    console.log(`cmae: using the ${origin.source} addon ${origin.path}`);
    return 0;
  }
  console.log(`cmae: no addon loads yet, so it is built from source (needs g++ >= 9, cmake >= 3.15):\n${error}`);
  return buildFromSource();
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));

module.exports = { buildFromSource };
