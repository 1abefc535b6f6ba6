"""Chapter 6's conv path on the GPU backend, checked without a GPU: on
CupyBackend over the CuPy stand-in (tests/fake_cupy.py: CupyBackend's own
kernels, evaluated as CUDA would) against the NumPy backend; every function
it calls as ``cupy.*`` held to what CuPy has; and through the strict stand-in
(tests/strict_backend.py), which refuses host NumPy on device arrays."""

import inspect

import numpy
import pytest

import cuda_compile
import fake_cupy
from nn_gpu.backends import NumpyBackend
from nn_gpu.backends.cuda import counter_stream
from nn_gpu.training.checkpoint import Checkpoint
from nn_gpu.convnet import ConvNetwork, ConvPoolLayer, FullyConnectedLayer, SoftmaxLayer
from strict_backend import StrictBackend
from test_convnet import ARCHITECTURES, one_conv, problem

CLOSE = {"rtol": 1e-10, "atol": 1e-12}


@pytest.fixture
def cupy_backend(monkeypatch):
    """CupyBackend over the stand-in."""
    fake_cupy.install(monkeypatch)
    from nn_gpu.backends.cuda.cupy_backend import CupyBackend

    return CupyBackend(reason="stand-in")


class CounterStreamNumpy(NumpyBackend):
    """The NumPy backend drawing dropout masks from CupyBackend's counter-based
    stream, through its NumPy twin: the same masks as the GPU backend."""

    def random_generator(self, seed):
        return counter_stream.CounterStream(seed)

    def dropout_mask(self, rng, p, out):
        keep = counter_stream.uniform(rng.next_key(), out.size).reshape(out.shape) >= p
        out[...] = numpy.where(keep, 1.0 / (1.0 - p), 0.0)
        return out


def twin(net, backend):
    """The same network on ``backend``, its generators (shuffles, dropout's
    seed) included: built from the same seed, given the same parameters."""
    device = ConvNetwork(net.layers, backend=backend, dtype=net.dtype.name, seed=net.seed)
    device.weights = [backend.asarray(w.copy()) for w in net.weights]
    device.biases = [backend.asarray(b.copy()) for b in net.biases]
    return device


def assert_same_parameters(device, host, backend):
    for a, b in zip(device.weights + device.biases, host.weights + host.biases):
        numpy.testing.assert_allclose(backend.to_host(a), b, **CLOSE)


def scored(net, X, labels, Y):
    """What a trained network answers: outputs, gradient, cost, correct count."""
    backend = net.backend
    nabla_b, nabla_w = net.backprop(X, Y)
    return ([backend.to_host(net.feedforward(X))] + [backend.to_host(g) for g in nabla_b + nabla_w]
            + [net.total_cost((X, labels), l2=0.5, train_size=40), net.evaluate((X, labels))])


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_conv_training_on_the_cupy_stand_in_matches_numpy(cupy_backend, name):
    """Two epochs (a partial last mini-batch each) with L2, then every
    scoring method: CupyBackend's kernels against the NumPy backend."""
    net, X, labels, Y = problem(ARCHITECTURES[name](), 11, seed=3)
    device = twin(net, cupy_backend)
    for model in (device, net):
        history = model.sgd((X, labels), 2, 4, 0.3, l2=0.5, test_data=(X, labels))
        model.history = [record["test_correct"] for record in history]
    assert device.history == net.history
    assert_same_parameters(device, net, cupy_backend)
    for got, want in zip(scored(device, X, labels, Y), scored(net, X, labels, Y)):
        numpy.testing.assert_allclose(got, want, **CLOSE)


def test_conv_dropout_on_the_cupy_stand_in_matches_its_numpy_twin(cupy_backend):
    """Dropout on the fully connected and softmax layers' inputs: the masks
    of CupyBackend's counter-stream kernel against the same stream's NumPy
    twin, through two epochs of training."""
    nets = []
    for backend in (cupy_backend, CounterStreamNumpy()):
        net = ConvNetwork(one_conv("tanh", p_dropout=0.4), backend=backend, dtype="float64",
                          seed=5)
        rng = numpy.random.default_rng(1)
        X, labels = rng.random((13, net.sizes[0])), rng.integers(0, 4, 13)
        net.sgd((X, labels), 2, 5, 0.2, l2=0.1)
        nets.append(net)
    assert_same_parameters(*nets, cupy_backend)


def test_conv_resume_on_the_cupy_stand_in_is_bit_for_bit(cupy_backend, tmp_path):
    """A checkpoint of a conv training with dropout on the GPU backend (the
    counter stream's state included) resumes to the uninterrupted run."""
    def run(epochs, directory, resume=False):
        net, X, labels, _ = problem(one_conv("relu", p_dropout=0.3), 17, seed=11)
        net = twin(net, cupy_backend)
        net.sgd((X, labels), epochs, 5, 0.2, l2=0.5, checkpoint=Checkpoint(tmp_path / directory),
                resume=resume)
        return net

    straight = run(3, "a")
    run(2, "b")
    resumed = run(3, "b", resume=True)
    for a, b in zip(straight.weights + straight.biases, resumed.weights + resumed.biases):
        numpy.testing.assert_array_equal(a, b)


# CuPy's ufuncs take these keywords (cupy/_core/_kernel.pyx, ufunc.__call__), NumPy's more.
UFUNC_KEYWORDS = {"out", "dtype", "casting"}


@pytest.fixture
def real_cupy():
    """The installed CuPy (taken before the stand-in replaces it)."""
    return cuda_compile.real_cupy()[0]


def test_the_gpu_path_calls_only_what_cupy_has(real_cupy, cupy_backend):
    """Every ``cupy.*`` function a conv training (dropout, L2, scoring) and a
    fully connected one call on the stand-in exists in the real CuPy and takes
    the keywords used; needs CuPy installed (no device)."""
    from nn_gpu import Network

    fake_cupy.CALLS.clear()
    net = ConvNetwork([ConvPoolLayer((1, 6, 6), (2, 1, 3, 3), activation="relu"),
                       FullyConnectedLayer(8, 5, "sigmoid", p_dropout=0.3),
                       SoftmaxLayer(5, 3, p_dropout=0.2)], backend=cupy_backend, seed=1)
    rng = numpy.random.default_rng(2)
    X, labels = rng.random((7, 36)), rng.integers(0, 3, 7)
    net.sgd((X, labels), 1, 3, 0.1, l2=0.1, test_data=(X, labels))
    net.total_cost((X, labels), l2=0.1, train_size=7)
    Network([36, 4, 3], backend=cupy_backend, seed=1).sgd(
        (X, labels), 1, 3, 0.5, momentum=0.5, dropout=0.2, test_data=(X, labels))
    calls, cupy = set(fake_cupy.CALLS), real_cupy
    assert callable(cupy.lib.stride_tricks.as_strided)
    assert len(calls) > 20, calls
    for name, keywords in sorted(calls):
        function = getattr(cupy, name, None)
        assert function is not None, f"cupy has no {name} (called with {keywords})"
        if isinstance(function, cupy.ufunc):
            assert set(keywords) <= UFUNC_KEYWORDS, f"cupy.{name} takes no {keywords}"
        else:
            inspect.signature(function).bind_partial(**dict.fromkeys(keywords))


# --------------------------------------------------------------- strict stand-in
@pytest.mark.parametrize("name", [*ARCHITECTURES, "one_conv_dropout"])
def test_conv_path_touches_no_host_numpy(name):
    """Training (dropout included), scoring, gradients and model files of a
    conv network on the strict stand-in, where any host NumPy call on a
    device array raises; numbers as the NumPy backend's."""
    layers = one_conv("relu", p_dropout=0.3) if name == "one_conv_dropout" \
        else ARCHITECTURES[name]()
    net, X, labels, Y = problem(layers, 9, seed=4)
    strict = StrictBackend()
    device = twin(net, strict)
    device.sgd((X, labels), 1, 4, 0.3, l2=0.5, test_data=(X, labels),
               validation_data=(X[:5], labels[:5]))
    outputs = scored(device, X, labels, Y)
    if name != "one_conv_dropout":  # NumPy's masks come from another generator
        net.sgd((X, labels), 1, 4, 0.3, l2=0.5)
        for got, want in zip(outputs, scored(net, X, labels, Y)):
            numpy.testing.assert_allclose(got, want, **CLOSE)
    masks = [None if not layer.p_dropout else numpy.ones((9, layer.n_in)) for layer in layers]
    device.backprop(X, Y, masks)


def test_conv_model_files_through_the_strict_stand_in(tmp_path):
    net, X, labels, _ = problem(ARCHITECTURES["two_conv_relu"](), 6, seed=2)
    path = tmp_path / "conv.npz"
    twin(net, StrictBackend()).save(path)
    loaded = ConvNetwork.load(path, backend=StrictBackend())
    assert loaded.evaluate((X, labels)) == net.evaluate((X, labels))

