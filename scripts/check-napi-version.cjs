#!/usr/bin/env node
// Fails unless package.json, CMakeLists.txt and binding.gyp pin the same NAPI_VERSION.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const read = (f) => fs.readFileSync(path.join(root, f), 'utf8');
const fromPackage = String(JSON.parse(read('package.json')).binary.napi_versions[0]);
const fromCmake = (read('CMakeLists.txt').match(/set\(CMAE_NAPI_VERSION (\d+)\)/) || [])[1];
const fromGyp = (read('binding.gyp').match(/"cmae_napi_version": "(\d+)"/) || [])[1];
if (fromPackage !== fromCmake || fromPackage !== fromGyp) {
  console.error(`NAPI_VERSION mismatch: package.json ${fromPackage}, CMakeLists.txt ${fromCmake}, binding.gyp ${fromGyp}`);
  process.exit(1);
}
console.log(`NAPI_VERSION ${fromPackage} pinned consistently`);
