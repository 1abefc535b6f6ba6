"""A fused kernel that fails to compile or launch on a device leaves the
training to the cuBLAS path, with one warning line; and the fused epoch
passes only the buffers that exist. The failures are injected: the kernel
factory (nn_gpu.backends.cuda.kernel, never imported here: it would load
numba.cuda) is replaced by a stand-in, on the CuPy stand-in."""

import logging
import sys
import types

import fake_cupy
import numpy
import pytest

from nn_gpu import Network
from nn_gpu.backends.cuda import epoch as cuda_epoch
from nn_gpu.backends.cuda.records import FusedArguments, KernelConstants

SIZES = [20, 8, 3]


class Kernel:
    """A compiled kernel's stand-in: records each launch's arguments, and
    raises ``fails`` (an exception) at the launches ``failing`` names."""

    def __init__(self, constants, fails=None, failing=()):
        self.constants, self.fails, self.failing = constants, fails, set(failing)
        self.launches = []

    def __getitem__(self, configuration):
        def launch(*arguments):
            self.launches.append(FusedArguments(*arguments))
            if len(self.launches) in self.failing:
                raise self.fails
        return launch


@pytest.fixture
def kernels(monkeypatch):
    """Install the kernel factory's stand-in; returns the list of kernels it
    made, and ``fail`` to make the factory itself raise."""
    made, state = [], {"compile_error": None, "launch": (None, ())}
    factory = types.ModuleType("nn_gpu.backends.cuda.kernel")

    def make_kernel(constants):  # one kernel per constants, as the real factory's cache
        assert isinstance(constants, KernelConstants)
        if state["compile_error"] is not None:
            raise state["compile_error"]
        known = [kernel for kernel in made if kernel.constants == constants]
        if not known:
            made.append(Kernel(constants, *state["launch"]))
        return known[0] if known else made[-1]

    factory.make_kernel = make_kernel
    monkeypatch.setitem(sys.modules, factory.__name__, factory)
    return made, state


@pytest.fixture
def gpu(monkeypatch):
    """CupyBackend on the stand-in, numba-cuda said usable, the device's
    (view, stream) the identity and 0 (host arrays)."""
    from nn_gpu.backends.cuda import cupy_backend

    fake_cupy.install(monkeypatch)
    monkeypatch.setattr(cupy_backend, "numba_cuda_usable", lambda: True)
    monkeypatch.setattr(cupy_backend.CupyBackend, "_numba_device",
                        lambda self: ((lambda array: array), 0))
    return cupy_backend.CupyBackend


def train(backend, **settings):
    rng = numpy.random.default_rng(0)
    X, labels = rng.random((40, SIZES[0])), rng.integers(0, SIZES[-1], 40)
    net = Network(SIZES, backend=backend, dtype="float64", seed=3)
    net.sgd((X, labels), 2, 4, 0.5, **settings)
    return net


def fallback_warnings(caplog):
    return [r for r in caplog.records if r.name == "nn_gpu" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("failure", ["compile", "launch"])
def test_a_failing_kernel_falls_back_to_cublas_with_one_warning_line(
        gpu, kernels, caplog, failure):
    made, state = kernels
    error = RuntimeError("NVVM_ERROR_COMPILATION:\n  ptxas fatal: out of registers")
    if failure == "compile":
        state["compile_error"] = error
    else:
        state["launch"] = (error, {1})
    with caplog.at_level(logging.WARNING, logger="nn_gpu"):
        fused = train(gpu(), momentum=0.5)
    assert fused.backend_choice.path == "fused_gpu"      # what was chosen...
    warned = fallback_warnings(caplog)
    assert len(warned) == 1                               # ...said once, on one line
    message = warned[0].getMessage()
    assert "\n" not in message and "RuntimeError: NVVM_ERROR_COMPILATION: ptxas" in message
    assert "training on the cuBLAS path instead" in message
    if failure == "launch":
        assert len(made) == 1 and len(made[0].launches) == 1    # tried once, never again
    reference = train("numpy", momentum=0.5)                    # and trained all the same
    for a, b in zip(fused.weights + fused.biases, reference.weights + reference.biases):
        numpy.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_a_kernel_that_has_run_is_not_left_on_a_later_failure(kernels):
    """Only a kernel that never ran falls back: a failure after launches
    that worked is an error of its own, raised."""
    _, state = kernels
    state["launch"] = (RuntimeError("an illegal memory access"), {2})
    epoch = cuda_epoch.FusedEpoch(threads=8)
    args = launch_args(momentum=False)
    assert epoch(*args) is True
    with pytest.raises(RuntimeError, match="illegal memory access"):
        epoch(*args)


def launch_args(momentum):
    """The arguments of a FusedEpoch call for a tiny float64 training."""
    from nn_gpu.backends import NumpyBackend
    from nn_gpu.model import core
    from nn_gpu.model.costs import QuadraticCost

    rng = numpy.random.default_rng(1)
    plan = core.Plan(cost=QuadraticCost, kinds=("sigmoid", "sigmoid"), eta=0.5, train_size=12,
                     momentum=0.5 if momentum else 0.0)
    weights = [rng.standard_normal((o, i)) for i, o in zip(SIZES[:-1], SIZES[1:])]
    biases = [rng.standard_normal(o) for o in SIZES[1:]]
    X, Y = rng.random((12, SIZES[0])), numpy.eye(SIZES[-1])[rng.integers(0, SIZES[-1], 12)]
    workspace = core.Workspace(NumpyBackend(), SIZES, 4, numpy.dtype("float64"),
                               momentum=momentum)
    return plan, weights, biases, X, Y, numpy.arange(12), 4, workspace


@pytest.mark.parametrize("momentum", [False, True])
def test_the_fused_epoch_passes_velocities_only_where_there_are_some(kernels, momentum):
    made, _ = kernels
    epoch = cuda_epoch.FusedEpoch(threads=8)
    plan, weights, biases, X, Y, order, batch, workspace = launch_args(momentum)
    assert epoch(plan, weights, biases, X, Y, order, batch, workspace)
    (kernel,) = made
    assert kernel.constants.momentum is momentum
    arguments = kernel.launches[0]
    velocities = [arguments.velocity_w1, arguments.velocity_b1, arguments.velocity_w2,
                  arguments.velocity_b2]
    if momentum:
        assert velocities[0] is workspace.velocity_w[0] and velocities[3] is workspace.velocity_b[1]
    else:   # zero-size arrays of the parameters' dtype, not the gradient buffers
        assert all(v.size == 0 and v.dtype == X.dtype for v in velocities)
        assert not any(v is g for v in velocities for g in workspace.grad_w + workspace.grad_b)
    assert (arguments.w1 is weights[0] and arguments.shares.shape == (2, 1, batch, SIZES[-1])
            and arguments.eta == plan.eta and arguments.momentum == plan.momentum)


def test_the_compiled_cpu_epoch_is_compiled_without_velocities_where_there_are_none():
    """Two compiled variants, told apart by the type of EpochBuffers.velocities:
    None without momentum (no array stands in), the velocities with it."""
    from nn_gpu.backends.cpu.epoch import sgd_epoch

    rng = numpy.random.default_rng(0)
    data = rng.random((30, SIZES[0])), rng.integers(0, SIZES[-1], 30)
    for momentum in (0.0, 0.5):
        Network(SIZES, backend="numpy", dtype="float64", seed=0).sgd(data, 1, 5, 0.5,
                                                                     momentum=momentum)
    kinds = {str(signature[6].types[-1]) for signature in sgd_epoch.signatures
             if "float64" in str(signature[3])}
    assert "none" in kinds and any("array(float64, 2d, C)" in kind for kind in kinds), kinds
