"""Backend choice, and every fast primitive against its portable definition."""

import subprocess
import sys
import types

import numpy
import pytest

import nn_gpu
from nn_gpu import Network
from nn_gpu.backends import Backend, NumpyBackend, cupy_status, get_backend
from nn_gpu.errors import BackendUnavailableError, InvalidArgumentError

from conftest import REPO_ROOT


def test_import_does_not_import_cupy():
    code = "import sys, nn_gpu; sys.exit(3 if 'cupy' in sys.modules else 0)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT,
                            env={"PYTHONPATH": str(REPO_ROOT), "PATH": ""}, timeout=60)
    assert result.returncode == 0


def test_auto_picks_numpy_and_says_why_without_a_gpu():
    usable, reason = cupy_status()
    if usable:
        pytest.skip("a GPU is usable here; auto picks CuPy (covered by the gpu tests)")
    backend = get_backend("auto")
    assert backend.name == "numpy"
    assert backend.reason.startswith("auto: ") and "CuPy" in backend.reason


@pytest.mark.gpu
def test_auto_picks_cupy_where_a_device_answers():
    assert get_backend("auto").name == "cupy"


def fake_cupy(device_count):
    """A module shaped like cupy whose getDeviceCount answers or raises."""
    def count():
        if isinstance(device_count, Exception):
            raise device_count
        return device_count
    runtime = types.SimpleNamespace(getDeviceCount=count)
    return types.SimpleNamespace(__version__="99.0", cuda=types.SimpleNamespace(runtime=runtime))


@pytest.mark.parametrize("module, cause", [
    (None, "not installed"),
    (fake_cupy(RuntimeError("cudaErrorInsufficientDriver")), "no CUDA driver"),
    (fake_cupy(0), "no CUDA device"),
])
def test_cupy_unavailable_names_the_cause(monkeypatch, module, cause):
    monkeypatch.setitem(sys.modules, "cupy", module)
    with pytest.raises(BackendUnavailableError, match=cause):
        get_backend("cupy")
    backend = get_backend("auto")
    assert backend.name == "numpy" and cause in backend.reason


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(InvalidArgumentError, match="unknown backend 'tpu'"):
        nn_gpu.Network([2, 1], backend="tpu")


def test_backend_instances_pass_through():
    backend = NumpyBackend()
    assert get_backend(backend) is backend


# ------------------------------------------------------------ primitives
# Each fast primitive (NumPy's SciPy sigmoid; CuPy's fused kernels) is held to
# the portable definition in the Backend base class, run on NumPy.

PORTABLE = Backend(numpy)


def primitive_cases(rng, dtype):
    m, n_in, n = 13, 7, 5
    a_in = rng.random((m, n_in)).astype(dtype)
    w = rng.standard_normal((n, n_in)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    a = rng.random((m, n)).astype(dtype)
    y = numpy.eye(n, dtype=dtype)[rng.integers(0, n, m)]
    delta = rng.standard_normal((m, n)).astype(dtype)
    z = (rng.standard_normal((m, n)) * 30).astype(dtype)  # includes saturated values
    return {
        "sigmoid": ((z,), (m, n)),
        "linear_sigmoid": ((a_in, w, b), (m, n)),
        "quadratic_output_error": ((a, y, 0.3), (m, n)),
        "cross_entropy_output_error": ((a, y, 0.3), (m, n)),
        "backpropagate_error": ((delta, w, rng.random((m, n_in)).astype(dtype)),
                                (m, n_in)),
    }


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 2e-5)])
def test_backend_primitives_match_the_portable_definitions(backend, dtype, rtol):
    rng = numpy.random.default_rng(0)
    for name, (args, shape) in primitive_cases(rng, dtype).items():
        expected = getattr(PORTABLE, name)(*args, out=numpy.empty(shape, dtype))
        device_args = [backend.asarray(x) if isinstance(x, numpy.ndarray) else x for x in args]
        out = backend.empty(shape, dtype)
        got = backend.to_host(getattr(backend, name)(*device_args, out=out))
        numpy.testing.assert_allclose(got, expected, rtol=rtol, atol=1e-30, err_msg=name)


def test_weight_update_primitives(backend):
    rng = numpy.random.default_rng(1)
    delta, a_in = rng.standard_normal((6, 4)), rng.random((6, 3))
    w, b = rng.standard_normal((4, 3)), rng.standard_normal(4)
    dev = [backend.asarray(x.copy()) for x in (delta, a_in, w, b)]
    grad_w, grad_b = backend.empty((4, 3), "float64"), backend.empty((4,), "float64")
    backend.descend(dev[2], dev[3], dev[0], dev[1], grad_w, grad_b)
    numpy.testing.assert_allclose(backend.to_host(dev[2]), w - delta.T @ a_in, rtol=1e-12)
    numpy.testing.assert_allclose(backend.to_host(dev[3]), b - delta.sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("cost", ["quadratic", "cross_entropy"])
@pytest.mark.parametrize("sizes, batch_size", [([784, 20, 10], 1), ([784, 20, 10], 7),
                                               ([784, 16, 12, 10], 30)])
def test_compiled_cpu_epoch_matches_the_generic_core(mnist_slice, cost, sizes, batch_size):
    """NumPy's compiled epoch (Numba + BLAS) against the portable core on
    NumPy: same weights after two epochs, partial last mini-batch included.
    (Kept short and at a small η: SGD amplifies rounding differences, and at
    mini-batch 1 a few hundred steps would let them grow past any tolerance.)"""
    training, test = mnist_slice
    training = (training[0][:200], training[1][:200])
    nets = [Network(sizes, cost=cost, backend=backend, dtype="float64", seed=4)
            for backend in (NumpyBackend(), Backend(numpy))]
    assert nets[0].backend.compiled_epoch(cost) is not None
    assert nets[1].backend.compiled_epoch(cost) is None
    for net in nets:
        net.sgd(training, 2, batch_size, 0.1)
    for fast, portable in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        numpy.testing.assert_allclose(fast, portable, rtol=1e-10, atol=1e-13)
    assert nets[0].evaluate(test) == nets[1].evaluate(test)
