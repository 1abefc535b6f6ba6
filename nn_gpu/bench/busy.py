"""The CPU epoch on a busy machine: a competing process, and the comparison
``nn-gpu bench --busy`` prints.

A laptop always runs something else. :func:`competing_processes` starts
pure spin loops in subprocesses (one per core to keep busy, optionally
pinned) for the length of a ``with`` block; :func:`busy_benchmark` times the
batched epoch under them with the BLAS threads chosen per product (the
default), forced to one, and forced to the BLAS's configured count (what a
BLAS left to itself does), so that robustness is measured, not assumed.
"""

import contextlib
import os
import statistics
import subprocess
import sys

from ..backends import NumpyBackend
from ..backends.cpu.threads import configured_threads
from ..model.network import Network
from .timing import time_interleaved

#: A pure spin loop that ends once its parent is gone (killed without cleaning up).
SPIN = ("import os, sys\nparent = int(sys.argv[1])\n"
        "while os.getppid() == parent:\n    for _ in range(1_000_000):\n        pass\n")
#: The thread settings compared: chosen per product, forced to one, forced to all.
SETTINGS = ("chosen", "1 thread", "all threads")


@contextlib.contextmanager
def competing_processes(count=1, pin=None):
    """Keep ``count`` cores busy with spinning subprocesses while the block
    runs; ``pin`` (a list of CPU numbers, Linux) pins the i-th to pin[i]."""
    spinners = []
    try:
        for i in range(count):
            spinner = subprocess.Popen([sys.executable, "-c", SPIN, str(os.getpid())],
                                       stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            spinners.append(spinner)
            if pin:
                os.sched_setaffinity(spinner.pid, {pin[i % len(pin)]})
        yield [spinner.pid for spinner in spinners]
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()


def epoch_runners(training, sizes, batch_size, threads, eta=3.0, seed=0, dtype="float32"):
    """label -> a function training one batched epoch with the compiled
    epoch's BLAS threads ``threads[label]`` (None: chosen per product)."""
    return {label: Network(sizes, backend=NumpyBackend(threads=count), dtype=dtype,
                           seed=seed).epoch_runner(training, batch_size, eta)
            for label, count in threads.items()}


def busy_benchmark(training, networks, batch_sizes, repeats=5, busy=1, pin=None,
                   settings=SETTINGS, progress=None):
    """One row per (network, mini-batch): the median epoch seconds of each of
    ``settings`` (of :data:`SETTINGS`; "all threads" can take minutes an
    epoch) with ``busy`` cores kept busy (0: none). "chosen" and "1 thread"
    are measured in turn epoch by epoch, so that a change in the machine's
    load hits them alike; "all threads" afterwards, on its own: OpenBLAS's
    worker threads keep spinning for a while after a multi-threaded product,
    and an epoch timed just after one would pay for that spinning."""
    say = progress or (lambda line: None)
    everything = configured_threads()
    threads = {label: {"chosen": None, "1 thread": 1, "all threads": everything}[label]
               for label in settings}
    rows = []
    with competing_processes(busy, pin) if busy else contextlib.nullcontext():
        for sizes in networks:
            for batch_size in batch_sizes:
                say(f"{sizes}, mini-batch {batch_size} ...")
                runners = epoch_runners(training, sizes, batch_size, threads)
                alone = {label: runners.pop(label)
                         for label in ("all threads",) if label in runners}
                seconds = time_interleaved(runners, repeats)
                seconds.update(time_interleaved(alone, repeats))
                medians = {label: statistics.median(s) for label, s in seconds.items()}
                rows.append({"sizes": list(sizes), "batch_size": batch_size, "busy": busy,
                             "blas_threads": everything, "seconds": seconds,
                             "median_seconds": medians,
                             "chosen_over_one_thread": medians["chosen"] / medians["1 thread"]})
    return rows


def format_busy_table(rows):
    """The rows of :func:`busy_benchmark` as text lines."""
    lines = [f"{'network':<14}{'batch':>6}{'chosen s':>10}{'1 thread s':>12}"
             f"{'all threads s':>15}{'chosen/1 thread':>17}"]
    for r in rows:
        m = r["median_seconds"]
        every = f"{m['all threads']:>15.3f}" if "all threads" in m else f"{'-':>15}"
        lines.append(f"{'-'.join(map(str, r['sizes'])):<14}{r['batch_size']:>6}"
                     f"{m['chosen']:>10.3f}{m['1 thread']:>12.3f}{every}"
                     f"{r['chosen_over_one_thread']:>16.2f}x")
    return lines
