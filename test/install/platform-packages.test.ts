/**
 * The prebuilt platform packages and the main package.json agree: every optional dependency
 * @cmae/<platform> has its template in npm/<platform>/ (the folder `npm run prebuild` packs), with
 * cmae's version and os/cpu/libc fields that match its name; the main package's os/cpu fields are
 * what those packages cover; the licence is one MIT licence everywhere.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addonOrigin, platformPackageName, prebuiltPlatforms, runtimePlatform } from '../../src/native';

const root = path.resolve(__dirname, '..', '..');
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));
const main = readJson(path.join(root, 'package.json'));
const templates = fs.readdirSync(path.join(root, 'npm')).filter((dir) => fs.existsSync(path.join(root, 'npm', dir, 'package.json')));

/** What npm's os/cpu/libc fields say for a platform triple such as linux-x64-gnu or darwin-arm64. */
function fieldsOf(platform: string): { os: string[]; cpu: string[]; libc?: string[] } {
  const [os, cpu, libc] = platform.split('-');
  return { os: [os], cpu: [cpu], ...(libc ? { libc: [libc === 'gnu' ? 'glibc' : libc] } : {}) };
}

describe('platform packages', () => {
  it('the optional dependencies are exactly the templates under npm/, at cmae\'s version', () => {
    expect(templates.length).toBeGreaterThan(0);
    expect(Object.keys(main.optionalDependencies).sort()).toEqual(templates.map((platform) => platformPackageName(platform)).sort());
    for (const platform of templates) expect(main.optionalDependencies[platformPackageName(platform)], platform).toBe(main.version);
    expect(prebuiltPlatforms().sort()).toEqual([...templates].sort());
    expect(main.workspaces).toContain('npm/*'); // npm ci links the templates, so the lockfile stays valid before a publish
  });

  for (const platform of templates) {
    it(`npm/${platform}: name, version, licence, os/cpu/libc and the addon it exports`, () => {
      const manifest = readJson(path.join(root, 'npm', platform, 'package.json'));
      expect(manifest.name).toBe(platformPackageName(platform));
      expect(manifest.version).toBe(main.version);
      expect(manifest.license).toBe(main.license);
      expect({ os: manifest.os, cpu: manifest.cpu, ...(manifest.libc ? { libc: manifest.libc } : {}) }).toEqual(fieldsOf(platform));
      expect(manifest.files).toEqual(['cmae.node', 'cmae_mpi.so']);
      expect(manifest.exports['./cmae.node']).toBe('./cmae.node');
      expect(manifest.exports['./cmae_mpi.so']).toBe('./cmae_mpi.so');
      expect(fs.existsSync(path.join(root, 'npm', platform, 'README.md'))).toBe(true);
    });
  }

  it('the main package installs where the platform packages cover (os, cpu)', () => {
    const covered = templates.map(fieldsOf);
    expect([...main.os].sort()).toEqual([...new Set(covered.flatMap((f) => f.os))].sort());
    expect([...main.cpu].sort()).toEqual([...new Set(covered.flatMap((f) => f.cpu))].sort());
  });

  it('packs every script a from-source build runs (binding.gyp\'s and the install script\'s)', () => {
    const gyp = fs.readFileSync(path.join(root, 'binding.gyp'), 'utf8');
    const scripts = [...new Set([...gyp.matchAll(/node (scripts\/[\w.-]+)/g)].map((m) => m[1]))];
    expect(scripts).toContain('scripts/list-sources.cjs');
    for (const script of [...scripts, 'scripts/install.cjs']) expect(main.files, script).toContain(script);
  });

  it('ships one MIT LICENSE, as package.json says', () => {
    expect(main.license).toBe('MIT');
    expect(main.files).toContain('LICENSE');
    const text = fs.readFileSync(path.join(root, 'LICENSE'), 'utf8');
    expect(text.startsWith('MIT License\n')).toBe(true);
    expect(text).toContain('THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND');
  });

  it('names this machine\'s platform with its C library, as the packages are named', () => {
    const expected = `${process.platform}-${process.arch}`;
    if (process.platform !== 'linux') {
      expect(runtimePlatform()).toBe(expected);
      return;
    }
    // getconf knows GNU_LIBC_VERSION only on glibc: an independent answer to the loader's process.report one.
    const glibc = spawnSync('getconf', ['GNU_LIBC_VERSION'], { encoding: 'utf8' }).status === 0;
    expect(runtimePlatform()).toBe(`${expected}-${glibc ? 'gnu' : 'musl'}`);
  });

  it('a checkout loads its own build before any prebuilt (the one `npm install --build-from-source` makes wins too)', () => {
    const expected = process.env.CMAE_ADDON_PATH
      ? { source: 'CMAE_ADDON_PATH', path: path.resolve(process.env.CMAE_ADDON_PATH) }
      : { source: 'local build', path: path.join(root, 'build', 'Release', 'cmae.node') };
    expect(addonOrigin()).toEqual(expected);
  });
});
