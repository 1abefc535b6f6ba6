#!/usr/bin/env bash
# Every GPU check in one go, for the lent GPU machine (or any machine with a
# CUDA device, CuPy and numba-cuda), in at most ~6 minutes:
#
#   1. machine.txt  the card, driver and library versions;
#   2. tests.txt    the `gpu` tests (each CuPy kernel against its NumPy twin,
#                   the fused epoch against the core on the device) and the
#                   `cudasim` tests (the fused kernel under Numba's simulator);
#   3. table.md     one side-by-side table: nn_gpu's fused epoch (one block,
#                   and one hidden unit per block), its cuBLAS path and its
#                   CPU epoch, PyTorch CUDA eager, PyTorch with
#                   the step in a CUDA graph, JAX with the epoch one lax.scan;
#                   [784, 30, 10] and [784, 100, 10], mini-batch 1 to 1000,
#                   float32 (bench/gpu_table.py; table.json has the figures);
#   4. conv.md      the chapter-6 conv epoch (ch6-conv1, ch6-conv2; mini-batch
#                   10 and 100): nn_gpu on CuPy next to PyTorch CUDA eager on
#                   the same network, with the GEMM floor (bench/gpu_conv.py;
#                   conv.json has the figures). Run before the table: ~1 minute;
#   5. headline.md  the card's headline on both devices: Nielsen's per-example
#                   loop against the batched core on the CPU and on the GPU
#                   (cuBLAS path and fused epoch), [784, 30, 10], mini-batch 10
#                   and 100 (bench/gpu_headline.py; headline.json has the
#                   figures). Run before the table: ~1 minute.
#
#   scripts/gpu_check.sh [OUT_DIR]      (default: $OUT, else ./gpu-results)
#
# Run it from anywhere, installed or not (it sets PYTHONPATH to the checkout).
# It needs no network and no MNIST (the table times synthetic data of MNIST's
# shapes; tests that need MNIST skip without $NN_GPU_DATA). Where something is
# missing (no GPU, no PyTorch or JAX), its tests and cells say so and the rest
# runs. The exit status is the tests'.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-results}}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX must not take the memory CuPy and PyTorch need
py=$(command -v python || command -v python3)

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo "unknown (no .git here)")"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1
  "$py" - <<'PY' 2>&1
import importlib, platform
print("python", platform.python_version())
for name in ("numpy", "cupy", "numba", "numba_cuda", "scipy", "torch", "jax"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as exc:
        print(name, "unavailable:", type(exc).__name__, str(exc)[:120])
from nn_gpu.backends import cupy_status
print("cupy_status:", cupy_status())
try:
    from numba import cuda
    print("numba.cuda available:", cuda.is_available())
except Exception as exc:
    print("numba.cuda unavailable:", exc)
PY
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"

# (A test module whose optional dependency is missing here, e.g. hypothesis, is
# reported in tests.txt and does not stop the others.)
timeout 150 "$py" -m pytest tests -m "gpu or cudasim" -q -rs -p no:cacheprovider \
  --continue-on-collection-errors > "$out/tests.txt" 2>&1
tests_status=$?
tail -n 25 "$out/tests.txt"

timeout 75 "$py" bench/gpu_conv.py "$out" --budget 55 2> "$out/conv-log.txt"

timeout 80 "$py" bench/gpu_headline.py "$out" --budget 60 2> "$out/headline-log.txt"

# The table gets what the steps before left of ~6 minutes (at least 30 s).
budget=$(( 330 - SECONDS )); (( budget < 30 )) && budget=30
timeout $(( budget + 25 )) "$py" bench/gpu_table.py "$out" --budget "$budget" \
  2> "$out/table-log.txt"

exit "$tests_status"
