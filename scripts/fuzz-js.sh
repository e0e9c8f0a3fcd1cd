#!/usr/bin/env bash
# Coverage-guided fuzzing of the TypeScript parsers a user's files reach (test/fuzz/js/targets.cjs:
# checkpoint, safetensors, idx, cifar, image) with Jazzer.js (libFuzzer for Node), offline: never
# in CI. Jazzer.js is installed from npm into a cache outside the repository (not a dependency of
# the package); on glibc older than 2.38 (Debian 12) its prebuilt addon is made to load by
# test/fuzz/js/glibc-compat.cjs and a three-function shim. Each target runs SECONDS on one core with
# its corpus in CORPUS/<target> (runs accumulate; seeded by test/fuzz/js/seeds.cjs and
# test/fuzz/js/corpus/<target>); a finding (an error that is not a CmaeError, a hang over 10 s, an
# allocation over 2 GB) leaves its input in CORPUS/<target>-findings/ and stops the script with the
# target's status: commit such inputs under test/fuzz/js/corpus/<target>/ and add them to a test.
#   npm run fuzz:js -- [SECONDS per target, default 120] [CORPUS, default $TMPDIR/cmae-fuzz-js] [TARGET ...]
# Needs the compiled package (npm run build:ts), g++ and the npm registry (first run only).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-120}"
corpus="${2:-${TMPDIR:-/tmp}/cmae-fuzz-js}"
shift $(( $# < 2 ? $# : 2 ))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors checkpoint idx cifar image)
cache="${CMAE_JAZZER_DIR:-${TMPDIR:-/tmp}/cmae-jazzer}"
jazzer_version=4.0.0

if [ ! -x "$cache/node_modules/.bin/jazzer" ]; then
  mkdir -p "$cache"
  (cd "$cache" && [ -f package.json ] || echo '{"private": true}' >"$cache/package.json")
  npm install --prefix "$cache" --no-audit --no-fund --no-save "@jazzer.js/core@$jazzer_version" >/dev/null
fi
preload=()
glibc="$(getconf GNU_LIBC_VERSION | awk '{print $2}')"
if [ "$(printf '%s\n2.38\n' "$glibc" | sort -V | head -1)" != "2.38" ]; then
  addon="$cache/node_modules/@jazzer.js/fuzzer/prebuilds/fuzzer-linux-x64.node"
  if [ ! -f "$addon.glibc236" ]; then
    node "$root/test/fuzz/js/glibc-compat.cjs" "$addon"
    touch "$addon.glibc236"
  fi
  [ -f "$cache/glibc-compat-shim.so" ] || g++ -O2 -shared -fPIC -o "$cache/glibc-compat-shim.so" "$root/test/fuzz/js/glibc-compat-shim.cc"
  preload=(env "LD_PRELOAD=$cache/glibc-compat-shim.so")
fi

node "$root/test/fuzz/js/seeds.cjs" "$corpus"
for target in "${targets[@]}"; do
  mkdir -p "$corpus/$target" "$corpus/$target-findings"
  seeds=()
  [ -d "$root/test/fuzz/js/corpus/$target" ] && seeds+=("$root/test/fuzz/js/corpus/$target")
  sync=()
  case "$target" in safetensors | cifar) sync=(--sync) ;; esac
  dict=()
  case "$target" in safetensors | checkpoint) dict=("-dict=$root/test/fuzz/js/safetensors.dict") ;; esac
  echo "== $target: ${seconds}s, corpus $corpus/$target"
  (cd "$root" && "${preload[@]}" "$cache/node_modules/.bin/jazzer" test/fuzz/js/targets.cjs "$corpus/$target" "${seeds[@]}" \
    -f "$target" "${sync[@]}" -i dist/cjs/ --timeout 10000 -- -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$corpus/$target-findings/" "${dict[@]}")
done
