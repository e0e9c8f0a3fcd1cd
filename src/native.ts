/**
 * Loads the compiled addon (build/Release/cmae.node) on first use. Loading is lazy so that
 * `import 'cmae'` never throws; the first call that needs native code does, with one error that
 * says what was tried, why it failed and how to fix it.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { AddonLoadError, nativeErrorClasses } from './errors';
import type { NativeBinding } from './binding-types';

let binding: NativeBinding | undefined;

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

function candidatePaths(): string[] {
  const candidates: string[] = [];
  if (process.env.CMAE_ADDON_PATH) candidates.push(path.resolve(process.env.CMAE_ADDON_PATH));
  candidates.push(path.join(packageRoot, 'build', 'Release', 'cmae.node'));
  candidates.push(path.join(packageRoot, 'build', 'Debug', 'cmae.node'));
  return candidates;
}

export function getBinding(): NativeBinding {
  if (binding) return binding;
  const failures: string[] = [];
  for (const candidate of candidatePaths()) {
    if (!existsSync(candidate)) {
      failures.push(`  - ${candidate}: not found`);
      continue;
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const loaded = require(candidate) as NativeBinding;
      loaded.setErrorClasses(nativeErrorClasses);
      binding = loaded;
      return loaded;
    } catch (error) {
      failures.push(`  - ${candidate}: ${(error as Error).message}`);
    }
  }
  throw new AddonLoadError(
    [
      'cmae: the native addon could not be loaded.',
      'Tried:',
      ...failures,
      'Why this happens: the package manager skipped the install script that compiles it (npm 11',
      'asks to approve install scripts; pnpm and yarn may not run them), or the build failed.',
      'How to fix:',
      '  - approve the script: `npm install-scripts approve cmae` (or `npm rebuild cmae`), or',
      `  - build it by hand: \`cd ${packageRoot} && npx cmake-js compile\` (needs g++ >= 9, cmake >= 3.15),`,
      '  - or point CMAE_ADDON_PATH at a cmae.node you built.',
    ].join('\n'),
  );
}
