// Lets Jazzer.js 4's prebuilt addon (built against glibc 2.38 and GCC 13's libstdc++) load on
// Debian 12 (glibc 2.36, GCC 12): of the newer versions it asks for only three functions, which
// glibc-compat-shim.cc provides (LD_PRELOAD). This edits a copy of the addon in the fuzzing cache,
// never anything in the repository: those three symbols become unversioned (.gnu.version = global)
// and the requirements GLIBC_2.38 and GLIBCXX_3.4.32 weak (VER_FLG_WEAK), so the loader accepts
// libraries without them. Why not Jazzer.js from source: its build downloads a compiler-rt fork
// from GitHub, which these machines cannot reach.
//   node test/fuzz/js/glibc-compat.cjs ADDON.node
'use strict';
const { readFileSync, writeFileSync } = require('node:fs');

const SYMBOLS = new Set(['__isoc23_strtol', '__isoc23_strtoul', '_ZSt21ios_base_library_initv']);
const VERSIONS = new Set(['GLIBC_2.38', 'GLIBCXX_3.4.32']);
const SHT_DYNSYM = 11, SHT_GNU_VERSYM = 0x6fffffff, SHT_GNU_VERNEED = 0x6ffffffe, VER_FLG_WEAK = 2, VER_NDX_GLOBAL = 1;

const file = process.argv[2];
const b = readFileSync(file);
if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1) throw new Error(`${file}: not a little-endian ELF64 file`);
const shoff = Number(b.readBigUInt64LE(0x28)), shentsize = b.readUInt16LE(0x3a), shnum = b.readUInt16LE(0x3c);
const sections = Array.from({ length: shnum }, (_, i) => {
  const at = shoff + i * shentsize;
  return { type: b.readUInt32LE(at + 4), offset: Number(b.readBigUInt64LE(at + 0x18)), size: Number(b.readBigUInt64LE(at + 0x20)),
    link: b.readUInt32LE(at + 0x28), entsize: Number(b.readBigUInt64LE(at + 0x38)) };
});
const cstring = (table, at) => b.toString('latin1', table.offset + at, b.indexOf(0, table.offset + at));
const one = (type) => {
  const s = sections.filter((x) => x.type === type);
  if (s.length !== 1) throw new Error(`${file}: expected one section of type ${type.toString(16)}, found ${s.length}`);
  return s[0];
};
const dynsym = one(SHT_DYNSYM), versym = one(SHT_GNU_VERSYM), verneed = one(SHT_GNU_VERNEED);
const dynstr = sections[dynsym.link];
let cleared = 0;
for (let i = 0; i < dynsym.size / dynsym.entsize; i++) {
  if (!SYMBOLS.has(cstring(dynstr, b.readUInt32LE(dynsym.offset + i * dynsym.entsize)))) continue;
  b.writeUInt16LE(VER_NDX_GLOBAL, versym.offset + 2 * i);
  cleared++;
}
let weakened = 0;
const verstr = sections[verneed.link];
for (let at = verneed.offset; ;) {
  const count = b.readUInt16LE(at + 2), aux = b.readUInt32LE(at + 8), next = b.readUInt32LE(at + 12);
  for (let a = at + aux, k = 0; k < count; k++) {
    if (VERSIONS.has(cstring(verstr, b.readUInt32LE(a + 8)))) {
      b.writeUInt16LE(b.readUInt16LE(a + 4) | VER_FLG_WEAK, a + 4);
      weakened++;
    }
    a += b.readUInt32LE(a + 12);
  }
  if (next === 0) break;
  at += next;
}
writeFileSync(file, b);
console.log(`${file}: ${cleared} symbols unversioned, ${weakened} version requirements weakened`);
