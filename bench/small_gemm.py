"""Shape-specialised kernels (nn_gpu.backends.cpu.small_gemm) against OpenBLAS.

The two products that dominate the compiled epoch, one at a time: the
first layer's forward product (z^T = w a^T up to 32 rows, as the epoch lays
it out, z = a w^T above) and its weight update w = w - δ^T a, each called
many times from a compiled loop, SciPy's BLAS (the epoch's, one thread)
against the generated kernel, in turn; medians of the rounds, µs per call.

    taskset -c 1 python bench/small_gemm.py [--cpu-time] [--rounds 7] [--dtype float32]
"""

import argparse
import statistics
import time

import numpy
from numba import njit

from nn_gpu.backends.cpu import threads as cpu_threads
from nn_gpu.backends.cpu.epoch import _gemm_update
from nn_gpu.backends.measured import TRANSPOSED_FORWARD_MAX_ROWS
from nn_gpu.backends.cpu.small_gemm import call_dot, call_update, dot_nt, update


@njit
def blas_forward(calls, w, a, out, transposed):
    for _ in range(calls):
        if transposed:
            numpy.dot(w, a.T, out)
        else:
            numpy.dot(a, w.T, out)


@njit
def kernel_forward(calls, kernel, w, a, out, transposed):
    for _ in range(calls):
        if transposed:
            call_dot(kernel, w, a, out)
        else:
            call_dot(kernel, a, w, out)


@njit
def blas_update(calls, w, d, a, ints, scalars, trans):
    for _ in range(calls):
        _gemm_update(w, d, a, -1e-9, 1.0, ints, scalars, trans)


@njit
def kernel_update(calls, kernel, w, d, a):
    for _ in range(calls):
        call_update(kernel, w, d, a, -1e-9, 1.0)


def runners(n_in, n_out, m, dtype, calls):
    """{(product, method): run} for one shape; each run makes ``calls`` calls."""
    rng = numpy.random.default_rng(0)
    w = rng.standard_normal((n_out, n_in)).astype(dtype)
    a = rng.random((m, n_in)).astype(dtype)
    d = (rng.random((m, n_out)) * 1e-3).astype(dtype)
    transposed = m <= TRANSPOSED_FORWARD_MAX_ROWS
    out = numpy.empty((n_out, m) if transposed else (m, n_out), dtype)
    forward = (dot_nt(n_out, m, n_in, dtype) if transposed else dot_nt(m, n_out, n_in, dtype)).address
    ints, scalars = numpy.empty(6, numpy.int32), numpy.empty(2, dtype)
    trans = numpy.array([ord("N"), ord("T")], numpy.uint8)
    step = update(n_out, n_in, m, dtype).address
    expected = (w @ a.T) if transposed else (a @ w.T)  # the kernels checked before timing
    kernel_forward(1, forward, w, a, out, transposed)
    tolerance = (1e-5 if dtype == "float32" else 1e-12) * abs(expected).max()
    assert abs(out - expected).max() <= tolerance, "the kernel's product is wrong"
    return {("forward", "OpenBLAS"): lambda: blas_forward(calls, w, a, out, transposed),
            ("forward", "kernel"): lambda: kernel_forward(calls, forward, w, a, out, transposed),
            ("update", "OpenBLAS"): lambda: blas_update(calls, w, d, a, ints, scalars, trans),
            ("update", "kernel"): lambda: kernel_update(calls, step, w, d, a)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000, help="calls per timed run")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the process's CPU time, not the wall clock")
    args = parser.parse_args()
    controller, _ = cpu_threads.scipy_blas()
    if controller is not None:
        controller.set_num_threads(1)
    clock = time.process_time if args.cpu_time else time.perf_counter
    print(f"{'shape (n_in, n_out, m)':<24}{'product':<9}{'OpenBLAS µs':>12}{'kernel µs':>11}"
          f"{'speed-up':>10}")
    for n_out in (30, 100):
        for m in args.batch_sizes:
            runs = runners(784, n_out, m, args.dtype, args.calls)
            for run in runs.values():
                run()                                   # compile, warm the caches
            seconds = {key: [] for key in runs}
            for _ in range(args.rounds):
                for key, run in runs.items():
                    started = clock()
                    run()
                    seconds[key].append((clock() - started) / args.calls * 1e6)
            for product in ("forward", "update"):
                blas, kernel = (statistics.median(seconds[product, method])
                                for method in ("OpenBLAS", "kernel"))
                print(f"{str((784, n_out, m)):<24}{product:<9}{blas:>12.1f}{kernel:>11.1f}"
                      f"{blas / kernel:>9.2f}x", flush=True)
    print(f"{args.dtype}, one BLAS thread, medians of {args.rounds} rounds of {args.calls} "
          f"calls, {'CPU' if args.cpu_time else 'wall'} time")


if __name__ == "__main__":
    main()
