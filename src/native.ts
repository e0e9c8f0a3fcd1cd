/**
 * Loads the compiled addon (cmae.node) on first use. Loading is lazy so that `import 'cmae'` never
 * throws; the first call that needs native code does, with one error that says what was tried,
 * why it failed and how to fix it.
 *
 * Where it looks, in order:
 *   1. CMAE_ADDON_PATH, when set;
 *   2. a local build, build/Release (or build/Debug) in the package: a development checkout's, or
 *      the one the install script made (no prebuilt matched, or `--build-from-source`);
 *   3. the prebuilt platform package @cmae/<platform> (an optional dependency, sharp's way).
 * A local build comes before the prebuilt because npm installs the matching optional dependency
 * even under `--build-from-source`: the build that flag asked for must be the one that runs.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { AddonLoadError, nativeErrorClasses } from './errors';
import type { NativeBinding } from './binding-types';

/** Where the loaded addon came from (`info().addon`). */
export interface AddonOrigin {
  source: 'CMAE_ADDON_PATH' | 'local build' | 'prebuilt';
  path: string;
}

let binding: NativeBinding | undefined;
let origin: AddonOrigin | undefined;

/** Directory of the installed package: the nearest parent holding cmae's package.json (works from dist/cjs and from src under vitest). */
export const packageRoot = findPackageRoot(__dirname);

function findPackageRoot(start: string): string {
  let dir = start;
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    if (existsSync(candidate)) {
      try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        if ((require(candidate) as { name?: string }).name === 'cmae') return dir;
      } catch {
        // unreadable package.json: keep walking up
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve(start, '..', '..');
    dir = parent;
  }
}

/**
 * The platform a prebuilt must match, as the platform packages are named: `linux-x64-gnu`,
 * `linux-x64-musl`, `darwin-arm64`, `win32-x64`. Only Linux has two C libraries to tell apart.
 */
export function runtimePlatform(): string {
  const base = `${process.platform}-${process.arch}`;
  return process.platform === 'linux' ? `${base}-${linuxLibc()}` : base;
}

function linuxLibc(): 'gnu' | 'musl' {
  // Node's diagnostic report names the glibc it runs on (header.glibcVersionRuntime); under musl
  // the field is absent. Network details are left out of the report: gathering them can be slow,
  // and the setting is put back as it was.
  const report = process.report as NodeJS.ProcessReport & { excludeNetwork?: boolean };
  const excludeNetwork = report.excludeNetwork;
  report.excludeNetwork = true;
  try {
    const header = (report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
    return header?.glibcVersionRuntime ? 'gnu' : 'musl';
  } finally {
    report.excludeNetwork = excludeNetwork;
  }
}

const platformPackageScope = '@cmae/';

/** The npm package holding the prebuilt addon for `platform`, e.g. `@cmae/linux-x64-gnu`. */
export function platformPackageName(platform: string = runtimePlatform()): string {
  return `${platformPackageScope}${platform}`;
}

/** The platforms cmae publishes a prebuilt for: the platform packages package.json lists as optional dependencies. */
export function prebuiltPlatforms(): string[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { optionalDependencies = {} } = require(path.join(packageRoot, 'package.json')) as { optionalDependencies?: Record<string, string> };
  return Object.keys(optionalDependencies)
    .filter((name) => name.startsWith(platformPackageScope))
    .map((name) => name.slice(platformPackageScope.length));
}

/** One place the addon may be: `locate` gives its path, or why there is none. */
interface Candidate {
  source: AddonOrigin['source'];
  label: string;
  locate(): { path: string } | { missing: string };
}

function fileCandidate(source: AddonOrigin['source'], file: string): Candidate {
  return { source, label: file, locate: () => (existsSync(file) ? { path: file } : { missing: 'not found' }) };
}

function prebuiltCandidate(): Candidate {
  const platform = runtimePlatform();
  const name = platformPackageName(platform);
  return {
    source: 'prebuilt',
    label: `${name} (the prebuilt for ${platform})`,
    locate: () => {
      try {
        return { path: require.resolve(`${name}/cmae.node`, { paths: [packageRoot] }) };
      } catch {
        const published = prebuiltPlatforms();
        return {
          missing: published.includes(platform)
            ? 'not installed'
            : `cmae publishes no prebuilt for ${platform} (only for ${published.join(', ') || 'no platform'})`,
        };
      }
    },
  };
}

function candidates(): Candidate[] {
  const list: Candidate[] = [];
  if (process.env.CMAE_ADDON_PATH) list.push(fileCandidate('CMAE_ADDON_PATH', path.resolve(process.env.CMAE_ADDON_PATH)));
  list.push(fileCandidate('local build', path.join(packageRoot, 'build', 'Release', 'cmae.node')));
  list.push(fileCandidate('local build', path.join(packageRoot, 'build', 'Debug', 'cmae.node')));
  list.push(prebuiltCandidate());
  return list;
}

export function getBinding(): NativeBinding {
  if (binding) return binding;
  const failures: string[] = [];
  for (const candidate of candidates()) {
    const found = candidate.locate();
    if ('missing' in found) {
      failures.push(`  - ${candidate.label}: ${found.missing}`);
      continue;
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const loaded = require(found.path) as NativeBinding;
      loaded.setErrorClasses(nativeErrorClasses);
      binding = loaded;
      origin = { source: candidate.source, path: found.path };
      return loaded;
    } catch (error) {
      failures.push(`  - ${candidate.label === found.path ? found.path : `${candidate.label} at ${found.path}`}: ${(error as Error).message}`);
    }
  }
  throw new AddonLoadError(loadFailureMessage(failures));
}

/** Which addon getBinding() loaded (it loads one if none is yet). */
export function addonOrigin(): AddonOrigin {
  getBinding();
  return { ...(origin as AddonOrigin) };
}

function loadFailureMessage(failures: string[]): string {
  const platform = runtimePlatform();
  const hasPrebuilt = prebuiltPlatforms().includes(platform);
  return [
    'cmae: the native addon could not be loaded.',
    'Tried:',
    ...failures,
    hasPrebuilt
      ? `Why this happens: the prebuilt ${platformPackageName(platform)} is not installed (npm leaves optional`
        + ' dependencies out under --omit=optional, and a lockfile written on another platform may lack it),'
        + ' and no local build exists, or one of them failed to load (above).'
      : `Why this happens: no prebuilt matches ${platform}, so the install script compiles the addon, and`
        + ' it was skipped (npm 11 asks to approve install scripts; pnpm and yarn may not run them) or the build failed.',
    'How to fix:',
    ...(hasPrebuilt ? [`  - install the prebuilt: \`npm install --include=optional cmae\` (or add ${platformPackageName(platform)} to your dependencies), or`] : []),
    `  - build it from source: \`npm rebuild cmae --build-from-source\` (needs g++ >= 9, cmake >= 3.15, x86-64 with AVX2), or`,
    '  - point CMAE_ADDON_PATH at a cmae.node you built.',
    ...(failures.some((line) => line.includes('libgomp'))
      ? ['  - the OpenMP runtime is missing: install libgomp (Debian/Ubuntu: `apt-get install libgomp1`).']
      : []),
  ].join('\n');
}
