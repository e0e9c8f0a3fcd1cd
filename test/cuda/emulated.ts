/**
 * Imported first by every test/cuda/*.test.ts: points the package at cmae_emulated.node, the addon
 * whose 'cuda' device is the SIMT emulator running cuda/'s kernel source (built by
 * test/native/build.ts), so that the CUDA model, its staging, checkpoints and CLI run here without
 * a GPU. Each test file is its own process (vitest pool 'forks'), and the addon loads on first use.
 */
import { existsSync } from 'node:fs';
import { emulatedAddonPath } from '../native/build';

if (!existsSync(emulatedAddonPath)) {
  throw new Error(
    `${emulatedAddonPath} is missing: the emulated CUDA addon is built with the native tests when Boost.Context ` +
      'is installed (Debian: apt-get install libboost-context-dev); install it and rerun npm test',
  );
}
process.env.CMAE_ADDON_PATH = emulatedAddonPath;
