"""How fast one training epoch is, and how far from the BLAS (``nn-gpu bench``).

For each method (``batched``, ``per_example``) and mini-batch size it times
whole SGD epochs on MNIST through :meth:`Network.epoch_runner` (the same code
``train`` runs, synchronised with the device), and puts the time next to a
floor: the FLOPs of the batched algorithm's GEMMs in one epoch divided by the
GEMM rate the backend's BLAS reaches at exactly those matrix shapes. The ratio
says how much of an epoch is arithmetic and how much is everything else
(Python, elementwise passes, gathers, launch latency).

The FLOP counting and GEMM timing here are plain functions, shared with the
``nn-gpu bench`` command (:mod:`nn_gpu.cli.bench`) and the pytest-benchmark
suites in ``bench/``. Nothing here imports pytest.

    nn-gpu bench                                  # ~1-3 minutes on a laptop CPU
    nn-gpu bench --batch-sizes 10 100 --methods batched --json bench.json
"""

import datetime
import math
import platform
import statistics
import time
from dataclasses import dataclass

import numpy

from ..model.network import Network
from ..version import __version__

ETA = 3.0  # the book's learning rate; the time of an epoch does not depend on it
SEED = 0
GEMM_SAMPLES = 3  # GEMM timings are cheap: always the median of three


# ------------------------------------------------------------- FLOP counting
@dataclass(frozen=True)
class Gemm:
    """One matrix product C (M x N) = A (M x K) @ B (K x N) of a training step.

    ``layout`` says how the core stores the operands: ``"N"`` as written,
    ``"T"`` as the transpose of a stored (K x M) or (N x K) array, e.g.
    ``"NT"`` is ``a_in @ w.T`` with ``w`` of shape (n_out, n_in).
    """

    name: str
    M: int
    K: int
    N: int
    layout: str = "NN"

    @property
    def flops(self):
        return 2 * self.M * self.K * self.N


def step_gemms(sizes, m):
    """The GEMMs of one batched SGD step on ``m`` rows, for layer widths ``sizes``.

    Per layer l (n_in -> n_out): the forward product (m, n_in) @ (n_in, n_out)
    and the weight gradient (n_out, m) @ (m, n_in); for every layer after the
    first, the error backpropagated into it, (m, n_out) @ (n_out, n_in).
    """
    layers = list(zip(sizes[:-1], sizes[1:]))
    gemms = [Gemm(f"forward {l + 1}", m, n_in, n_out, "NT")
             for l, (n_in, n_out) in enumerate(layers)]
    gemms += [Gemm(f"backprop {l + 1}", m, n_out, n_in, "NN")
              for l, (n_in, n_out) in reversed(list(enumerate(layers))) if l > 0]
    gemms += [Gemm(f"weight gradient {l + 1}", n_out, m, n_in, "TN")
              for l, (n_in, n_out) in enumerate(layers)]
    return gemms


def step_flops(sizes, m):
    """FLOPs of one batched SGD step on ``m`` rows: its GEMMs, 2*M*K*N each
    (the elementwise work is O(m * sum(sizes)) and not counted)."""
    return sum(g.flops for g in step_gemms(sizes, m))


def epoch_flops(sizes, mini_batch_size, train_size):
    """FLOPs of one batched epoch over ``train_size`` examples in mini-batches
    of ``mini_batch_size`` (the last one possibly smaller, as in training)."""
    full, rest = divmod(train_size, mini_batch_size)
    return full * step_flops(sizes, mini_batch_size) + (step_flops(sizes, rest) if rest else 0)


# ---------------------------------------------------------------- GEMM rate
def gemm_workload(backend, gemms, dtype="float32", seed=SEED):
    """``(run, flops)``: ``run(times=1)`` computes every product in ``gemms``
    ``times`` times into preallocated outputs, then synchronises the device;
    ``flops`` is the work of one pass over ``gemms``."""
    xp = backend.xp
    rng = numpy.random.default_rng(seed)

    def operand(rows, cols, transposed):
        shape = (cols, rows) if transposed else (rows, cols)
        array = backend.asarray(rng.random(shape), dtype)
        return array.T if transposed else array

    products = []
    for g in gemms:
        a = operand(g.M, g.K, g.layout[0] == "T")
        b = operand(g.K, g.N, g.layout[1] == "T")
        products.append((a, b, backend.empty((g.M, g.N), dtype)))
    matmul = xp.matmul

    def run(times=1):
        for _ in range(times):
            for a, b, out in products:
                matmul(a, b, out=out)
        backend.synchronize()

    return run, sum(g.flops for g in gemms)


def measure_gemm_rate(backend, gemms, dtype="float32", samples=GEMM_SAMPLES, min_seconds=0.02,
                      clock=time.perf_counter):
    """Median FLOP/s over ``samples`` timings of the products in ``gemms``,
    each timing repeating them often enough to last ``min_seconds``, by
    ``clock`` (the epoch's own, so that CPU seconds are set against CPU
    seconds)."""
    run, flops = gemm_workload(backend, gemms, dtype)
    run()  # warm-up: first-call costs, device kernels
    times = 1
    while True:
        started = clock()
        run(times)
        elapsed = clock() - started
        if elapsed >= min_seconds or times >= 1 << 20:
            break
        times *= 2 if elapsed <= 0 else max(2, min(16, math.ceil(min_seconds / elapsed)))
    seconds = [elapsed]
    for _ in range(samples - 1):
        started = clock()
        run(times)
        seconds.append(clock() - started)
    return flops * times / statistics.median(seconds)


# ------------------------------------------------------------- epoch timing
def time_epochs(run_epoch, repeats, warmup=1, clock=time.perf_counter):
    """Seconds of each of ``repeats`` calls of ``run_epoch`` after ``warmup``
    untimed ones, by ``clock`` (wall time; ``time.process_time``: the CPU time
    of the process, all threads, which a machine shared with other processes
    inflates less)."""
    for _ in range(warmup):
        run_epoch()
    seconds = []
    for _ in range(repeats):
        started = clock()
        run_epoch()
        seconds.append(clock() - started)
    return seconds


def time_interleaved(runners, repeats, clock=time.perf_counter):
    """label -> seconds (by ``clock``) of ``repeats`` calls of each runner,
    after one warm-up call each, taken in turn (one of each, then again), so
    that a change in the machine's load hits every runner alike."""
    for run in runners.values():
        run()
    seconds = {label: [] for label in runners}
    for _ in range(repeats):
        for label, run in runners.items():
            seconds[label] += time_epochs(run, 1, 0, clock)
    return seconds


def run_benchmark(training, sizes, batch_sizes, methods, backend, dtype="float32", repeats=3,
                  progress=None):
    """Measure every (mini-batch size, method); return one result dict per pair.

    ``training`` is ``(X, labels)``. ``batched`` is timed ``repeats`` times
    after a warm-up epoch; ``per_example`` once, without warm-up (it is slow
    and has no first-epoch costs). ``progress(line)`` hears what is measured.
    """
    say = progress or (lambda line: None)
    train_size = len(training[1])
    results = []
    for batch_size in batch_sizes:
        flops = epoch_flops(sizes, batch_size, train_size)
        say(f"GEMM rate at mini-batch {batch_size} ...")
        rate = measure_gemm_rate(backend, step_gemms(sizes, batch_size), dtype)
        floor = flops / rate
        per_example_seconds = None
        for method in sorted(methods, key=lambda m: m != "per_example"):
            say(f"{method}, mini-batch {batch_size} ...")
            net = Network(sizes, backend=backend, dtype=dtype, seed=SEED)
            run_epoch = net.epoch_runner(training, batch_size, ETA, method)
            slow = method == "per_example"
            count, warmup = (1, 0) if slow else (repeats, 1)
            seconds = time_epochs(run_epoch, count, warmup)
            median = statistics.median(seconds)
            if slow:
                per_example_seconds = median
            results.append({
                "backend": backend.name, "method": method, "batch_size": batch_size,
                "repeats": count, "warmup": warmup,
                "seconds": seconds, "median_seconds": median,
                "examples_per_second": train_size / median,
                "speedup_vs_per_example": None, "epoch_flops": flops,
                "gemm_flops_per_second": rate, "floor_seconds": floor,
                "times_floor": median / floor,
            })
        if per_example_seconds is not None:
            for result in results:
                if result["batch_size"] == batch_size and result["method"] != "per_example":
                    result["speedup_vs_per_example"] = per_example_seconds / result["median_seconds"]
    order = {m: i for i, m in enumerate(methods)}
    return sorted(results, key=lambda r: (r["batch_size"], order[r["method"]]))


# ---------------------------------------------------------------- reporting
def blas_description():
    """Which BLAS numpy calls (the CPU backend's speed depends on it)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (install threadpoolctl to find out)"
    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(blas) or "unknown"


def environment(backend):
    """What the figures depend on: versions, the device, the BLAS, the date."""
    return {
        "nn_gpu": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
        "backend": backend.describe(), "blas": blas_description(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def group_name(sizes, mini_batch_size):
    """The pytest-benchmark group of an epoch at this network and mini-batch
    size; the padding sorts the groups by size (1, 10, 32, 100, 1000)."""
    return f"{'-'.join(map(str, sizes))} mb={mini_batch_size:>4}"
