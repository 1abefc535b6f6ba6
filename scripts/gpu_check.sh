#!/usr/bin/env bash
# Every GPU check in one go, for a machine with a CUDA device and CuPy:
# the GPU tests, the GPU benchmarks (pytest-benchmark) and the `nn-gpu bench`
# table, all written to one folder for bench/RESULTS.md.
#
#   scripts/gpu_check.sh [OUT_DIR]      (default: $OUT, else ./gpu-results)
#
# Run it from the repository root, installed or not (it sets PYTHONPATH).
# MNIST must be at $NN_GPU_DATA. The script exits with the GPU tests' status.
set -uo pipefail
out=${1:-${OUT:-gpu-results}}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  python -m nn_gpu info --data "${NN_GPU_DATA:-}" 2>&1
} | tee "$out/machine.txt"

python -m pytest tests -m gpu -v -p no:cacheprovider 2>&1 | tee "$out/gpu-tests.txt"
tests_status=${PIPESTATUS[0]}

if python -c "import pytest_benchmark" 2>/dev/null; then
  python -m pytest bench -m gpu --benchmark-only -p no:cacheprovider \
    --benchmark-json="$out/gpu-bench.json" 2>&1 | tee "$out/gpu-bench.txt"
else
  echo "pytest-benchmark is not installed: skipping bench/ (nn-gpu bench still runs)" \
    | tee "$out/gpu-bench.txt"
fi

python -m nn_gpu bench --backend cupy --json "$out/nn-gpu-bench.json" 2>&1 \
  | tee "$out/nn-gpu-bench.txt"
python -m nn_gpu bench --backend numpy --methods batched --json "$out/nn-gpu-bench-cpu.json" 2>&1 \
  | tee "$out/nn-gpu-bench-cpu.txt"

exit "$tests_status"
