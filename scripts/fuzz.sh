#!/usr/bin/env bash
# Coverage-guided fuzzing of the native code a checkpoint's contents reach (test/fuzz), offline:
# never in CI. Builds build-fuzz/ with clang, libFuzzer, ASan and UBSan, then runs each target for
# SECONDS on one core, its corpus kept in CORPUS/<target> (outside the repository, so that runs
# accumulate) and seeded from test/fuzz/corpus/<target>. A crash, leak, hang (-timeout) or
# oversized allocation (-rss_limit_mb) leaves its input in CORPUS/<target>-findings/ and stops the
# script with the target's status; commit such inputs under test/fuzz/corpus/<target>/.
#   npm run fuzz -- [SECONDS per target, default 300] [CORPUS, default $TMPDIR/cmae-fuzz-corpus]
# Needs clang with libFuzzer (Debian: clang-14 libclang-rt-14-dev; CXX overrides clang++-14).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-300}"
corpus="${2:-${TMPDIR:-/tmp}/cmae-fuzz-corpus}"
build="$root/build-fuzz"
CC="${CC:-clang-14}" CXX="${CXX:-clang++-14}" cmake -S "$root" -B "$build" -DCMAE_BUILD_FUZZ=ON -DCMAE_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target cmae_fuzz_plan_parameters cmae_fuzz_train_step --parallel 2
for target in plan train; do
  mkdir -p "$corpus/$target" "$corpus/$target-findings"
  seeds=()
  [ -d "$root/test/fuzz/corpus/$target" ] && seeds+=("$root/test/fuzz/corpus/$target")
  echo "== cmae_fuzz_$target: ${seconds}s, corpus $corpus/$target"
  "$build/test/fuzz/cmae_fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$corpus/$target-findings/" "$corpus/$target" "${seeds[@]}"
done
