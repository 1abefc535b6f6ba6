"""Every CupyBackend override against its NumPy twin, on a CPU, through a
NumPy-backed stand-in for CuPy (tests/fake_cupy.py) that evaluates the CUDA
bodies of its kernels as CuPy would; plus cupy_status's probes, the counter-
based dropout stream (``auto``'s choice: test_choice.py)."""

import fake_cupy
import numpy
import pytest

from nn_gpu import Network, backends
from nn_gpu.backends import NumpyBackend
from nn_gpu.backends.base import Backend
from nn_gpu.backends.cuda import counter_stream
from nn_gpu.errors import BackendUnavailableError
from nn_gpu.training.checkpoint import Checkpoint

DTYPES = ["float32", "float64"]
KINDS = ["sigmoid", "tanh", "relu"]


@pytest.fixture
def cupy(monkeypatch):
    return fake_cupy.install(monkeypatch)


@pytest.fixture
def pair(cupy):
    """(CupyBackend on the stand-in, the generic Backend on numpy): kernel and twin."""
    from nn_gpu.backends.cuda.cupy_backend import CupyBackend

    return CupyBackend(reason="test"), Backend(numpy)


def close(dtype):
    return {"rtol": 1e-6, "atol": 1e-6} if dtype == "float32" else {"rtol": 1e-13, "atol": 1e-14}


def arrays(dtype, *shapes, seed=0, scale=3.0):
    rng = numpy.random.default_rng(seed)
    return [(scale * rng.standard_normal(shape)).astype(dtype) for shape in shapes]


def both(method, pair, *args, **kwargs):
    """Run ``method`` on each backend with its own copies of the arrays."""
    results = []
    for backend in pair:
        copies = [a.copy() if isinstance(a, numpy.ndarray) else a for a in args]
        getattr(backend, method)(*copies, **kwargs)
        results.append(copies)
    return results


def assert_same(results, dtype):
    for got, want in zip(*results):
        if isinstance(got, numpy.ndarray):
            assert got.dtype == want.dtype
            numpy.testing.assert_allclose(got, want, **close(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_is_overflow_free_and_matches(pair, dtype):
    z = numpy.array([-1000, -40, -3, -1e-3, 0, 2, 30, 1000, numpy.nan], dtype)
    with numpy.errstate(over="raise"):
        results = both("sigmoid", pair, z, numpy.empty_like(z))
    assert_same(results, dtype)
    assert results[0][1][0] == 0 and results[0][1][1] > 0  # tiny σ keeps its precision


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_linear_activation(pair, dtype, kind):
    a_in, w, b = arrays(dtype, (4, 5), (3, 5), (3,))
    b[0] = numpy.nan  # relu must let NaN through as numpy.maximum does
    assert_same(both("linear_activation", pair, a_in, w, b, numpy.empty((4, 3), dtype),
                     kind=kind), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_times_derivative_and_backpropagate_error(pair, dtype, kind):
    a, out, delta, w = arrays(dtype, (4, 3), (4, 3), (4, 2), (2, 3))
    a = numpy.tanh(a) if kind != "sigmoid" else 1 / (1 + numpy.exp(-a))
    assert_same(both("times_derivative", pair, kind, a, out), dtype)
    assert_same(both("backpropagate_error", pair, delta, w, a, out, kind=kind), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["quadratic_output_error", "difference_output_error"])
def test_output_errors(pair, dtype, method):
    a, y, out = arrays(dtype, (4, 3), (4, 3), (4, 3))
    assert_same(both(method, pair, a, y, 0.3, out), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum, decay, l1", [(0.0, 1.0, 0.0), (0.0, 0.99, 0.0),
                                                  (0.0, 0.99, 0.01), (0.7, 1.0, 0.0),
                                                  (0.7, 0.98, 0.02)])
def test_sgd_update_and_update_layer(pair, dtype, momentum, decay, l1):
    p, g, v = arrays(dtype, (3, 5), (3, 5), (3, 5))
    velocity = v if momentum else None
    assert_same(both("sgd_update", pair, p, g, velocity, momentum, decay, l1), dtype)
    delta, a_in, w, b, vw, vb = arrays(dtype, (4, 3), (4, 5), (3, 5), (3,), (3, 5), (3,))
    grads = [numpy.empty((3, 5), dtype), numpy.empty(3, dtype)]
    velocities = [vw, vb] if momentum else [None, None]
    results = both("update_layer", pair, delta, a_in, w, b, *grads, *velocities, momentum, decay,
                   l1)
    for index in (2, 3, 6, 7):  # w, b and the velocities (CuPy may skip the gradient buffers)
        if results[1][index] is not None:
            numpy.testing.assert_allclose(results[0][index], results[1][index], **close(dtype))


def test_a_wrong_argument_order_fails_the_comparison(pair, monkeypatch):
    """The stand-in computes what CUDA would: swapping a and y is caught."""
    kernel_backend, _ = pair
    original = kernel_backend._quadratic_error
    monkeypatch.setattr(kernel_backend, "_quadratic_error",
                        lambda a, y, k, out: original(y, a, k, out))
    a, y, out = arrays("float64", (4, 3), (4, 3), (4, 3))
    with pytest.raises(AssertionError):
        assert_same(both("quadratic_output_error", pair, a, y, 0.3, out), "float64")


def test_kernels_reject_mixed_dtypes(pair):
    kernel_backend, _ = pair
    a = numpy.ones(3, numpy.float32)
    with pytest.raises(TypeError, match="mismatched"):
        kernel_backend._difference_error(a, numpy.ones(3), numpy.float32(1), a)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_masks_follow_the_counter_stream(pair, dtype):
    kernel_backend, _ = pair
    rng = kernel_backend.random_generator(1234)
    out = numpy.empty((5, 7), dtype)
    masks = [kernel_backend.dropout_mask(rng, 0.3, out).copy() for _ in range(2)]
    twin = counter_stream.CounterStream(1234)
    for mask in masks:
        keep = counter_stream.uniform(twin.next_key(), out.size).reshape(out.shape) >= 0.3
        scale = numpy.dtype(dtype).type(1 / 0.7)
        numpy.testing.assert_array_equal(mask, numpy.where(keep, scale, 0).astype(dtype))
    assert not numpy.array_equal(masks[0], masks[1])
    assert 0.5 < numpy.count_nonzero(numpy.concatenate(masks)) / (2 * out.size) < 0.9


def test_counter_stream_state_round_trips():
    stream = counter_stream.CounterStream(7)
    stream.next_key()
    copy = counter_stream.CounterStream(0)
    copy.bit_generator.state = stream.bit_generator.state
    assert copy.next_key() == stream.next_key()
    with pytest.raises(ValueError):
        copy.bit_generator.state = {"bit_generator": "PCG64"}


def test_host_transfer_synchronize_and_describe(pair, cupy):
    kernel_backend, _ = pair
    x = kernel_backend.asarray(numpy.arange(3.0))
    host = kernel_backend.to_host(x)
    host[0] = 5
    assert x[0] == 0  # a copy, not a view
    before = cupy.cuda.get_current_stream().synchronized
    kernel_backend.synchronize()
    assert cupy.cuda.get_current_stream().synchronized == before + 1
    assert "Fake CUDA device" in kernel_backend.describe()


def train(backend, **settings):
    rng = numpy.random.default_rng(3)
    X = rng.random((23, 6))
    labels = rng.integers(0, 4, 23)
    net = Network([6, 5, 4], cost=settings.pop("cost", "cross_entropy"), backend=backend,
                  dtype="float64", seed=2, activation=settings.pop("activation", "sigmoid"))
    history = net.sgd((X, labels), 2, 5, 0.5, **settings)
    return net, history


@pytest.mark.parametrize("settings", [{}, {"momentum": 0.6, "l2": 2.0, "cost": "log_likelihood"},
                                      {"l1": 1.0, "activation": "tanh", "cost": "quadratic"}])
def test_training_on_the_stand_in_matches_numpy(pair, settings):
    """The whole cuBLAS-path epoch (numba-cuda is not usable here) against the CPU."""
    kernel_backend, _ = pair
    gpu, _ = train(kernel_backend, **dict(settings))
    cpu, _ = train(NumpyBackend(), **dict(settings))
    for a, b in zip(gpu.weights + gpu.biases, cpu.weights + cpu.biases):
        numpy.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)


def test_dropout_training_resumes_bit_exactly(pair, tmp_path):
    from nn_gpu.backends.cuda.cupy_backend import CupyBackend

    def run(epochs, directory, resume=False):
        rng = numpy.random.default_rng(3)
        X, labels = rng.random((23, 6)), rng.integers(0, 4, 23)
        net = Network([6, 5, 4], backend=CupyBackend(), dtype="float64", seed=2)
        net.sgd((X, labels), epochs, 5, 0.5, dropout=0.4,
                checkpoint=Checkpoint(tmp_path / directory), resume=resume)
        return net

    straight = run(4, "a")
    run(2, "b")
    resumed = run(4, "b", resume=True)
    for a, b in zip(straight.weights + straight.biases, resumed.weights + resumed.biases):
        numpy.testing.assert_array_equal(a, b)


# ------------------------------------------------------------ cupy_status
def test_cupy_status_runs_a_kernel_and_a_matmul(cupy):
    usable, reason = backends.cupy_status()
    assert usable, reason


@pytest.mark.parametrize("breakage, named", [
    ("kernel", "elementwise kernel failed"), ("matmul", "matrix product (cuBLAS) failed"),
    ("wrong", "computed"), ("driver", "no CUDA driver")])
def test_cupy_status_names_what_failed(cupy, monkeypatch, breakage, named):
    def fail(*args, **kwargs):
        raise RuntimeError("CUDA_ERROR_NOT_FOUND: libnvrtc.so.13 not found")

    if breakage == "kernel":
        monkeypatch.setattr(cupy, "ElementwiseKernel", fail, raising=False)
    elif breakage == "matmul":
        monkeypatch.setattr(cupy, "matmul", fail, raising=False)
    elif breakage == "wrong":
        monkeypatch.setattr(cupy, "matmul", lambda a, b: a * 0, raising=False)
    else:
        monkeypatch.setattr(cupy.cuda.runtime, "getDeviceCount", fail)
    usable, reason = backends.cupy_status()
    assert not usable
    assert named in reason
    if breakage != "driver":
        assert "[cuda12]" in reason
    with pytest.raises(BackendUnavailableError, match=named.split()[0]):
        backends.get_backend("cupy")
