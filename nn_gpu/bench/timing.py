"""How fast one training epoch is, and how far from the BLAS (``nn-gpu bench``).

For each method (``batched``, ``per_example``) and mini-batch size it times
whole SGD epochs on MNIST through :meth:`Network.epoch_runner` (the same code
``train`` runs, synchronised with the device), and puts the time next to a
floor: the FLOPs of the batched algorithm's GEMMs in one epoch divided by the
GEMM rate the backend's BLAS reaches at exactly those matrix shapes -- the
fastest of samples taken between the timed epochs (:class:`GemmRate`), and
never more than the fastest epoch (:func:`floor_of`), so that "x floor" is
at least 1 by construction. The ratio says how much of an epoch is
arithmetic and how much is everything else (Python, elementwise passes,
gathers, launch latency). Each result also says whether the rest of the
machine disturbed its measurement (:mod:`.disturbance`).

The FLOP counting and GEMM timing here are plain functions, shared with the
``nn-gpu bench`` command (:mod:`nn_gpu.cli.bench`) and the pytest-benchmark
suites in ``bench/``. Nothing here imports pytest.

    nn-gpu bench                                  # ~1-3 minutes on a laptop CPU
    nn-gpu bench --batch-sizes 10 100 --methods batched --json bench.json
"""

import contextlib
import datetime
import math
import platform
import statistics
import time
from dataclasses import dataclass

import numpy

from ..model.network import Network
from ..version import __version__
from .disturbance import Watch

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


class GemmRate:
    """The FLOP rate the backend's GEMMs reach at the shapes ``gemms``,
    sampled as often as wanted: each :meth:`sample` times the products,
    repeated often enough (found once, at construction) to last
    ``min_seconds`` by ``clock`` (the epoch's own clock, so that CPU seconds
    are set against CPU seconds). :attr:`best` is the fastest sample.

    On the CPU the samples take turns between the BLAS's configured threads
    and one thread, as the epochs choose either (a multi-threaded BLAS on a
    busy machine is many times slower than one thread). A sample can only be
    slowed by the rest of the machine, never sped up, so the fastest of
    samples taken between the epochs (:func:`time_interleaved`'s
    ``between``) is the least disturbed figure, and a floor computed from it
    is the lowest the measurement supports."""

    def __init__(self, backend, gemms, dtype="float32", min_seconds=0.02,
                 clock=time.perf_counter):
        self.run, self.flops = gemm_workload(backend, gemms, dtype)
        self.clock = clock
        self.settings = [None, 1] if backend.name == "numpy" else [None]
        self.rates = []
        self.run()  # warm-up: first-call costs, device kernels
        self.times = 1
        while True:
            elapsed = self._time(None)
            if elapsed >= min_seconds or self.times >= 1 << 20:
                break
            self.times *= 2 if elapsed <= 0 else max(2, min(16, math.ceil(min_seconds / elapsed)))
        self._record(elapsed)

    def _time(self, threads):
        with blas_limit(threads):
            started = self.clock()
            self.run(self.times)
            return self.clock() - started

    def _record(self, elapsed):
        if elapsed > 0:
            self.rates.append(self.flops * self.times / elapsed)

    def sample(self):
        """Time the products once more on each thread setting; return the best rate so far."""
        for threads in self.settings:
            self._record(self._time(threads))
        return self.best

    @property
    def best(self):
        return max(self.rates) if self.rates else math.inf


def blas_limit(threads):
    """A context holding the host BLAS to ``threads`` threads (None: as configured)."""
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")


def measure_gemm_rate(backend, gemms, dtype="float32", samples=GEMM_SAMPLES, min_seconds=0.02,
                      clock=time.perf_counter):
    """The fastest of ``samples`` rounds of :class:`GemmRate` samples (FLOP/s)."""
    rate = GemmRate(backend, gemms, dtype, min_seconds, clock)
    for _ in range(samples - 1):
        rate.sample()
    return rate.best


def floor_of(flops, rate, seconds):
    """(floor seconds, clipped): the epoch's GEMM FLOPs at the best GEMM
    rate sampled, or -- where an epoch ran faster than that, which a floor
    must not allow -- the fastest epoch's seconds, ``clipped`` True. An epoch
    under its floor means the GEMM samples were all slowed (a busy machine)
    or the epoch does less arithmetic than counted; either way the ratio
    "x floor" is then 1 at the fastest epoch, never below."""
    floor = flops / rate
    fastest = min(seconds)
    return (fastest, True) if fastest < floor else (floor, False)


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


def time_interleaved(runners, repeats, clock=time.perf_counter, between=None):
    """label -> seconds (by ``clock``) of ``repeats`` calls of each runner,
    after one warm-up call each, taken in turn (one of each, then again), so
    that a change in the machine's load hits every runner alike;
    ``between()``, where given, runs before each round (a GEMM sample)."""
    for run in runners.values():
        run()
    seconds = {label: [] for label in runners}
    for _ in range(repeats):
        if between is not None:
            between()
        for label, run in runners.items():
            seconds[label] += time_epochs(run, 1, 0, clock)
    return seconds


def run_benchmark(training, sizes, batch_sizes, methods, backend, dtype="float32", repeats=3,
                  progress=None, one_thread=False):
    """Measure every (mini-batch size, method); return one result dict per pair.

    ``training`` is ``(X, labels)``. ``batched`` is timed ``repeats`` times
    after a warm-up epoch, a GEMM rate sample (:class:`GemmRate`) before
    each, the floor from the fastest sample (:func:`floor_of`);
    ``per_example`` once, without warm-up (it is slow and has no first-epoch
    costs). Each result's ``disturbance`` is what :class:`.disturbance.Watch`
    saw around its mini-batch size (``one_thread``: the process timed on one
    thread). ``progress(line)`` hears what is measured.
    """
    say = progress or (lambda line: None)
    train_size = len(training[1])
    results = []
    for batch_size in batch_sizes:
        flops = epoch_flops(sizes, batch_size, train_size)
        group = []
        with Watch() as watch:
            say(f"GEMM rate at mini-batch {batch_size} ...")
            rate = GemmRate(backend, step_gemms(sizes, batch_size), dtype)
            for method in sorted(methods, key=lambda m: m != "per_example"):
                say(f"{method}, mini-batch {batch_size} ...")
                net = Network(sizes, backend=backend, dtype=dtype, seed=SEED)
                run_epoch = net.epoch_runner(training, batch_size, ETA, method)
                slow = method == "per_example"
                count, warmup = (1, 0) if slow else (repeats, 1)
                seconds = (time_epochs(run_epoch, 1, 0) if slow else
                           time_interleaved({method: run_epoch}, repeats,
                                            between=rate.sample)[method])
                group.append({"backend": backend.name, "method": method,
                              "batch_size": batch_size, "repeats": count, "warmup": warmup,
                              "seconds": seconds, "median_seconds": statistics.median(seconds),
                              "examples_per_second": train_size / statistics.median(seconds),
                              "speedup_vs_per_example": None, "epoch_flops": flops})
        timed = [r for r in group if r["method"] != "per_example"] or group
        floor, clipped = floor_of(flops, rate.best, [s for r in timed for s in r["seconds"]])
        disturbance = watch.report({r["method"]: r["seconds"] for r in group if r["repeats"] > 1},
                                   one_thread).as_dict()
        slow = [r["median_seconds"] for r in group if r["method"] == "per_example"]
        for r in group:
            r.update({"gemm_flops_per_second": rate.best, "gemm_rate_samples": rate.rates,
                      "floor_seconds": floor, "floor_clipped": clipped,
                      "times_floor": r["median_seconds"] / floor, "disturbance": disturbance})
            if slow and r["method"] != "per_example":
                r["speedup_vs_per_example"] = slow[0] / r["median_seconds"]
        results += group
    order = {m: i for i, m in enumerate(methods)}
    return sorted(results, key=lambda r: (r["batch_size"], order[r["method"]]))


# ---------------------------------------------------------------- reporting
def blas_description():
    """Which BLAS numpy calls (the CPU backend's speed depends on it)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (install threadpoolctl to find out)"
    blas = [f"{i.get('internal_api')} {i.get('version')} ({plural(i.get('num_threads'), 'thread')})"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(blas) or "unknown"


def plural(count, noun):
    """'1 thread', '2 threads' (and 'None threads' for an unknown count)."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


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
