#!/usr/bin/env node
// Prints the C++ sources of one part of the native build, one per line, for binding.gyp
// ("<!@(node scripts/list-sources.cjs core)"). CMakeLists.txt globs the same folders, so both
// builds compile the same files: `kernels` = the CPU kernel sources (native/cpu/*.cc but
// cpu_backend.cc and *_avx512.cc, compiled once per target: native/cpu/target.h), `avx512` = the
// *_avx512.cc files, `core` = the rest of native/{core,backend,cpu,model,data}, `napi` = native/napi.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const part = process.argv[2];
const folders = part === 'napi' ? ['native/napi'] : ['native/core', 'native/backend', 'native/cpu', 'native/model', 'native/data'];
const files = [];
for (const folder of folders) {
  const dir = path.join(root, folder);
  if (!fs.existsSync(dir)) continue;
  for (const name of fs.readdirSync(dir).sort()) {
    if (!name.endsWith('.cc')) continue;
    const isAvx512 = name.endsWith('_avx512.cc');
    const isKernel = folder === 'native/cpu' && !isAvx512 && name !== 'cpu_backend.cc';
    const partOfFile = part === 'napi' ? 'napi' : isAvx512 ? 'avx512' : isKernel ? 'kernels' : 'core';
    if (partOfFile !== part) continue;
    files.push(`${folder}/${name}`);
  }
}
process.stdout.write(files.join('\n'));
