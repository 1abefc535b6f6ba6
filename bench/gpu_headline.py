"""The card's headline on both devices (scripts/gpu_check.sh): Nielsen's
per-example loop against the batched core, on the CPU and on the GPU, in one
table.

    PYTHONPATH=. python bench/gpu_headline.py OUT_DIR [--budget SECONDS]

Rows: per-example and batched on the CPU (the batched epoch compiled with
Numba), per-example, batched (cuBLAS GEMMs and fused elementwise kernels)
and the whole epoch as one kernel on the GPU; columns: [784, 30, 10] at
mini-batch 10 (the book's) and 100, float32, synthetic data of MNIST's
shapes. Each cell is seconds per 50,000-example epoch, the median of 3
timed epochs after a warm-up, with the speed-up over the CPU's per-example
loop; the per-example rows are timed on fewer examples and scaled. Each row
runs in its own process under a share of ``--budget`` (bench/gpu_table.py's
machinery), and a row that cannot run here (no GPU, no numba-cuda) says n/a
and why. Writes OUT_DIR/headline.md and OUT_DIR/headline.json, and prints
the table.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_table  # noqa: E402

ROWS = {
    "nn_gpu_cpu_per_example": "CPU, per-example (the book's loop)",
    "nn_gpu_cpu": "CPU, batched (compiled epoch, BLAS)",
    "nn_gpu_per_example": "GPU, per-example (the book's loop)",
    "nn_gpu_cublas": "GPU, batched (cuBLAS + elementwise kernels)",
    "nn_gpu_fused": "GPU, batched (the epoch in one kernel)",
}
SIZES = ([784, 30, 10],)
BATCHES = (10, 100)
#: Examples timed per cell: the per-example loop is ~1,000 times slower per example.
EXAMPLES = {10: 20_000, 100: 50_000}
PER_EXAMPLE = {10: 1_000, 100: 1_000}
#: The fused epoch compiles a kernel per cell; the per-example rows run longest.
WEIGHTS = {"nn_gpu_fused": 1.5, "nn_gpu_per_example": 1.5}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--peer")
    parser.add_argument("--seconds", type=float)
    args = parser.parse_args()
    if args.peer:
        examples = PER_EXAMPLE if args.peer.endswith("per_example") else EXAMPLES
        gpu_table.time_peer(args.peer, time.monotonic() + args.seconds, SIZES, BATCHES, examples)
        return
    if args.out is None:
        parser.error("give the output folder")
    args.out.mkdir(parents=True, exist_ok=True)
    # The GPU rows first: where they cannot run, their time goes to the CPU's.
    order = sorted(ROWS, key=lambda peer: peer.startswith("nn_gpu_cpu"))
    timed = gpu_table.time_all(order, args.budget, __file__, WEIGHTS)
    results = {peer: timed[peer] for peer in ROWS}
    (args.out / "headline.json").write_text(json.dumps(results, indent=1))
    table = gpu_table.markdown(
        results, [f"{SIZES[0][1]}-{batch}" for batch in BATCHES],
        f"{SIZES[0]}, float32: s per 50,000-example epoch (median of {gpu_table.ROUNDS} after "
        "1 warm-up, synchronised), and how many times faster than the CPU's per-example loop; "
        "columns: hidden width - mini-batch", ROWS, "nn_gpu_cpu_per_example")
    (args.out / "headline.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
