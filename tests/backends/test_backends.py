"""Backend choice, and every fast primitive against its portable definition."""

import subprocess
import sys
import types

import numpy
import pytest
from conftest import REPO_ROOT

import nn_gpu
from nn_gpu import Network
from nn_gpu.backends import Backend, NumpyBackend, cupy_status, get_backend
from nn_gpu.errors import BackendUnavailableError, InvalidArgumentError
from nn_gpu.model import core


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
    """(name, args, kwargs, out shape, initial out or None) for every primitive."""
    m, n_in, n = 13, 7, 5
    a_in = rng.random((m, n_in)).astype(dtype)
    w = rng.standard_normal((n, n_in)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    a = rng.random((m, n)).astype(dtype)
    y = numpy.eye(n, dtype=dtype)[rng.integers(0, n, m)]
    delta = rng.standard_normal((m, n)).astype(dtype)
    z = (rng.standard_normal((m, n)) * 30).astype(dtype)  # includes saturated values
    cases = [("sigmoid", (z,), {}, (m, n), None),
             ("quadratic_output_error", (a, y, 0.3), {}, (m, n), None),
             ("difference_output_error", (a, y, 0.3), {}, (m, n), None)]
    for kind in ("sigmoid", "tanh", "relu", "softmax"):
        cases.append(("activate", (kind, z), {}, (m, n), None))
        cases.append(("linear_activation", (a_in, w, b), {"kind": kind}, (m, n), None))
    for kind in ("sigmoid", "tanh", "relu"):
        signed = (a * 2 - 1) if kind != "sigmoid" else a  # tanh/relu outputs can be <= 0
        cases.append(("times_derivative", (kind, signed), {}, (m, n), delta))
        cases.append(("backpropagate_error", (delta, w, rng.random((m, n_in)).astype(dtype)),
                      {"kind": kind}, (m, n_in), None))
    return cases


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 2e-5)])
def test_backend_primitives_match_the_portable_definitions(backend, dtype, rtol):
    rng = numpy.random.default_rng(0)
    for name, args, kwargs, shape, initial in primitive_cases(rng, dtype):
        out = numpy.empty(shape, dtype) if initial is None else initial.copy()
        expected = getattr(PORTABLE, name)(*args, out=out, **kwargs)
        device_args = [backend.asarray(x) if isinstance(x, numpy.ndarray) else x for x in args]
        out = backend.empty(shape, dtype) if initial is None else backend.asarray(initial.copy())
        got = backend.to_host(getattr(backend, name)(*device_args, out=out, **kwargs))
        numpy.testing.assert_allclose(got, expected, rtol=rtol, atol=1e-30,
                                      err_msg=f"{name} {args[0] if isinstance(args[0], str) else ''}"
                                              f"{kwargs}")


@pytest.mark.parametrize("velocity, momentum, decay, l1", [
    (False, 0.0, 1.0, 0.0), (False, 0.0, 0.99, 0.0), (False, 0.0, 1.0, 0.01),
    (True, 0.9, 1.0, 0.0), (True, 0.5, 0.98, 0.02)])
def test_sgd_update_is_the_textbook_step(backend, velocity, momentum, decay, l1):
    rng = numpy.random.default_rng(1)
    p, g, v = rng.standard_normal((3, 4, 6))
    if velocity:
        v_new = momentum * v - g - (1 - decay) * p - l1 * numpy.sign(p)
        expected_p, expected_v = p + v_new, v_new
    else:
        expected_p, expected_v = decay * p - l1 * numpy.sign(p) - g, None
    param, vel = backend.asarray(p.copy()), backend.asarray(v.copy()) if velocity else None
    backend.sgd_update(param, backend.asarray(g), vel, momentum, decay, l1)
    numpy.testing.assert_allclose(backend.to_host(param), expected_p, rtol=1e-12)
    if velocity:
        numpy.testing.assert_allclose(backend.to_host(vel), expected_v, rtol=1e-12)


def test_weight_gradient_is_equations_3_and_4(backend):
    rng = numpy.random.default_rng(2)
    delta, a_in = rng.standard_normal((6, 4)), rng.random((6, 3))
    grad_w, grad_b = backend.empty((4, 3), "float64"), backend.empty((4,), "float64")
    backend.weight_gradient(backend.asarray(delta), backend.asarray(a_in), grad_w, grad_b)
    numpy.testing.assert_allclose(backend.to_host(grad_w), delta.T @ a_in, rtol=1e-12)
    numpy.testing.assert_allclose(backend.to_host(grad_b), delta.sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_mask_is_inverted_dropout(backend, p):
    rng = backend.random_generator(3)
    mask = backend.to_host(backend.dropout_mask(rng, p, backend.empty((200, 100), "float32")))
    assert set(numpy.unique(mask)) <= {0.0, numpy.float32(1 / (1 - p))}
    assert mask.mean() == pytest.approx(1.0, abs=0.03)      # E[mask] = 1: nothing to rescale
    assert (mask == 0).mean() == pytest.approx(p, abs=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("cost, activation, settings", [
    ("quadratic", "sigmoid", {}),
    ("cross_entropy", "sigmoid", {"l2": 5.0}),
    ("log_likelihood", "tanh", {"momentum": 0.9}),
    ("cross_entropy", "relu", {"l2": 1.0, "momentum": 0.5}),
])
@pytest.mark.parametrize("sizes, batch_size", [([784, 20, 10], 1), ([784, 20, 10], 7),
                                               ([784, 16, 12, 10], 30)])
def test_compiled_cpu_epoch_matches_the_generic_core(mnist_slice, cost, activation, settings,
                                                     sizes, batch_size):
    """NumPy's compiled epoch (Numba + BLAS) against the portable core on
    NumPy: same weights after two epochs, partial last mini-batch included.
    (Kept short and at a small η: SGD amplifies rounding differences, and at
    mini-batch 1 a few hundred steps would let them grow past any tolerance.)"""
    training, test = mnist_slice
    training = (training[0][:100], training[1][:100])
    nets = [Network(sizes, cost=cost, activation=activation, backend=backend, dtype="float64",
                    seed=4, init="scaled")
            for backend in (NumpyBackend(), Backend(numpy))]
    plan = core.Plan(cost=nets[0].cost, kinds=nets[0].kinds, eta=0.1, train_size=100, **settings)
    assert nets[0].backend.compiled_epoch(plan) is not None
    assert nets[1].backend.compiled_epoch(plan) is None
    for net in nets:
        net.sgd(training, 2, batch_size, 0.1, **settings)
    for fast, portable in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        # Any difference in the algorithm shows at 1e-3; rounding stays far below 1e-8.
        numpy.testing.assert_allclose(fast, portable, rtol=1e-8, atol=1e-10)
    assert nets[0].evaluate(test) == nets[1].evaluate(test)
