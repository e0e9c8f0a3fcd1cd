#!/usr/bin/env node
// `npm run prebuild`: builds cmae.node for this platform and packs its platform package
// (npm/<platform>/, e.g. @cmae/linux-x64-gnu) into a tarball ready for `npm publish`.
//
//   node scripts/prebuild.cjs [--no-build] [--out DIR]
//
// The build is a clean cmake-js rebuild with the CUDA backend (CMAE_CUDA=ON unless CMAE_CUDA says
// otherwise: cudart is linked statically, so the addon still loads where no driver is). libstdc++
// and libgomp stay shared: linking libstdc++.a on Debian 12 raised the glibc floor from 2.34 to
// 2.36, and libgomp.a's local-exec TLS cannot go into a dlopen()ed library. The build machine's
// glibc is therefore the floor of the prebuilt: build releases on the oldest distribution to serve.
// --no-build packs build/Release/cmae.node as it is (the install test packs CI's build that way).
// The tarball goes to DIR (default: the repo root) and its path is the last line printed.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { buildFromSource } = require('./install.cjs');

const root = path.resolve(__dirname, '..');

function fail(message) {
  console.error(`prebuild: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const options = { build: true, out: root };
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === '--no-build') options.build = false;
    else if (argv[i] === '--out' && argv[i + 1]) options.out = path.resolve(argv[(i += 1)]);
    else fail(`unknown argument ${JSON.stringify(argv[i])}; usage: node scripts/prebuild.cjs [--no-build] [--out DIR]`);
  }
  return options;
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/** npm itself: the one running this script when started by `npm run`, else the one on PATH. */
function npm(args, options) {
  const cli = process.env.npm_execpath;
  const [command, prefix] = cli && /npm-cli\.js$/.test(cli) ? [process.execPath, [cli]] : ['npm', []];
  const result = spawnSync(command, [...prefix, ...args], { encoding: 'utf8', ...options });
  if (result.status !== 0) fail(`npm ${args.join(' ')} failed:\n${result.stderr || result.error}`);
  return result.stdout;
}

function main(argv) {
  const options = parseArgs(argv);
  const loaderPath = path.join(root, 'dist', 'cjs', 'native.js');
  if (!fs.existsSync(loaderPath)) fail(`${loaderPath} is missing: run \`npm run build:ts\` first`);
  const { runtimePlatform, platformPackageName } = require(loaderPath);
  const platform = runtimePlatform();
  const name = platformPackageName(platform);
  const templateDir = path.join(root, 'npm', platform);
  if (!fs.existsSync(path.join(templateDir, 'package.json'))) {
    fail(`no platform package for ${platform}: add npm/${platform}/ (package.json, README.md) and list ${name} in optionalDependencies`);
  }
  const cmae = readJson(path.join(root, 'package.json'));
  const template = readJson(path.join(templateDir, 'package.json'));
  if (template.name !== name) fail(`npm/${platform}/package.json is named ${template.name}, expected ${name}`);
  if (template.version !== cmae.version) fail(`npm/${platform}/package.json has version ${template.version}, cmae has ${cmae.version}`);
  if ((cmae.optionalDependencies || {})[name] !== cmae.version) fail(`package.json must list "${name}": "${cmae.version}" in optionalDependencies`);

  if (options.build) {
    const status = buildFromSource({ command: 'rebuild', defines: { CMAE_CUDA: process.env.CMAE_CUDA || 'ON' } });
    if (status !== 0) fail(`the build failed (exit ${status})`);
  }
  const addon = path.join(root, 'build', 'Release', 'cmae.node');
  if (!fs.existsSync(addon)) fail(`${addon} is missing: build it first (or drop --no-build)`);

  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'cmae-prebuild-'));
  try {
    for (const file of ['package.json', 'README.md']) fs.copyFileSync(path.join(templateDir, file), path.join(stage, file));
    fs.copyFileSync(path.join(root, 'LICENSE'), path.join(stage, 'LICENSE'));
    fs.copyFileSync(addon, path.join(stage, 'cmae.node'));
    // The MPI plugin when this build found an MPI: loaded only for data-parallel training, so the
    // addon installs and loads without MPI either way.
    const plugin = path.join(root, 'build', 'Release', 'cmae_mpi.so');
    if (fs.existsSync(plugin)) fs.copyFileSync(plugin, path.join(stage, 'cmae_mpi.so'));
    else console.log('cmae: no cmae_mpi.so in this build (no MPI found): the package has no data-parallel training');
    // Refuse to pack an addon that does not load here (a wrong-platform build, a missing library).
    const probe = spawnSync(process.execPath, ['-e', 'require(process.argv[1]).info()', path.join(stage, 'cmae.node')], { encoding: 'utf8' });
    if (probe.status !== 0) fail(`the built addon does not load:\n${probe.stderr}`);
    fs.mkdirSync(options.out, { recursive: true });
    const [packed] = JSON.parse(npm(['pack', stage, '--pack-destination', options.out, '--json']));
    console.log(path.join(options.out, packed.filename));
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

main(process.argv.slice(2));
