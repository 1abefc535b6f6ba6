"""Data sets prepared once: a Dataset's arrays cannot change, so what training
makes of them (device copies, checks, one-hot targets, the compiled epoch's
pixel codes) is kept; plain tuples are prepared again on every call, so an
array changed in place between two calls trains on its new values."""

import numpy
import pytest

from nn_gpu import Network
from nn_gpu.backends.cpu import epoch as cpu_epoch
from nn_gpu.data.dataset import Dataset, prepared


def pixels(rows, seed=0):
    """MNIST-like data: every x = k/255 (so the compiled epoch encodes it)."""
    rng = numpy.random.default_rng(seed)
    X = rng.integers(0, 256, (rows, 12)).astype(numpy.float32) / numpy.float32(255)
    return X, rng.integers(0, 3, rows)


def test_a_dataset_is_the_pair_it_replaces_and_cannot_be_written():
    X, labels = pixels(8)
    data = Dataset(X, labels)
    first, second = data
    assert numpy.array_equal(first, X) and numpy.array_equal(data.labels, labels)
    assert len(data) == 2 and data[0] is data.X
    with pytest.raises(ValueError, match="read-only"):
        data.X[0, 0] = 1.0
    X[0, 0] = 0.5  # the caller's array was copied: changing it leaves the data set alone
    assert data.X[0, 0] != 0.5


def test_read_only_arrays_are_shared_writable_ones_copied():
    X, labels = pixels(8)
    X.setflags(write=False)
    labels.setflags(write=False)
    shared = Dataset(X[:4], labels[:4])
    assert shared.X.base is X and shared.labels.base is labels
    writable_owner = numpy.zeros((4, 12))
    view = writable_owner.view()
    view.setflags(write=False)  # read-only, but its memory is not
    assert not numpy.shares_memory(Dataset(view, labels[:4]).X, writable_owner)


def test_prepared_makes_once_for_a_dataset_and_every_time_for_a_tuple():
    made = []

    def make():
        made.append(1)
        return len(made)

    data = Dataset(*pixels(4))
    assert prepared(data, "k", make) == prepared(data, "k", make) == 1
    assert prepared(data, "other", make) == 2
    pair = pixels(4)
    assert prepared(pair, "k", make) == 3 and prepared(pair, "k", make) == 4


def test_sgd_prepares_a_dataset_once(monkeypatch):
    encoded = []
    real = cpu_epoch.pixel_codes
    monkeypatch.setattr(cpu_epoch, "pixel_codes", lambda X: encoded.append(1) or real(X))
    data = Dataset(*pixels(60))
    net = Network([12, 5, 3], backend="numpy", seed=1)
    for _ in range(3):
        net.sgd(data, 1, 10, 0.5, validation_data=data)
    assert len(encoded) == 1
    assert net.to_device(data) is net.to_device(data)  # the device copy, kept


def test_a_dataset_trains_exactly_as_its_tuple():
    X, labels = pixels(60)
    by_tuple = Network([12, 5, 3], backend="numpy", dtype="float64", seed=1)
    by_dataset = Network([12, 5, 3], backend="numpy", dtype="float64", seed=1)
    for _ in range(2):
        by_tuple.sgd((X, labels), 1, 10, 0.5)
        by_dataset.sgd(Dataset(X, labels), 1, 10, 0.5)
    for a, b in zip(by_tuple.weights + by_tuple.biases, by_dataset.weights + by_dataset.biases):
        assert numpy.array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_array_changed_in_place_between_two_calls_trains_on_its_new_values(dtype):
    """The stale-cache trap: the second call must see the new pixels, as a
    network trained from the start on them does."""
    X, labels = pixels(60)
    changed, _ = pixels(60, seed=7)
    net = Network([12, 5, 3], backend="numpy", dtype=dtype, seed=1)
    net.sgd((X, labels), 1, 10, 0.5)
    X[...] = changed                     # in place: same array object, new values
    net.sgd((X, labels), 1, 10, 0.5)
    twin = Network([12, 5, 3], backend="numpy", dtype=dtype, seed=1)
    twin.sgd((pixels(60)[0], labels), 1, 10, 0.5)
    twin.sgd((changed.copy(), labels), 1, 10, 0.5)
    for a, b in zip(net.weights + net.biases, twin.weights + twin.biases):
        assert numpy.array_equal(a, b)


def test_load_mnist_gives_datasets(mnist):
    for split in mnist:
        assert isinstance(split, Dataset) and not split.X.flags.writeable
