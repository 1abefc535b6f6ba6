"""How many BLAS threads each product of the compiled CPU epoch gets.

OpenBLAS splits a GEMM among its threads and waits, spinning, until each has
finished its share. On a quiet machine a second thread pays once a product is
large enough; on a busy one (a laptop always runs something else) the second
thread shares a core with another process, and every product waits for it to
be scheduled again: a mini-batch-100 epoch can take 20x its one-thread
time with one core kept busy (``nn-gpu bench --busy``; ``docs/log.md``,
2026-12-02). So:

* products below ``MIN_MNK_FOR_THREADS`` (M·N·K, :mod:`nn_gpu.backends.measured`)
  always run on one thread (``bench/gemm_threads.py`` measures where two
  threads start to pay: from ~0.8-2.5 M on the 2-vCPU machine of
  ``docs/performance.md``, noisily);
* the larger ones get the BLAS's configured threads only while that is
  measured to be faster: :class:`ThreadChoice` starts on one thread, times
  short probes with all, and keeps the faster;
* ``threads=N`` fixes N for every product, for those who want to choose,
  and for runs that must repeat bit for bit: OpenBLAS's multi-threaded GEMMs
  round differently from its single-threaded ones, so a timed choice can
  change the last bits of a run.

Only SciPy's BLAS is switched (the one the compiled epoch calls), and only
during an epoch call (:func:`blas_threads_kept`); NumPy's, which scores and
runs the generic core, is left as configured. The compiled
epoch is a serial Numba function, so Numba's own threading layer is unused.
"""

import ctypes
import functools
import os
import time
from pathlib import Path

from .. import measured

_SET_THREADS_NAMES = ("scipy_openblas_set_num_threads", "openblas_set_num_threads",
                      "scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_")


@functools.cache
def scipy_blas():
    """(threadpoolctl controller, address of its C ``set_num_threads(int)``)
    of the BLAS behind ``scipy.linalg.cython_blas``; (controller or None, None)
    where it is not an OpenBLAS we can switch per product."""
    import scipy
    import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's BLAS)
    from threadpoolctl import ThreadpoolController

    blas = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
    scipy_dirs = {Path(scipy.__file__).parent, Path(scipy.__file__).parent.with_name("scipy.libs")}
    own = [c for c in blas if scipy_dirs & set(Path(c.filepath).parents)]
    controller = own[0] if own else (blas[0] if len(blas) == 1 else None)
    if controller is None or controller.internal_api != "openblas":
        return controller, None
    library = ctypes.CDLL(controller.filepath)
    for name in _SET_THREADS_NAMES:
        if hasattr(library, name):
            return controller, ctypes.cast(getattr(library, name), ctypes.c_void_p).value
    return controller, None


def configured_threads():
    """The threads SciPy's BLAS is set to use (1 where unknown)."""
    functions = _thread_count_functions()
    if functions:           # ctypes directly: the epoch asks at each of its calls
        return functions[0]()
    controller, _ = scipy_blas()
    return controller.get_num_threads() if controller is not None else 1


@functools.cache
def _thread_count_functions():
    """(get, set): ctypes functions of SciPy's OpenBLAS for its thread count,
    or None where the epoch cannot switch it."""
    controller, set_address = scipy_blas()
    if set_address is None:
        return None
    library = ctypes.CDLL(controller.filepath)
    getter = next((getattr(library, name.replace("set_", "get_"))
                   for name in _SET_THREADS_NAMES
                   if hasattr(library, name.replace("set_", "get_"))), None)
    if getter is None:
        return None
    getter.restype, getter.argtypes = ctypes.c_int, []
    return getter, ctypes.CFUNCTYPE(None, ctypes.c_int)(set_address)


class blas_threads_kept:
    """A block after which SciPy's BLAS has the thread count it had before it
    (the compiled epoch switches it per product): a scope, so the
    process-wide setting is the caller's again after every epoch call, even
    one that raised. (A class, not a generator: it wraps every one of the
    ~50 calls of an epoch, and costs a microsecond here.)"""

    def __enter__(self):
        self.functions = _thread_count_functions()
        self.before = self.functions[0]() if self.functions else None
        return self

    def __exit__(self, *exc_info):
        if self.functions and self.functions[0]() != self.before:
            self.functions[1](self.before)
        return False


def product_sizes(sizes, m):
    """M·N·K of each product of one step on m rows, as rows (forward,
    backprop, weight update) per layer, in the compiled epoch's order."""
    return [(m * n_in * n_out,) * 3 for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def thread_table(sizes, m, threads):
    """Threads per (layer, product) for a step on m rows when at most
    ``threads`` may be used: 1 below :data:`nn_gpu.backends.measured.MIN_MNK_FOR_THREADS`."""
    return [[threads if mnk >= measured.MIN_MNK_FOR_THREADS else 1 for mnk in row]
            for row in product_sizes(sizes, m)]


def machine_busy_seconds():
    """CPU seconds the whole machine has spent busy since boot, all CPUs
    together (Linux's ``/proc/stat``: user, nice, system, irq, softirq,
    steal), or None where that cannot be read."""
    try:
        with open("/proc/stat", "rb") as handle:
            fields = handle.readline().split()
        busy = sum(int(fields[i]) for i in (1, 2, 3, 6, 7, 8))
        return busy / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class IdleCores:
    """How many cores the whole machine left idle lately, from Linux's
    /proc/stat: over the time since the last estimate, once that is at least
    :attr:`WINDOW` seconds (before the first estimate: 0, as if busy); None
    where /proc/stat cannot be read."""

    PATH = "/proc/stat"
    WINDOW = 0.05          # a few of /proc/stat's 10-ms ticks

    def __init__(self):
        self.start = self._read()
        self.estimate = 0.0

    def _read(self):
        try:
            with open(self.PATH, "rb") as handle:
                fields = handle.readline().split()     # cpu user nice system idle iowait ...
            return time.monotonic(), (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def __call__(self):
        now = self._read()
        if now is None or self.start is None:
            return None
        if now[0] - self.start[0] >= self.WINDOW:
            self.estimate = (now[1] - self.start[1]) / (now[0] - self.start[0])
            self.start = now
        return self.estimate


class ThreadChoice:
    """Chooses, segment by segment, between one thread and the BLAS's
    configured count for the epoch's large products, by timing both.

    One thread is the safe start. Now and then the first quarter of a segment
    (a *probe*, see :meth:`probe`) runs with the other choice; the probe's
    time per example decides. Many threads are probed only while the machine
    has the cores idle for them (``idle_cores()``; None: unknown, probe),
    as a probe on a busy machine can take many times a segment's time. The
    other count is taken only when its probe is faster by :attr:`MARGIN`
    than the median of the last three segments; probes that lose are repeated
    ever more rarely (after 8, 16, ... segments, at most every
    :attr:`MAX_INTERVAL`), and a segment on many threads slower than that
    median on one thread goes straight back to one thread: a machine that
    becomes busy costs a segment, not an epoch.
    """

    MARGIN = 0.9
    FIRST_INTERVAL = 8
    MAX_INTERVAL = 256    # ~5 epochs of ~50 segments

    def __init__(self, threads, idle_cores=lambda: None):
        self.choices = (1, threads)
        self.idle_cores = idle_cores
        self.best = 1
        self.times = {1: [], threads: []}     # choice -> its last seconds per example
        self.interval = self.FIRST_INTERVAL
        self.countdown = 1             # one segment on one thread first, for a reference

    def probe(self):
        """The choice to try on the start of this segment, or None."""
        if self.countdown > 0:
            return None
        other = self._other()
        idle = self.idle_cores() if other != 1 else None
        if idle is not None and idle < 0.75 * (other - 1):    # no cores for them
            self.countdown = self.interval
            return None
        return other

    def record(self, choice, seconds_per_example):
        """Hear the time per example of a probe or of a segment on ``best``."""
        self.times[choice] = (self.times[choice] + [seconds_per_example])[-3:]
        other = self.times[self._other(choice)]
        reference = sorted(other)[len(other) // 2] if other else None
        if choice != self.best:                                # a probe
            if reference is None or seconds_per_example < self.MARGIN * reference:
                self.best, self.interval = choice, self.FIRST_INTERVAL
            else:
                self.interval = min(2 * self.interval, self.MAX_INTERVAL)
            self.countdown = self.interval
        elif (choice != 1 and reference is not None
              and seconds_per_example * self.MARGIN > reference):
            self.best, self.interval = 1, self.FIRST_INTERVAL  # busy now: back to one thread
            self.countdown = self.interval
        else:
            self.countdown -= 1

    def _other(self, choice=None):
        choice = self.best if choice is None else choice
        return self.choices[1] if choice == self.choices[0] else self.choices[0]
