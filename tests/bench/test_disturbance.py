"""A disturbed measurement is said so, in one line: the rules on given
readings, then a real competing process (``nn_gpu.bench.busy``'s spinner)
seen by :class:`Watch`, by ``nn-gpu bench --conv`` and by the
pytest-benchmark record. Assertions are on what is detected, never on how
long anything took."""

import json
import os
import re
import time
import warnings
from contextlib import redirect_stdout
from io import StringIO

import pytest
from conftest import mnist_dir, needs_mnist

from nn_gpu.bench import disturbance
from nn_gpu.bench.busy import competing_processes
from nn_gpu.bench.disturbance import (
    OTHERS_CORES,
    Disturbance,
    DisturbedWarning,
    Watch,
    judge,
    record_benchmark,
    spread,
    worst,
)
from nn_gpu.bench.timing import floor_of, plural
from nn_gpu.cli import main as nn_gpu_main

needs_proc_stat = pytest.mark.skipif(disturbance.machine_busy_seconds() is None,
                                     reason="the machine's busy time is read from Linux's "
                                            "/proc/stat")


def quiet(**changes):
    """judge() on readings of an undisturbed 2-CPU measurement, with ``changes``."""
    readings = {"wall": 10.0, "cpu": 9.9, "others_busy": 0.2, "loads": [0.4, 1.1], "cpus": 2,
                "samples": {"nn_gpu": [1.0, 1.05, 1.02]}, "one_thread": True, **changes}
    return judge(**readings)


# ----------------------------------------------------------------- the rules
def test_a_quiet_measurement_says_so_with_its_readings():
    d = quiet()
    assert not d.disturbed and d.reasons == []
    assert d.line() == ("quiet machine: other processes used 0.02 of 2 CPUs, load average 1.1, "
                        "repeats within 5%")


@pytest.mark.parametrize("changes, reason", [
    ({"others_busy": 10.0}, "other processes used 1.00 of 2 CPUs"),
    ({"others_busy": OTHERS_CORES * 10.0}, "other processes used 0.25 of 2 CPUs"),
    ({"cpu": 6.0}, "this process was on a CPU 60% of the time"),
    ({"loads": [2.5, None]}, "load average 2.5 on 2 CPUs"),
    ({"samples": {"nn_gpu": [1.0, 1.0], "PyTorch": [1.0, 1.5, 1.1]}},
     "repeats spread 45% (PyTorch)"),
])
def test_each_sign_alone_makes_it_disturbed(changes, reason):
    d = quiet(**changes)
    assert d.reasons == [reason]
    line = d.line()
    assert line.startswith("disturbed measurement (times may be inflated; rerun on a quiet "
                           "machine): ") and line.endswith(reason) and "\n" not in line


def test_what_cannot_be_read_is_no_sign():
    d = quiet(others_busy=None, loads=[None, None], samples={"once": [1.0]})
    assert not d.disturbed and d.others_cores is None and d.load is None
    assert d.line() == "quiet machine: repeats within 0%"


def test_the_cpu_share_counts_only_on_one_thread():
    """Two threads may each wait and still sum to the wall time: only a
    one-thread measurement's share says it waited."""
    assert quiet(cpu=6.0, one_thread=False).reasons == []


def test_worst_of_several_keeps_every_reason_once():
    merged = worst([quiet(others_busy=10.0).as_dict(), quiet(loads=[3.0]), quiet()])
    assert merged.reasons == ["other processes used 1.00 of 2 CPUs", "load average 3.0 on 2 CPUs"]
    assert Disturbance.from_dict(merged.as_dict()) == merged
    assert not worst([]).disturbed


def test_spread_and_plurals():
    assert spread([2.0]) == 0.0 and spread([1.0, 3.0, 2.0]) == 1.0
    assert plural(1, "thread") == "1 thread" and plural(2, "thread") == "2 threads"


def test_the_floor_is_never_above_the_fastest_epoch():
    assert floor_of(100.0, 50.0, [3.0, 2.5]) == (2.0, False)
    assert floor_of(100.0, 10.0, [3.0, 9.0]) == (3.0, True)   # GEMM samples all slowed


# ------------------------------------------------- a real competing process
def spin_here(seconds):
    """Keep this process's own thread busy for ``seconds`` of CPU time."""
    started = time.process_time()
    while time.process_time() - started < seconds:
        sum(range(1000))


@pytest.mark.slow
@needs_proc_stat
def test_a_spinning_process_is_seen_as_other_processes_cpu():
    with competing_processes(1) as pids, Watch() as watch:
        assert len(pids) == 1
        spin_here(0.4)
    d = watch.report({}, one_thread=True)
    assert d.others_cores >= OTHERS_CORES        # the spinner's share of a core, at least
    assert d.disturbed and any(r.startswith("other processes used") for r in d.reasons)
    # This thread spun; the process's other threads (a BLAS pool still
    # spinning down from an earlier product) may add to it, never past every
    # CPU the process may use.
    assert 0 < d.cpu_share <= len(os.sched_getaffinity(0)) + 0.05


@pytest.mark.slow
@needs_mnist
@needs_proc_stat
def test_bench_conv_says_its_measurement_was_disturbed(tmp_path):
    path = tmp_path / "conv.json"
    out = StringIO()
    with competing_processes(1), redirect_stdout(out):
        rc = nn_gpu_main(["bench", "--conv", "ch6-conv1", "--data", str(mnist_dir()),
                          "--train-size", "40", "--batch-sizes", "10", "--repeats", "2",
                          "--backend", "numpy", "--threads", "1", "--json", str(path)])
    assert rc == 0
    lines = out.getvalue().splitlines()
    assert "(1 thread)" in lines[0] and "threads)" not in lines[0]
    assert re.match(r"10 ", lines[2])
    assert lines[3].startswith("disturbed measurement") and "other processes used" in lines[3]
    result, = json.loads(path.read_text())["results"]
    assert result["disturbance"]["disturbed"] and result["times_floor"] >= 1


@pytest.mark.slow
@needs_proc_stat
def test_a_benchmark_record_gets_the_disturbance_and_a_warning():
    extra_info = {}
    with competing_processes(1), Watch() as watch:
        spin_here(0.3)
    with pytest.warns(DisturbedWarning, match=r"^bench/x\.py::case: disturbed measurement"):
        record_benchmark(extra_info, watch.report({"rounds": [1.0, 1.2, 1.0]}, True),
                         "bench/x.py::case")
    assert extra_info["disturbance"]["disturbed"]
    assert extra_info["disturbance"]["spread"] == {"rounds": pytest.approx(0.2)}


def test_a_quiet_record_does_not_warn():
    extra_info = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        record_benchmark(extra_info, quiet(), "case")
    assert extra_info["disturbance"]["disturbed"] is False
