import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Native addons and worker threads do not mix well: run test files in child processes.
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    // Builds the native test executables (test/native) once, before any file runs.
    globalSetup: ['test/native/build.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
