/**
 * A new user's install, without a compiler: the main package and this platform's prebuilt package
 * (npm run prebuild --no-build: it packs this checkout's build/Release/cmae.node) are packed,
 * installed into an empty app with `--ignore-scripts`, and the app trains and runs `cmae info`.
 * Every command in the app runs with PATH holding only `node` and `npm`.
 *
 * cmae's own dependencies (sharp, commander, protobufjs, ...) are copied from this checkout's
 * node_modules into the app before the install, and npm runs `--offline` with an empty cache: so
 * nothing comes from a registry (CI may have no network, and what the test checks is cmae's
 * packaging, not the registry), and npm keeps the copies because they satisfy cmae's ranges.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { platformPackageName, runtimePlatform } from '../../src/native';

const root = path.resolve(__dirname, '..', '..');
const platformPackage = platformPackageName(runtimePlatform());

let work: string;
let app: string;
let bin: string;

function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): SpawnSyncReturns<string> {
  return spawnSync(command, args, { encoding: 'utf8', timeout: 90_000, ...options });
}

function ok(result: SpawnSyncReturns<string>, what: string): string {
  if (result.status !== 0) throw new Error(`${what} exited ${result.status}:\n${result.stdout}\n${result.stderr}\n${result.error ?? ''}`);
  return result.stdout;
}

/** The environment of every command in the app: no compiler can be found through it. */
function appEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { HOME: work, PATH: bin, npm_config_cache: path.join(work, 'npm-cache'), npm_config_update_notifier: 'false', ...extra };
}

/**
 * The packages cmae depends on at run time (dependencies and optional dependencies, transitively),
 * as they are installed in `from`/node_modules: each returned folder is a top-level one (a nested
 * node_modules comes along inside its parent).
 */
function runtimeDependencyFolders(from: string): string[] {
  const seen = new Set<string>();
  const installed = (start: string, name: string): string | undefined => {
    for (let dir = start; ; dir = path.dirname(dir)) {
      const candidate = path.join(dir, 'node_modules', name);
      if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
      if (dir === from || path.dirname(dir) === dir) return undefined;
    }
  };
  const visit = (dir: string) => {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    for (const name of Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies })) {
      if (name.startsWith('@cmae/')) continue; // the prebuilt comes from its tarball
      const found = installed(dir, name);
      if (!found || seen.has(found)) continue;
      seen.add(found);
      visit(found);
    }
  };
  visit(from);
  return [...seen].filter((dir) => path.relative(from, dir).split(path.sep).filter((s) => s === 'node_modules').length === 1);
}

function copyRuntimeDependencies(into: string): void {
  const modules = path.join(root, 'node_modules');
  for (const dir of runtimeDependencyFolders(root)) {
    fs.cpSync(dir, path.join(into, 'node_modules', path.relative(modules, dir)), { recursive: true, verbatimSymlinks: true });
  }
  // npm reinstalls (so would fetch) a package whose bin links are missing: bring those along too.
  const binDir = path.join(into, 'node_modules', '.bin');
  fs.mkdirSync(binDir, { recursive: true });
  for (const link of fs.readdirSync(path.join(modules, '.bin'))) {
    const target = fs.readlinkSync(path.join(modules, '.bin', link));
    if (fs.existsSync(path.resolve(binDir, target))) fs.symlinkSync(target, path.join(binDir, link));
  }
}

function pack(): { main: string; prebuilt: string } {
  const tarballs = path.join(work, 'tarballs');
  fs.mkdirSync(tarballs);
  // dist/ is current: `npm ci` ran prepare (build:ts), and CLI tests use dist as well.
  const [packed] = JSON.parse(ok(run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tarballs], { cwd: root }), 'npm pack'));
  const prebuiltOut = ok(run(process.execPath, [path.join(root, 'scripts', 'prebuild.cjs'), '--no-build', '--out', tarballs], { cwd: root }), 'prebuild --no-build');
  return { main: path.join(tarballs, packed.filename), prebuilt: prebuiltOut.trim().split('\n').pop() as string };
}

beforeAll(() => {
  for (const built of [path.join(root, 'dist', 'cjs', 'index.js'), path.join(root, 'build', 'Release', 'cmae.node')]) {
    if (!fs.existsSync(built)) throw new Error(`${built} is missing: this test packs the checkout's build (npm ci makes both)`);
  }
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'cmae-fresh-app-'));
  bin = path.join(work, 'bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  fs.symlinkSync(ok(run('sh', ['-c', 'command -v npm'], { cwd: root }), 'command -v npm').trim(), path.join(bin, 'npm'));
  app = path.join(work, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), `${JSON.stringify({ name: 'fresh-app', private: true }, null, 2)}\n`);
  const { main, prebuilt } = pack();
  copyRuntimeDependencies(app);
  ok(run('npm', ['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', main, prebuilt], { cwd: app, env: appEnv() }), 'npm install of the tarballs');
}, 110_000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe(`a fresh app with cmae and ${platformPackage}, installed without scripts or compiler`, () => {
  it('has no compiler or build tool on its PATH', () => {
    for (const tool of ['cc', 'gcc', 'g++', 'c++', 'clang++', 'cmake', 'make', 'ninja', 'nvcc']) {
      const found = run('sh', ['-c', `command -v ${tool}`], { cwd: app, env: appEnv() });
      expect(found.status, `${tool} resolves to ${found.stdout}`).not.toBe(0);
    }
  });

  it('installed the prebuilt addon and no local build', () => {
    expect(fs.existsSync(path.join(app, 'node_modules', ...platformPackage.split('/'), 'cmae.node'))).toBe(true);
    // the MPI plugin of data-parallel training, beside it (this build found Debian's Open MPI)
    expect(fs.existsSync(path.join(app, 'node_modules', ...platformPackage.split('/'), 'cmae_mpi.so'))).toBe(true);
    expect(fs.existsSync(path.join(app, 'node_modules', 'cmae', 'build'))).toBe(false);
  });

  it('runs a training step on the prebuilt addon', () => {
    const script = `
      const { CMAE, AdamW, info } = require('cmae');
      (async () => {
        const model = await CMAE.create({ preset: 'micro', seed: 1 });
        const opt = new AdamW(model, { lr: 1e-3 });
        const images = Float32Array.from({ length: 2 * 3 * 16 * 16 }, (_, i) => Math.sin(i * 0.37));
        const targetImages = Float32Array.from(images, (v, i) => Math.cos(i * 0.11) * v);
        const first = await model.lossAndGrad({ images, targetImages });
        await opt.step({ lr: 1e-3 });
        await model.updateMomentum(0.996);
        const second = await model.lossAndGrad({ images, targetImages });
        model.dispose();
        console.log(JSON.stringify({ first: first.loss, second: second.loss, addon: info().addon }));
      })().catch((error) => { console.error(error); process.exit(1); });`;
    const out = JSON.parse(ok(run('node', ['-e', script], { cwd: app, env: appEnv() }), 'the training step'));
    expect(Number.isFinite(out.first)).toBe(true);
    expect(Number.isFinite(out.second)).toBe(true);
    expect(out.second).not.toBe(out.first); // the optimizer step changed the parameters
    expect(out.addon.source).toBe('prebuilt');
    expect(fs.realpathSync(out.addon.path)).toBe(fs.realpathSync(path.join(app, 'node_modules', ...platformPackage.split('/'), 'cmae.node')));
  });

  it('runs `cmae info` (text and --json)', () => {
    const cli = path.join(app, 'node_modules', '.bin', 'cmae');
    expect(ok(run(cli, ['info'], { cwd: app, env: appEnv() }), 'cmae info')).toMatch(/^cmae\s+0\.\d+\.\d+/);
    const parsed = JSON.parse(ok(run(cli, ['info', '--json'], { cwd: app, env: appEnv() }), 'cmae info --json'));
    expect(parsed.addon.source).toBe('prebuilt');
    expect(parsed.platform).toBe(`${process.platform}-${process.arch}`);
    expect(fs.realpathSync(parsed.distributed.plugin)).toBe(fs.realpathSync(path.join(app, 'node_modules', ...platformPackage.split('/'), 'cmae_mpi.so')));
  });

  it('its install script takes the prebuilt and compiles nothing', () => {
    const installScript = path.join(app, 'node_modules', 'cmae', 'scripts', 'install.cjs');
    const out = ok(run('node', [installScript], { cwd: path.dirname(path.dirname(installScript)), env: appEnv() }), 'the install script');
    expect(out).toContain(`using the prebuilt addon`);
    expect(out).toContain(path.join(...platformPackage.split('/'), 'cmae.node'));
    expect(out).not.toContain('building the addon from source');
  });

  it('its install script compiles when asked to (--build-from-source), and here fails for want of cmake', () => {
    const cmaeDir = path.join(app, 'node_modules', 'cmae');
    const result = run('node', [path.join(cmaeDir, 'scripts', 'install.cjs')], { cwd: cmaeDir, env: appEnv({ npm_config_build_from_source: 'true' }) });
    expect(result.stdout).toContain('building the addon from source: cmake-js compile');
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/compiler|cmake/i); // cmake-js's own complaint
    expect(fs.existsSync(path.join(cmaeDir, 'build', 'Release', 'cmae.node'))).toBe(false);
  });

  it('without the prebuilt, the loader error names the platform package it looked for', () => {
    const installed = path.join(app, 'node_modules', ...platformPackage.split('/'));
    const aside = `${installed}.aside`;
    fs.renameSync(installed, aside);
    try {
      const result = run('node', ['-e', "require('cmae').info()"], { cwd: app, env: appEnv() });
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain('AddonLoadError');
      expect(result.stderr).toContain(`${platformPackage} (the prebuilt for ${runtimePlatform()}): not installed`);
      expect(result.stderr).toContain('npm install --include=optional cmae');
    } finally {
      fs.renameSync(aside, installed);
    }
  });
});
