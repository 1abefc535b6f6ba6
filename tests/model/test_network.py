"""The Network API as a user meets it: shapes, argument checks, save/load."""

import json

import numpy
import pytest
from conftest import random_problem

from nn_gpu import Network
from nn_gpu.errors import InvalidArgumentError, ModelFileError


def test_shapes_follow_nielsens_conventions(backend):
    net = Network([784, 30, 10], backend=backend, seed=0)
    assert [w.shape for w in net.weights] == [(30, 784), (10, 30)]
    assert [b.shape for b in net.biases] == [(30,), (10,)]
    assert net.weights[0].dtype == numpy.float32
    out = net.feedforward(numpy.zeros((4, 784)))
    assert out.shape == (4, 10)


def test_learns_mnist(mnist):
    """One epoch of the book's chapter-1 network already classifies most digits."""
    training, validation, test = mnist
    net = Network([784, 30, 10], backend="numpy", seed=1)
    history = net.sgd(training, 1, 10, 3.0, test_data=test, validation_data=validation,
                      monitor_training_cost=True)
    record = history[0]
    assert record["test_accuracy"] > 0.88 and record["validation_accuracy"] > 0.88
    assert record["test_total"] == 10_000 and record["seconds"] > 0
    assert 0 < record["train_cost"] < 0.2
    assert net.evaluate(test) == record["test_correct"]


@pytest.mark.parametrize("kwargs, message", [
    ({"sizes": [784]}, "at least two"),
    ({"sizes": [784, 0, 10]}, "positive integer"),
    ({"sizes": "784 10"}, "at least two"),
    ({"sizes": [3, 2], "cost": "hinge"}, "unknown cost 'hinge'"),
    ({"sizes": [3, 2], "dtype": "float16"}, "unknown dtype 'float16'"),
    ({"sizes": [3, 2], "init": "xavier"}, "unknown init 'xavier'"),
])
def test_constructor_rejects_bad_arguments(kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        Network(**kwargs)


@pytest.fixture
def small():
    X, labels, _ = random_problem(numpy.random.default_rng(0), [4, 3, 2], 20)
    return Network([4, 3, 2], backend="numpy", seed=0), X, labels


@pytest.mark.parametrize("change, message", [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"mini_batch_size": 2.5}, "mini_batch_size must be a positive integer"),
    ({"mini_batch_size": 21}, "larger than the training set"),
    ({"eta": -1.0}, r"eta must be a number in \(0, inf\)"),
    ({"eta": float("nan")}, r"eta must be a number in \(0, inf\)"),
    ({"method": "fast"}, "unknown method 'fast'"),
])
def test_sgd_rejects_bad_arguments(small, change, message):
    net, X, labels = small
    arguments = {"epochs": 1, "mini_batch_size": 5, "eta": 1.0, **change}
    with pytest.raises(InvalidArgumentError, match=message):
        net.sgd((X, labels), **arguments)


@pytest.mark.parametrize("make, message", [
    (lambda X, y: (X[:, :3], y), r"shape \(m, 4\)"),
    (lambda X, y: (X[:0], y[:0]), r"shape \(m, 4\) with m >= 1"),
    (lambda X, y: (X, y[:5]), "labels must have shape"),
    (lambda X, y: (X, y + 2), r"labels must lie in \[0, 1\]"),
    (lambda X, y: (X, y - 1), r"labels must lie in \[0, 1\]"),
    (lambda X, y: (X, y.astype(float)), "labels must be integers"),
    (lambda X, y: (numpy.where(X > 0.5, numpy.nan, X), y), "NaN or infinite"),
    (lambda X, y: X, r"must be a pair \(X, labels\)"),
])
def test_bad_data_is_a_clear_error(small, make, message):
    net, X, labels = small
    with pytest.raises(InvalidArgumentError, match=message):
        net.sgd(make(X, labels), 1, 5, 1.0)


def test_save_load_round_trip_across_backends(backend, tmp_path, mnist_slice):
    training, test = mnist_slice
    net = Network([784, 16, 10], cost="cross_entropy", backend="numpy", dtype="float64", seed=3)
    net.sgd(training, 1, 10, 0.5)
    path = tmp_path / "model.npz"
    net.save(path)
    loaded = Network.load(path, backend=backend)
    assert (loaded.sizes, loaded.cost.name, loaded.dtype) == ([784, 16, 10], "cross_entropy",
                                                              numpy.float64)
    for a, b in zip(net.weights + net.biases, loaded.weights + loaded.biases):
        numpy.testing.assert_array_equal(a, backend.to_host(b))
    assert loaded.evaluate(test) == net.evaluate(test)
    with numpy.load(path, allow_pickle=False) as archive:  # no pickle needed to read it
        assert json.loads(str(archive["metadata"]))["sizes"] == [784, 16, 10]


def test_save_load_keeps_the_architecture_and_training_settings(tmp_path, mnist_slice):
    training, test = mnist_slice
    net = Network([784, 12, 10], cost="log_likelihood", activation="tanh", init="scaled",
                  backend="numpy", seed=2)
    net.sgd(training, 2, 20, 0.1, l2=1.0, momentum=0.5, validation_data=test, eta_schedule=1)
    net.save(tmp_path / "model.npz")
    loaded = Network.load(tmp_path / "model.npz", backend="numpy")
    assert (loaded.cost.name, loaded.activation, loaded.init, loaded.kinds) == (
        "log_likelihood", "tanh", "scaled", ("tanh", "softmax"))
    assert loaded.last_training == net.last_training
    assert loaded.last_training["l2"] == 1.0 and loaded.last_training["momentum"] == 0.5
    assert loaded.last_training["mini_batch_size"] == 20 and loaded.last_training["epochs_done"] == 2
    assert loaded.evaluate(test) == net.evaluate(test)


def test_save_is_atomic(tmp_path, monkeypatch):
    """A failure half-way through writing leaves the previous file intact."""
    path = tmp_path / "model.npz"
    Network([3, 2], backend="numpy", seed=0).save(path)
    before = path.read_bytes()

    def broken_savez(handle, **arrays):
        handle.write(b"partial garbage")
        raise OSError("disk full")
    monkeypatch.setattr(numpy, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        Network([3, 2], backend="numpy", seed=1).save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def write_model(path, metadata, arrays):
    numpy.savez(path, metadata=numpy.array(json.dumps(metadata)), **arrays)


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "model file not found"),
    (lambda p: p.write_text("not a model"), "not a readable nn_gpu model file"),
    (lambda p: numpy.savez(p, w0=numpy.zeros(2)), "missing 'metadata'"),
    (lambda p: write_model(p, {"format": "other"}, {}), "format is 'other'"),
    (lambda p: write_model(p, {"format": "nn_gpu.network", "version": 1, "sizes": [3, 2],
                               "cost": "quadratic", "dtype": "float32"},
                           {"w0": numpy.zeros((2, 3)), "b0": numpy.zeros(5)}),
     r"b0 has shape \(5,\), expected \(2,\)"),
    (lambda p: write_model(p, {"format": "nn_gpu.network", "version": 1, "sizes": [3, 2],
                               "cost": "quadratic", "dtype": "float32"},
                           {"w0": numpy.zeros((2, 3))}), "missing 'b0'"),
    (lambda p: write_model(p, {"format": "nn_gpu.network", "version": 1, "sizes": [3, 2],
                               "cost": "magic", "dtype": "float32"}, {}), "unknown cost"),
])
def test_bad_model_files_are_clear_errors(tmp_path, setup, message):
    path = tmp_path / "model.npz"
    setup(path)
    with pytest.raises(ModelFileError, match=message) as info:
        Network.load(path)
    assert str(path) in str(info.value)


def test_saved_files_get_the_usual_permissions(tmp_path):
    """Written through a temporary file, but not left owner-only like one."""
    import os
    umask = os.umask(0o022)
    try:
        Network([3, 2], backend="numpy", seed=0).save(tmp_path / "model.npz")
    finally:
        os.umask(umask)
    assert (tmp_path / "model.npz").stat().st_mode & 0o777 == 0o644


def test_an_absurd_declared_size_is_told_in_a_short_line(tmp_path):
    """A forged file declaring 10^60 parameters: the bytes in a few characters."""
    path = tmp_path / "model.npz"
    write_model(path, {"format": "nn_gpu.network", "version": 1, "sizes": [10**30, 10**30],
                       "cost": "quadratic", "dtype": "float32"}, {})
    with pytest.raises(ModelFileError, match=r"needs \d\.\de\+\d+ TB") as info:
        Network.load(path)
    assert len(str(info.value)) < len(str(path)) + 300
