#!/usr/bin/env bash
# The native checks of the CUDA backend on a machine with an NVIDIA GPU (CMake + nvcc, no Node
# needed): builds the op harness with the real CUDA backend for this GPU's architecture and runs
# every op case on it against the float64 references (test/native/ops), then prints a summary.
#   bash scripts/gpu-check.sh [extra harness args, e.g. --filter /linear/]
# Exit status: 0 when every case passed.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${CMAE_GPU_BUILD_DIR:-build-gpu}"
arch="${CMAE_CUDA_ARCH:-native}"
jobs="$(nproc 2>/dev/null || echo 4)"
cmake -S . -B "$build" -DCMAE_BUILD_TESTS=ON -DCMAE_CUDA=ON -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CUDA_ARCHITECTURES=$arch" >/dev/null
cmake --build "$build" --target cmae_op_tests -j "$jobs"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
log="$(mktemp)"
set +e
"$build/test/native/cmae_op_tests" "$@" | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -c '"ok": true' "$log" || true)
failed=$(grep -c '"ok": false' "$log" || true)
echo "op cases: $passed passed, $failed failed (by backend:)"
sed -n 's/^{"name": "\([^/]*\)\/.*"ok": \(true\|false\).*/\1 \2/p' "$log" | sort | uniq -c
rm -f "$log"
exit "$status"
