"""The conv rows of scripts/gpu_check.sh (issue 15): nn_gpu's conv epoch on
CuPy next to the same network in PyTorch CUDA eager
(:class:`nn_gpu.bench.conv_peers.TorchConvEpoch`), per preset and mini-batch
size, with the GEMM floor: ``nn-gpu bench --conv PRESET --backend cupy
--peers``'s table, on synthetic data of MNIST's shapes (no MNIST needed; an
epoch's time does not depend on the pixels).

    PYTHONPATH=. python bench/gpu_conv.py OUT_DIR [--budget SECONDS] [--backend numpy]

Each preset's table is printed and added to OUT_DIR/conv.md as soon as it
is measured (OUT_DIR/conv.json: the rows), so a run stopped for time keeps
what it finished; a preset that cannot run says n/a and why. The issue's
GPU target: PyTorch/nn_gpu >= 3 at mini-batch 10. ``--backend numpy``
tries the script on a machine without a GPU (PyTorch then on the CPU).
"""

import argparse
import json
import sys
import time
from pathlib import Path

PRESETS = ("ch6-conv1", "ch6-conv2")
BATCHES = (10, 100)
EXAMPLES = 5000
REPEATS = 3


def measure(preset, backend, X, labels, repeats):
    """(table lines, rows) of one preset."""
    from nn_gpu.bench.conv import conv_benchmark, format_conv_table
    from nn_gpu.convnet.layers import layer_from_spec
    from nn_gpu.presets.convnet import CONV_PRESETS

    spec = CONV_PRESETS[preset]
    layers = [layer_from_spec(layer) for layer in spec["layers"]]
    rows, skipped = conv_benchmark((X, labels), layers, BATCHES, backend,
                                   spec["options"]["eta"], spec["options"]["l2"],
                                   repeats=repeats, peers=True)
    lines = format_conv_table(rows, repeats)
    return lines + [f"{peer}: n/a, {why}" for peer, why in skipped.items()], rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--budget", type=float, default=70.0,
                        help="seconds; presets not started by then say so")
    parser.add_argument("--backend", default="cupy")
    parser.add_argument("--examples", type=int, default=EXAMPLES)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()
    deadline = time.monotonic() + args.budget
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gpu_peers import synthetic_data

    from nn_gpu.backends import get_backend
    from nn_gpu.errors import NNGpuError

    args.out.mkdir(parents=True, exist_ok=True)
    X, labels, _ = synthetic_data(args.examples, [784, 10])
    try:
        backend, why = get_backend(args.backend), None
        described = backend.describe()
    except NNGpuError as exc:
        backend, why, described = None, str(exc), args.backend
    report = [f"conv epoch: {described}; float32; {args.examples} synthetic examples of "
              "MNIST's shape per epoch; mini-batch 10 and 100", ""]
    print(report[0], flush=True)
    results = {}
    for preset in PRESETS:
        if backend is None:
            lines = [f"n/a: {why}"]
        elif time.monotonic() > deadline:
            lines = ["not run: out of time"]
        else:
            try:
                lines, results[preset] = measure(preset, backend, X, labels, args.repeats)
            except Exception as exc:  # a failure is a finding, not the end of the check
                lines = [f"failed: {type(exc).__name__}: {str(exc)[:300]}"]
        report += [f"{preset}:", "```", *lines, "```", ""]
        print("\n".join(report[-len(lines) - 4:]), flush=True)
        (args.out / "conv.md").write_text("\n".join(report))
        (args.out / "conv.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
