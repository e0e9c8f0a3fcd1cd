#!/usr/bin/env node
// Prints the C++ sources of one part of the native build, one per line, for binding.gyp
// ("<!@(node scripts/list-sources.cjs core)"). CMakeLists.txt globs the same folders, so both
// builds compile the same files: `core` = native/{core,backend,cpu,model,data} minus *_avx512.cc,
// `avx512` = the *_avx512.cc files, `napi` = native/napi.
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
    if ((part === 'avx512') !== isAvx512) continue;
    files.push(`${folder}/${name}`);
  }
}
process.stdout.write(files.join('\n'));
