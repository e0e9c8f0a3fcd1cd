#!/usr/bin/env bash
# The native checks of the CUDA backend on a machine with an NVIDIA GPU (CMake + nvcc, no Node
# needed): builds the op harness and cmae_model_check with the real CUDA backend for this GPU's
# architecture, runs every op case on it against the float64 references (test/native/ops), the
# whole model on it against the CPU backend (micro and tiny, CMAE and MAE), then times the
# training step (tiny and base, batch 64 and 256, fp32/tf32/bf16; CMAE_GPU_BENCH=0 skips it) and
# lists each configuration's 15 most expensive kernels (device time from CUDA events), then runs
# the same steps in PyTorch eager (bench/torch_gpu_step.py) when PyTorch with CUDA is installed.
#   bash scripts/gpu-check.sh [extra harness args, e.g. --filter /linear/]
# Exit status: 0 when every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${CMAE_GPU_BUILD_DIR:-build-gpu}"
arch="${CMAE_CUDA_ARCH:-native}"
jobs="$(nproc 2>/dev/null || echo 4)"
cmake -S . -B "$build" -DCMAE_BUILD_TESTS=ON -DCMAE_CUDA=ON -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CUDA_ARCHITECTURES=$arch" >/dev/null
cmake --build "$build" --target cmae_op_tests cmae_model_check -j "$jobs"
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
set +e
"$build/test/native/cmae_model_check" | tee "$log"
model_status=${PIPESTATUS[0]}
set -e
echo "model checks: $(grep -c '"ok": true' "$log" || true) passed, $(grep -c '"ok": false' "$log" || true) failed"
rm -f "$log"
if [ "${CMAE_GPU_BENCH:-1}" != 0 ]; then
  "$build/test/native/cmae_model_check" --bench --steps "${CMAE_GPU_BENCH_STEPS:-10}"
  # The same steps in PyTorch eager on the same card (the project's reference model), if present.
  if python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    presets="$(mktemp)"
    "$build/test/native/cmae_model_check" --print-presets > "$presets"
    python3 bench/torch_gpu_step.py --presets "$presets" --steps "${CMAE_GPU_BENCH_STEPS:-10}" || true
    rm -f "$presets"
  else
    echo "PyTorch with CUDA not found: no PyTorch comparison"
  fi
fi
[ "$status" = 0 ] && [ "$model_status" = 0 ]
