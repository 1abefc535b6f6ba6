"""How far the compiled CPU epoch sits above its GEMM floor.

The floor here is the epoch's own products and nothing else: a compiled
loop making exactly the products the compiled epoch makes (same shapes, same
layouts -- z^T = w a^T up to 32 rows --, SciPy's BLAS called from compiled
code, the same thread count, and the same shape kernels of
nn_gpu.backends.cpu.small_gemm where the epoch uses them), as many steps as an
epoch has, without the gather, σ, δ or bias work around them. ``nn-gpu bench``'s floor instead
divides the epoch's FLOPs by NumPy's GEMM rate at those shapes, which is a
different BLAS with its own threads: fine for comparing backends, too loose
for asking what is left to win in ours (it can put an epoch *under* its
floor). Epoch and floor are timed in turn, medians; the ratio is the
"x floor" of issue 13's targets (mini-batch >= 100 within 1.5x, mini-batch
10 within 1.3x).

    NN_GPU_DATA=../shared/data/mnist python bench/gemm_floor.py [--threads 1] [--repeats 5]
"""

import argparse
import os
import statistics
import time

import numpy
from numba import njit

from nn_gpu import Network
from nn_gpu.backends import NumpyBackend
from nn_gpu.backends.cpu.epoch import _gemm_update, epoch_kernels
from nn_gpu.backends.measured import TRANSPOSED_FORWARD_MAX_ROWS
from nn_gpu.backends.cpu.small_gemm import call_dot, call_update
from nn_gpu.bench.timing import time_interleaved
from nn_gpu.data.mnist import load_mnist

ETA, SEED = 3.0, 0


@njit
def gemms_of_an_epoch(steps, weights, activations, deltas, transposed, ints, scalars, trans,
                      kernels):
    """The compiled epoch's products for ``steps`` full mini-batches: forward
    (transposed where ``transposed[l]`` is non-empty), backprop, update; by
    the shape's kernels where ``kernels`` says so, as in the epoch."""
    layers = len(weights)
    for _ in range(steps):
        for l in range(layers):
            if transposed[l].size and kernels[l, 0]:
                call_dot(kernels[l, 0], weights[l], activations[l], transposed[l])
            elif transposed[l].size:
                numpy.dot(weights[l], activations[l].T, transposed[l])
            elif kernels[l, 0]:
                call_dot(kernels[l, 0], activations[l], weights[l], activations[l + 1])
            else:
                numpy.dot(activations[l], weights[l].T, activations[l + 1])
        for l in range(layers - 1, 0, -1):
            numpy.dot(deltas[l], weights[l], deltas[l - 1])
        for l in range(layers):
            if kernels[l, 1]:
                call_update(kernels[l, 1], weights[l], deltas[l], activations[l], -1e-9, 1.0)
            else:
                _gemm_update(weights[l], deltas[l], activations[l], -1e-9, 1.0, ints, scalars,
                             trans)


def floor_runner(sizes, batch_size, steps, dtype=numpy.float32):
    """One call: the GEMMs of ``steps`` steps on random operands."""
    rng = numpy.random.default_rng(SEED)
    weights = tuple(rng.standard_normal((n_out, n_in)).astype(dtype)
                    for n_in, n_out in zip(sizes[:-1], sizes[1:]))
    activations = tuple(rng.random((batch_size, n)).astype(dtype) for n in sizes)
    deltas = tuple(rng.random((batch_size, n)).astype(dtype) * 1e-3 for n in sizes[1:])
    rows = batch_size if batch_size <= TRANSPOSED_FORWARD_MAX_ROWS else 0
    transposed = tuple(numpy.empty((n, rows), dtype) for n in sizes[1:])
    ints, scalars = numpy.empty(6, numpy.int32), numpy.empty(2, dtype)
    trans = numpy.array([ord("N"), ord("T")], numpy.uint8)
    kernels = epoch_kernels(sizes, batch_size, dtype)
    return lambda: gemms_of_an_epoch(steps, weights, activations, deltas, transposed, ints,
                                     scalars, trans, kernels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads of every product, both sides (default 1)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--networks", default="784,30,10 784,100,10")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the process's CPU time, not the wall clock")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    training, _, _ = load_mnist(os.environ.get("NN_GPU_DATA"))
    clock = time.process_time if args.cpu_time else time.perf_counter
    print(f"{'network':<16}{'batch':>6}{'epoch s':>10}{'floor s':>10}{'x floor':>9}")
    with threadpool_limits(limits=args.threads, user_api="blas"):
        for text in args.networks.split():
            sizes = [int(n) for n in text.split(",")]
            for batch_size in args.batch_sizes:
                net = Network(sizes, backend=NumpyBackend(threads=args.threads), seed=SEED)
                runners = {"epoch": net.epoch_runner(training, batch_size, ETA),
                           "floor": floor_runner(sizes, batch_size,
                                                 len(training[1]) // batch_size)}
                medians = {label: statistics.median(seconds) for label, seconds in
                           time_interleaved(runners, args.repeats, clock).items()}
                print(f"{text:<16}{batch_size:>6}{medians['epoch']:>10.3f}"
                      f"{medians['floor']:>10.3f}{medians['epoch'] / medians['floor']:>8.2f}x",
                      flush=True)
    print(f"threads {args.threads}; medians of {args.repeats}, epoch and floor in turn, "
          f"{'CPU' if args.cpu_time else 'wall'} time; 50,000 images, float32")


if __name__ == "__main__":
    main()
