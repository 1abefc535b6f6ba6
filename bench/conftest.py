"""Fixtures of the pytest-benchmark suites (run with ``pytest bench --benchmark-only``).

These suites are not part of the test run (``testpaths`` is ``tests``): they
time real epochs on the genuine MNIST training set and take minutes. The
CuPy cases carry the ``gpu`` marker and are skipped, with CuPy's reason,
wherever no CUDA device is usable.

Every benchmark is watched (:class:`nn_gpu.bench.disturbance.Watch`): its
``extra_info["disturbance"]`` says what the rest of the machine did
meanwhile, a case measured on a disturbed machine raises a
:class:`~nn_gpu.bench.disturbance.DisturbedWarning` with the reasons, and the
terminal summary counts them.
"""

import os
from pathlib import Path

import pytest

from nn_gpu.backends import cupy_status, get_backend
from nn_gpu.bench.disturbance import Watch, record_benchmark

DISTURBED = []  # the node ids of the cases measured on a disturbed machine

REPO_ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)]


def mnist_dir():
    """$NN_GPU_DATA, else ../shared/data/mnist beside the repository (as tests/)."""
    return Path(os.environ.get("NN_GPU_DATA") or REPO_ROOT.parent / "shared" / "data" / "mnist")


@pytest.fixture
def median_of():
    """``median_of(benchmark)``: the median of the timed rounds, None when
    timing is disabled (--benchmark-disable)."""
    def median(benchmark):
        stats = getattr(benchmark, "stats", None)
        return None if stats is None else stats.stats.median

    return median


@pytest.fixture(scope="session")
def mnist_training():
    """The 50,000 MNIST training examples (X float32, labels), loaded once."""
    from nn_gpu.data.mnist import load_mnist

    path = mnist_dir()
    if not path.is_dir():
        pytest.skip(f"MNIST not found at {path}: set NN_GPU_DATA")
    training, _, _ = load_mnist(path)
    return training


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each real backend in turn; CuPy is skipped with its reason when unusable."""
    if request.param == "cupy":
        usable, reason = cupy_status()
        if not usable:
            pytest.skip(f"no usable GPU: {reason}")
    return get_backend(request.param)


@pytest.fixture(autouse=True)
def watched(request):
    """Watch each benchmark case (those using the ``benchmark`` fixture)."""
    if "benchmark" not in request.fixturenames:
        yield
        return
    with Watch() as watch:
        yield
    benchmark = request.node.funcargs.get("benchmark")
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable, or skipped before timing
        return
    from nn_gpu.backends.cpu.threads import configured_threads

    one_cpu = hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) == 1
    disturbance = watch.report({"rounds": list(stats.stats.data)},
                               one_thread=configured_threads() == 1 or one_cpu)
    record_benchmark(benchmark.extra_info, disturbance, request.node.nodeid)
    if disturbance.disturbed:
        DISTURBED.append(request.node.nodeid)


def pytest_terminal_summary(terminalreporter):
    if DISTURBED:
        terminalreporter.write_line(
            f"{len(DISTURBED)} benchmark{'s' if len(DISTURBED) != 1 else ''} measured on a "
            "disturbed machine (other processes, load or spread between rounds: see the "
            "warnings and each one's extra_info['disturbance']); rerun them on a quiet one",
            yellow=True)
