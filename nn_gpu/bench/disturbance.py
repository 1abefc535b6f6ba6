"""Was a timing disturbed by the rest of the machine? One line that says so.

A shared machine runs other things while a benchmark measures, and an epoch
that waits for a core looks slower than it is (or a GEMM timing that waits
makes a "floor" the epoch then beats). :class:`Watch` notes, around a
measurement, what can be read without privileges:

* **other processes' CPU**: the whole machine's busy time from Linux's
  ``/proc/stat`` minus this process's own CPU time, in cores over the wall
  time (a process spinning on one core: ~1.0);
* **this process's share of the wall time on a CPU**: its CPU seconds over
  the wall seconds, for a measurement on one thread (~1.0 undisturbed; a
  thread that waits for a core has less);
* **the load average** (runnable threads, 1-minute mean) against the CPUs;
* **the spread of the repeats**: (slowest - fastest) / median of each
  timed thing.

:func:`judge` turns them into a :class:`Disturbance`; its :meth:`line
<Disturbance.line>` is the one line ``nn-gpu bench`` prints under its table
and the pytest-benchmark suites put into ``extra_info`` (with a warning).
The thresholds are deliberately low: they flag a measurement to rerun, they
never change a figure.
"""

import os
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field

from ..backends.cpu.threads import machine_busy_seconds

#: Other processes using this many cores on average disturb a measurement.
OTHERS_CORES = 0.25
#: A one-thread measurement on a CPU less than this share of its wall time waited for one.
CPU_SHARE = 0.85
#: (slowest - fastest) / median of one thing's repeats above this: disturbed.
SPREAD = 0.25


def machine_cpus():
    return os.cpu_count() or 1


def load_average():
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


@dataclass
class Disturbance:
    """What :func:`judge` found: the readings, and ``reasons`` (empty: quiet)."""

    cpus: int
    others_cores: float | None
    cpu_share: float | None
    load: float | None
    spread: dict = field(default_factory=dict)
    one_thread: bool = False
    reasons: list = field(default_factory=list, init=False)

    def __post_init__(self):
        self.reasons = reasons(self)

    @property
    def disturbed(self):
        return bool(self.reasons)

    def line(self):
        """One line: "disturbed measurement: ..." with every reason, or
        "quiet machine: ..." with the readings."""
        if self.reasons:
            return ("disturbed measurement (times may be inflated; rerun on a quiet machine): "
                    + "; ".join(self.reasons))
        readings = []
        if self.others_cores is not None:
            readings.append(f"other processes used {self.others_cores:.2f} of "
                            f"{self.cpus} CPUs")
        if self.load is not None:
            readings.append(f"load average {self.load:.1f}")
        if self.spread:
            readings.append(f"repeats within {max(self.spread.values()):.0%}")
        return "quiet machine: " + ", ".join(readings or ["nothing to read"])

    def as_dict(self):
        return {**asdict(self), "disturbed": self.disturbed}

    @classmethod
    def from_dict(cls, readings):
        """The Disturbance :meth:`as_dict` wrote (its reasons found again)."""
        return cls(**{key: value for key, value in readings.items()
                      if key not in ("reasons", "disturbed")})


def spread(seconds):
    """(slowest - fastest) / median of a list of timings (0 for fewer than two)."""
    if len(seconds) < 2:
        return 0.0
    middle = statistics.median(seconds)
    return (max(seconds) - min(seconds)) / middle if middle > 0 else 0.0


def reasons(d):
    """Why the readings of :class:`Disturbance` ``d`` say disturbed (empty: quiet)."""
    found = []
    if d.others_cores is not None and d.others_cores >= OTHERS_CORES:
        found.append(f"other processes used {d.others_cores:.2f} of {d.cpus} CPUs")
    if d.one_thread and d.cpu_share is not None and d.cpu_share < CPU_SHARE:
        found.append(f"this process was on a CPU {d.cpu_share:.0%} of the time")
    if d.load is not None and d.load > d.cpus:
        found.append(f"load average {d.load:.1f} on {d.cpus} CPUs")
    wide = {label: value for label, value in d.spread.items() if value > SPREAD}
    if wide:
        label, value = max(wide.items(), key=lambda item: item[1])
        found.append(f"repeats spread {value:.0%} ({label})")
    return found


def judge(wall, cpu, others_busy, loads, cpus, samples, one_thread):
    """A :class:`Disturbance` from a measurement's readings: ``wall`` and
    ``cpu`` seconds of this process over it, ``others_busy`` the CPU seconds
    other processes used meanwhile (None: unknown), ``loads`` the load
    averages read (None entries: unknown), ``samples`` label -> the repeats'
    seconds, ``one_thread`` whether this process timed on one thread."""
    others = None if others_busy is None or wall <= 0 else max(0.0, others_busy / wall)
    share = cpu / wall if wall > 0 else None
    known = [load for load in loads if load is not None]
    return Disturbance(cpus, others, share, max(known) if known else None,
                       {label: spread(seconds) for label, seconds in samples.items()},
                       one_thread)


class Watch:
    """Readings at the start and end of a ``with`` block, for :func:`judge`
    (:meth:`report`)."""

    def __enter__(self):
        self.loads = [load_average()]
        self.start = (time.perf_counter(), time.process_time(), machine_busy_seconds())
        self.end = None
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.end is None:
            self.end = (time.perf_counter(), time.process_time(), machine_busy_seconds())
            self.loads.append(load_average())

    def report(self, samples, one_thread):
        """The :class:`Disturbance` of the block (ended now if still open)."""
        self.stop()
        wall, cpu = self.end[0] - self.start[0], self.end[1] - self.start[1]
        busy = (None if self.start[2] is None or self.end[2] is None
                else self.end[2] - self.start[2] - cpu)
        return judge(wall, cpu, busy, self.loads, machine_cpus(), samples, one_thread)


def worst(disturbances):
    """One :class:`Disturbance` for several measurements (Disturbances or
    their :meth:`~Disturbance.as_dict`): the highest of each reading (the
    lowest CPU share), so every reason any of them had."""
    disturbances = [d if isinstance(d, Disturbance) else Disturbance.from_dict(d)
                    for d in disturbances]
    if not disturbances:
        return Disturbance(machine_cpus(), None, None, None)

    def pick(values, choose=max):
        values = [v for v in values if v is not None]
        return choose(values) if values else None

    spreads = {}
    for d in disturbances:
        for label, value in d.spread.items():
            spreads[label] = max(value, spreads.get(label, 0.0))
    return Disturbance(disturbances[0].cpus, pick(d.others_cores for d in disturbances),
                       pick((d.cpu_share for d in disturbances), min),
                       pick(d.load for d in disturbances), spreads,
                       any(d.one_thread for d in disturbances))


class DisturbedWarning(UserWarning):
    """A benchmark measured while the rest of the machine disturbed it."""


def record_benchmark(extra_info, disturbance, name):
    """For a pytest-benchmark case ``name``: put the :class:`Disturbance`
    into its ``extra_info`` (saved with ``--benchmark-json`` and
    ``--benchmark-autosave``) and, where disturbed, warn with its line."""
    extra_info["disturbance"] = disturbance.as_dict()
    if disturbance.disturbed:
        warnings.warn(f"{name}: {disturbance.line()}", DisturbedWarning, stacklevel=2)
