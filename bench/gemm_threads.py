"""Where a second BLAS thread starts to pay, per product of the compiled epoch.

Times each GEMM of a training step ([784, 30, 10] and [784, 100, 10], several
mini-batch sizes) through SciPy's BLAS from compiled code, exactly as the
epoch calls it, with one thread and with the BLAS's configured count, in
alternating rounds; prints the medians, the fastest rounds (what a quiet
machine gives: on a shared one, the least disturbed sample), and for each the
smallest M·N·K from which the configured count is faster by 10% at every
larger measured product. That is the measurement behind
``MIN_MNK_FOR_THREADS`` in ``nn_gpu/backends/measured.py``.

    python bench/gemm_threads.py [--rounds 7] [--busy 1]

(``--busy N`` keeps N cores busy with spin loops meanwhile.)
"""

import argparse
import contextlib
import statistics
import time

import numpy
from numba import njit

from nn_gpu.backends.cpu.epoch import _gemm_update, _use_threads
from nn_gpu.backends.cpu.threads import configured_threads, product_sizes
from nn_gpu.bench.busy import competing_processes

NETWORKS = ([784, 30, 10], [784, 100, 10])
BATCH_SIZES = (10, 32, 100, 300, 1000)


@njit
def forward(a, w, out, times, threads, restore):
    current = _use_threads(threads, 0, restore)
    for _ in range(times):
        numpy.dot(a, w.T, out)
    _use_threads(restore, current, restore)


@njit
def update(w, delta, a, times, threads, restore, ints, scalars, trans):
    current = _use_threads(threads, 0, restore)
    for _ in range(times):
        _gemm_update(w, delta, a, -1e-12, 1.0, ints, scalars, trans)
    _use_threads(restore, current, restore)


def products(rng):
    """(name, M·N·K, run(times, threads)) for each distinct product shape."""
    ints, trans = numpy.empty(6, numpy.int32), numpy.array([ord("N"), ord("T")], numpy.uint8)
    scalars = numpy.empty(2, numpy.float32)
    restore = configured_threads()
    seen = {}
    for sizes in NETWORKS:
        for m in BATCH_SIZES:
            for (n_in, n_out), (mnk, _, _) in zip(zip(sizes[:-1], sizes[1:]),
                                                  product_sizes(sizes, m)):
                a, w = rng.random((m, n_in), numpy.float32), rng.random((n_out, n_in), numpy.float32)
                out, delta = numpy.empty((m, n_out), numpy.float32), rng.random((m, n_out), numpy.float32)
                seen[f"forward ({m}, {n_in})·({n_in}, {n_out})"] = (mnk, lambda t, k, a=a, w=w, out=out: forward(a, w, out, t, k, restore))
                seen[f"update  ({n_out}, {m})·({m}, {n_in})"] = (mnk, lambda t, k, w=w, d=delta, a=a: update(w, d, a, t, k, restore, ints, scalars, trans))
    return [(name, mnk, run) for name, (mnk, run) in seen.items()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--busy", type=int, default=0)
    args = parser.parse_args()
    many = configured_threads()
    rows = []
    with competing_processes(args.busy) if args.busy else contextlib.nullcontext():
        for name, mnk, run in sorted(products(numpy.random.default_rng(0)), key=lambda p: p[1]):
            times = max(3, int(1e7 / (2 * mnk)))         # ~10 MFLOP per timing
            run(1, 1)
            run(1, many)
            seconds = {1: [], many: []}
            for _ in range(args.rounds):
                for threads in (1, many):
                    started = time.perf_counter()
                    run(times, threads)
                    seconds[threads].append((time.perf_counter() - started) / times)
            one, more = statistics.median(seconds[1]), statistics.median(seconds[many])
            best_one, best_more = min(seconds[1]), min(seconds[many])
            rows.append((mnk, more / one, best_more / best_one))
            print(f"{name:<34} M·N·K {mnk:>10,}  median: 1 thread {one * 1e6:8.1f} µs, {many} "
                  f"{more * 1e6:8.1f} µs ({more / one:5.2f})  fastest: {best_one * 1e6:8.1f}, "
                  f"{best_more * 1e6:8.1f} µs ({best_more / best_one:5.2f})", flush=True)
    for column, label in ((1, "medians"), (2, "fastest rounds")):
        paying = [mnk for i, (mnk, *_) in enumerate(rows) if all(r[column] < 0.9 for r in rows[i:])]
        print(f"{label}: {many} threads faster by 10% at every product from M·N·K {paying[0]:,}"
              if paying else f"{label}: {many} threads never faster by 10% at every larger product")


if __name__ == "__main__":
    main()
