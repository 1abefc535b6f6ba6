"""The fused GPU epoch (nn_gpu/backends/cuda/epoch.py) held to the generic
core: under Numba's CUDA simulator on every run (``cudasim``), and on a real
device where one is usable (``gpu``)."""

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy
import pytest

from nn_gpu.backends import gpu_path_for
from nn_gpu.backends.cuda import epoch as cuda_epoch
from nn_gpu.model import core
from nn_gpu.model.costs import get_cost

TESTS = Path(__file__).resolve().parents[1]
SCRIPT = TESTS / "cudasim_cases.py"
# The cases' names, read without importing the script (that would pick the simulator here).
CASES = ([f"{h}-{c}" for h in ("sigmoid", "tanh", "relu")
          for c in ("quadratic", "cross_entropy", "log_likelihood")]
         + ["l2-momentum", "l1-l2", "l1-momentum", "split-dot-products", "float32",
            "4-blocks-momentum", "2-uneven-blocks", "2-blocks-split-float32-softmax-momentum",
            "split-wider-than-the-inputs", "network-on-fake-cupy",
            "one-output-quadratic", "one-output-cross_entropy"])


@pytest.fixture(scope="module")
def simulated():
    """{case: max |fused - core|}, from one simulator subprocess for all cases."""
    pytest.importorskip("numba")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1",
           "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.cudasim
@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_fused_epoch_matches_the_core_under_the_simulator(simulated, case):
    tolerance = 1e-5 if "float32" in case else 1e-12
    assert simulated[case] <= tolerance


@pytest.mark.cudasim
@pytest.mark.slow
def test_every_case_ran(simulated):
    assert sorted(simulated) == sorted(CASES)


def plan(**settings):
    cost = get_cost(settings.pop("cost", "quadratic"))
    return core.Plan(cost=cost, kinds=settings.pop("kinds", ("sigmoid", cost.output_activation)),
                     eta=3.0, train_size=50_000, **settings)


@pytest.mark.parametrize("sizes, batch, dtype, settings, why", [
    ([784, 30, 10], 10, "float32", {}, None),
    ([784, 30, 10], 100, "float32", {}, None),
    ([784, 100, 10], 10, "float64", {}, None),
    ([784, 30, 10], 1000, "float32", {}, "shared memory"),
    ([784, 30, 30, 10], 10, "float32", {"kinds": ("sigmoid",) * 3}, "3 weight layers"),
    ([784, 30, 10], 10, "float32", {"dropout": 0.5}, "dropout"),
])
def test_what_the_fused_epoch_takes(sizes, batch, dtype, settings, why):
    reason = cuda_epoch.unsupported(plan(**settings), sizes, batch, dtype)
    assert (reason is None) if why is None else (why in str(reason)), reason


def test_a_training_it_cannot_take_is_left_to_the_caller():
    epoch = cuda_epoch.FusedEpoch()
    X = numpy.zeros((4, 784))
    weights = [numpy.zeros((30, 784)), numpy.zeros((10, 30))]
    assert epoch(plan(), weights, [None, None], X, None, numpy.arange(4), 1000, None) is False


def test_gpu_path_for_names_the_path(monkeypatch):
    from nn_gpu.backends.cuda import cupy_backend

    monkeypatch.setattr(cupy_backend, "numba_cuda_usable", lambda: True)
    assert gpu_path_for([784, 30, 10], 10, "float32", plan())[0] == "fused_gpu"
    path, why, seconds = gpu_path_for([784, 30, 10], 1000, "float32", plan())
    assert path == "cublas" and "shared memory" in why and seconds["cublas"] < seconds["cpu"]


@pytest.mark.parametrize("sizes, batch, fused", [
    ([784, 30, 10], 1, True), ([784, 30, 10], 10, True), ([784, 30, 10], 100, False),
    ([784, 100, 10], 10, True)])
def test_the_fused_epoch_runs_only_where_the_estimate_puts_it_ahead_of_cublas(
        monkeypatch, sizes, batch, fused):
    """Where the kernel fits, the launch/FLOP model decides: at mini-batch 100
    of [784, 30, 10] the cuBLAS path is estimated faster (0.044 against 0.061 s),
    so the fused epoch leaves it the training -- unless told to run wherever
    it can (the benchmarks)."""
    from nn_gpu.backends import estimate

    seconds = estimate.epoch_seconds(sizes, batch, 50_000, fused=True)
    assert (seconds["fused"] < seconds["cublas"]) == fused
    why = cuda_epoch.why_not_fused(plan(), sizes, batch, "float32")
    assert (why is None) == fused
    if not fused:
        assert why.option == "estimate" and "cuBLAS path is estimated faster" in str(why)
    fake = types.ModuleType("nn_gpu.backends.cuda.kernel")   # no numba.cuda in this process
    fake.make_kernel = lambda constants: ("kernel", constants)
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    epoch = cuda_epoch.FusedEpoch()
    assert (epoch.kernel(plan(), sizes, batch, "float32") is not None) == fused
    epoch.by_estimate = False
    assert epoch.kernel(plan(), sizes, batch, "float32")[1].batch_size == batch


@pytest.mark.gpu
@pytest.mark.parametrize("hidden, cost, settings", [
    ("sigmoid", "quadratic", {}), ("relu", "log_likelihood", {"momentum": 0.7, "l2": 5.0}),
    ("tanh", "cross_entropy", {"l1": 1.0})])
def test_fused_epoch_on_the_device_matches_the_core(hidden, cost, settings):
    """Real CuPy and numba-cuda, float64, [784, 30, 10] on random data, a
    partial last mini-batch: the fused epoch against the NumPy core."""
    from nn_gpu import Network
    from nn_gpu.backends.cuda.cupy_backend import CupyBackend, numba_cuda_usable

    if not numba_cuda_usable():
        pytest.skip("numba-cuda cannot launch kernels here")
    rng = numpy.random.default_rng(0)
    X, labels = rng.random((1003, 784)), rng.integers(0, 10, 1003)
    nets = []
    for backend in (CupyBackend(), "numpy"):
        net = Network([784, 30, 10], cost=cost, activation=hidden, backend=backend,
                      dtype="float64", seed=1, init="scaled")
        net.sgd((X, labels), 2, 10, 0.5, **settings)
        nets.append(net)
    gpu, cpu = nets
    assert gpu.backend.compiled_epoch(plan(cost=cost, kinds=(hidden, gpu.cost.output_activation))) \
        is not None
    for a, b in zip(gpu.weights + gpu.biases, cpu.weights + cpu.biases):
        numpy.testing.assert_allclose(gpu.backend.to_host(a), b, rtol=1e-10, atol=1e-11)
