"""The strict stand-in must catch host/device mixing, and the whole training
path must run through it: this is how CI without a GPU catches a NumPy call on
a CuPy array."""

import numpy
import pytest
from strict_backend import StrictBackend

from nn_gpu import Network


@pytest.fixture
def strict():
    return StrictBackend()


def test_stand_in_refuses_what_cupy_refuses(strict):
    a = strict.asarray(numpy.ones(3))
    with pytest.raises(TypeError):
        numpy.asarray(a)             # implicit device -> host copy
    with pytest.raises(TypeError):
        numpy.exp(a)                 # a host ufunc on a device array
    with pytest.raises(TypeError):
        numpy.dot(a, a)              # a host function on a device array
    with pytest.raises(TypeError):
        a + numpy.ones(3)            # device + host array
    with pytest.raises(TypeError):
        numpy.ones(3) - a            # host - device array
    with pytest.raises(TypeError):
        strict.xp.exp(numpy.ones(3))  # a device function on a host array


def test_stand_in_allows_the_explicit_doors(strict):
    a = strict.asarray(numpy.arange(3.0))
    assert isinstance(strict.to_host(a * 2 + 1), numpy.ndarray)
    numpy.testing.assert_array_equal(strict.to_host(strict.xp.exp(a)), numpy.exp([0.0, 1, 2]))
    assert float(a.sum()) == 3.0


@pytest.mark.slow
def test_full_epoch_through_the_stand_in(strict, mnist):
    """A complete epoch of real MNIST on the batched core, scored on the device,
    must touch no host NumPy, and give what the NumPy backend gives (float64:
    one epoch is short enough for rounding differences to stay invisible)."""
    training, validation, test = mnist
    net = Network([784, 30, 10], backend=strict, dtype="float64", seed=7)
    history = net.sgd(training, 1, 10, 3.0, test_data=test, validation_data=validation,
                      monitor_training_cost=True)
    assert history[0]["test_accuracy"] > 0.85

    reference = Network([784, 30, 10], backend="numpy", dtype="float64", seed=7)
    expected = reference.sgd(training, 1, 10, 3.0, test_data=test, validation_data=validation,
                             monitor_training_cost=True)
    assert history[0]["test_correct"] == expected[0]["test_correct"]
    assert history[0]["validation_correct"] == expected[0]["validation_correct"]
    assert history[0]["train_cost"] == pytest.approx(expected[0]["train_cost"], rel=1e-6)


def test_rest_of_the_api_through_the_stand_in(strict, mnist_slice, tmp_path):
    (X, labels), test = mnist_slice
    net = Network([784, 12, 10], cost="cross_entropy", backend=strict, seed=1, dtype="float64")
    net.sgd((X[:200], labels[:200]), 1, 7, 0.5, method="per_example", test_data=test)
    out = net.feedforward(X[:5])
    assert out.shape == (5, 10)
    nabla_b, nabla_w = net.backprop(X[:5], numpy.eye(10)[labels[:5]])
    assert [w.shape for w in nabla_w] == [(12, 784), (10, 12)]
    assert 0 <= net.evaluate(test) <= 500
    assert net.total_cost(test) > 0
    net.save(tmp_path / "model.npz")
    loaded = Network.load(tmp_path / "model.npz", backend=strict)
    assert loaded.evaluate(test) == net.evaluate(test)
