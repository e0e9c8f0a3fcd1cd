/** The SIMT emulator's own tests (cuda/emu; test/native/emu/*.cc), one vitest case per native case. */
import { nativeCases } from './native';

nativeCases('cmae_emu_tests', [], 'it needs Boost.Context (Debian: apt-get install libboost-context-dev)');
