"""Networks with one output neuron: the seed notes' "is it a nine?" classifier.

Labels are 0/1, the target y is the label, a^L > 0.5 (z^L > 0) means 1; the
math (gradients, costs, both SGD methods, the compiled CPU epoch) is held to
the same oracles as the many-output network's.
"""

import json

import numpy
import pytest
from conftest import assert_backprop_matches_finite_differences
from strict_backend import StrictBackend

from nn_gpu import Network
from nn_gpu.backends import Backend, NumpyBackend
from nn_gpu.errors import InvalidArgumentError, ModelFileError
from nn_gpu.model import core

COSTS = ["quadratic", "cross_entropy"]


def binary_problem(rng, n_in, m):
    X = rng.random((m, n_in))
    labels = rng.integers(0, 2, m)
    return X, labels, labels[:, None].astype(float)


def host(backend, array):
    return numpy.asarray(backend.to_host(array))


def nines(data, digit=9):
    X, labels = data
    return X, (labels == digit).astype(numpy.int64)


@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("sizes", [[5, 1], [5, 4, 1], [6, 5, 4, 1]])
def test_backprop_matches_finite_differences(backend, cost, sizes):
    X, labels, Y = binary_problem(numpy.random.default_rng(0), sizes[0], 7)
    net = Network(sizes, cost=cost, backend=backend, dtype="float64", seed=1)
    assert_backprop_matches_finite_differences(net, X, labels, Y, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("cost", COSTS)
def test_cost_is_the_textbook_formula(backend, cost):
    """Quadratic: ½(a - y)²; cross-entropy: -[y ln a + (1 - y) ln(1 - a)], averaged."""
    X, labels, _ = binary_problem(numpy.random.default_rng(2), 4, 9)
    net = Network([4, 3, 1], cost=cost, backend=backend, dtype="float64", seed=3)
    a = host(backend, net.feedforward(X))[:, 0]
    y = labels
    expected = (0.5 * (a - y) ** 2 if cost == "quadratic"
                else -(y * numpy.log(a) + (1 - y) * numpy.log(1 - a))).mean()
    assert net.total_cost((X, labels)) == pytest.approx(expected, rel=1e-12)


def test_a_over_one_half_means_one_and_z_zero_means_zero(backend):
    net = Network([2, 1], backend=backend, dtype="float64")
    net.weights[0][...] = backend.asarray(numpy.array([[1.0, -1.0]]))
    net.biases[0][...] = backend.asarray(numpy.zeros(1))
    X = numpy.array([[0.3, 0.3],    # z = 0: a = 0.5, not > 0.5 -> 0
                     [0.3, 0.2],    # z > 0 -> 1
                     [0.2, 0.3]])   # z < 0 -> 0
    assert host(backend, net.feedforward(X))[:, 0].tolist() == pytest.approx([0.5, 0.525, 0.475],
                                                                            abs=1e-3)
    assert net.evaluate((X, numpy.array([0, 1, 0]))) == 3
    assert net.evaluate((X, numpy.array([1, 0, 1]))) == 0


def test_labels_must_be_zero_or_one(backend):
    net = Network([3, 2, 1], backend=backend, seed=0)
    X = numpy.zeros((3, 3))
    assert net.evaluate((X, numpy.array([0, 1, 1]))) in range(4)
    with pytest.raises(InvalidArgumentError, match=r"labels must lie in \[0, 1\], found 0..2"):
        net.evaluate((X, numpy.array([0, 1, 2])))


def test_softmax_over_one_output_is_refused(tmp_path):
    with pytest.raises(InvalidArgumentError, match="always 1 for a single output neuron; use "
                                                   "cost 'cross_entropy' or 'quadratic'") as info:
        Network([784, 30, 1], cost="log_likelihood")
    assert "\n" not in str(info.value)
    path = tmp_path / "forged.npz"
    meta = {"format": "nn_gpu.network", "version": 1, "sizes": [3, 1],
            "cost": "log_likelihood", "dtype": "float32"}
    numpy.savez(path, metadata=numpy.array(json.dumps(meta)), w0=numpy.zeros((1, 3)),
                b0=numpy.zeros(1))
    with pytest.raises(ModelFileError, match="invalid model file: cost 'log_likelihood'"):
        Network.load(path)


@pytest.mark.parametrize("cost", COSTS)
def test_batched_core_follows_the_per_example_reference(backend, cost, mnist_slice):
    """Nine-or-not on 1000 real digits, mini-batches of 30 (the last partial):
    the book's loop and the batched core give the same weights to float64
    rounding and the same test accuracy, precision and recall every epoch."""
    training, test = (nines(d) for d in mnist_slice)
    results = {}
    for method in ("per_example", "batched"):
        net = Network([784, 20, 1], cost=cost, backend=backend, dtype="float64", seed=5)
        history = net.sgd(training, 2, 30, 0.5 if cost == "cross_entropy" else 3.0,
                          test_data=test, method=method)
        results[method] = ([host(backend, p) for p in net.weights + net.biases],
                           [(h["test_correct"], h["test_precision"], h["test_recall"])
                            for h in history])
    (slow, slow_scores), (fast, fast_scores) = results["per_example"], results["batched"]
    assert slow_scores == fast_scores
    for a, b in zip(slow, fast):
        numpy.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("batch_size", [1, 7])
def test_compiled_cpu_epoch_matches_the_generic_core(mnist_slice, cost, batch_size):
    training = nines((mnist_slice[0][0][:100], mnist_slice[0][1][:100]))
    nets = [Network([784, 20, 1], cost=cost, backend=b, dtype="float64", seed=4, init="scaled")
            for b in (NumpyBackend(), Backend(numpy))]
    plan = core.Plan(cost=nets[0].cost, kinds=nets[0].kinds, eta=0.1, train_size=100)
    assert nets[0].backend.compiled_epoch(plan) is not None
    for net in nets:
        net.sgd(training, 2, batch_size, 0.1, momentum=0.5)
    for fast, portable in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        numpy.testing.assert_allclose(fast, portable, rtol=1e-8, atol=1e-10)


def test_precision_and_recall_are_counted_from_the_threshold(mnist_slice):
    """The history's figures against the definitions, computed on the host."""
    training, test = (nines(d) for d in mnist_slice)
    net = Network([784, 10, 1], cost="cross_entropy", backend="numpy", seed=2)
    record = net.sgd(training, 1, 10, 0.5, test_data=test)[0]
    said = host(net.backend, net.feedforward(test[0]))[:, 0] > 0.5
    truth = test[1] == 1
    assert record["test_correct"] == int((said == truth).sum())
    assert record["test_precision"] == (said & truth).sum() / said.sum()
    assert record["test_recall"] == (said & truth).sum() / truth.sum()
    assert net.precision_recall(test) == (record["test_precision"], record["test_recall"])
    with pytest.raises(InvalidArgumentError, match="one output neuron; this one has 10"):
        Network([784, 10]).precision_recall(test)


def test_precision_of_a_network_that_never_says_yes_is_zero():
    X = numpy.random.default_rng(0).random((20, 3))
    labels = numpy.array([0, 1] * 10)
    net = Network([3, 1], backend="numpy", seed=0)
    net.biases[0][...] = -1e3  # a = σ(-1000): always "no"
    record = net.sgd((X, labels), 1, 20, 1e-9, test_data=(X, labels))[0]
    assert (record["test_precision"], record["test_recall"]) == (0.0, 0.0)
    assert record["test_accuracy"] == 0.5


def test_runs_on_the_strict_device_stand_in(mnist_slice):
    """No host NumPy mixed into the single-output path (targets, scoring, counts)."""
    training, test = (nines((X[:200], y[:200])) for X, y in mnist_slice)
    strict = Network([784, 10, 1], cost="cross_entropy", backend=StrictBackend(),
                     dtype="float64", seed=3)
    plain = Network([784, 10, 1], cost="cross_entropy", backend=Backend(numpy),
                    dtype="float64", seed=3)
    histories = [net.sgd(training, 2, 10, 0.5, test_data=test, monitor_training_cost=True,
                         monitor_training_accuracy=True) for net in (strict, plain)]
    for record in histories[0]:
        record.pop("seconds")
    for record in histories[1]:
        record.pop("seconds")
    assert histories[0] == histories[1]


def test_save_load_round_trip(backend, tmp_path, mnist_slice):
    training, test = (nines(d) for d in mnist_slice)
    net = Network([784, 10, 1], cost="cross_entropy", backend=backend, seed=1)
    net.sgd(training, 1, 10, 0.5)
    net.save(tmp_path / "nine.npz")
    again = Network.load(tmp_path / "nine.npz", backend="numpy")
    assert again.sizes == [784, 10, 1] and again.cost.name == "cross_entropy"
    assert again.evaluate(test) == net.evaluate(test)


@pytest.mark.slow
def test_learns_to_tell_nines_from_other_digits(mnist):
    """One epoch of [784, 30, 1]: better than the 90% of always saying "no"."""
    training, validation, test = (nines(d) for d in mnist)
    baseline = 1 - test[1].mean()
    assert 0.89 < baseline < 0.9
    net = Network([784, 30, 1], cost="cross_entropy", backend="numpy", seed=1)
    record = net.sgd(training, 1, 10, 0.5, test_data=test, validation_data=validation)[0]
    assert record["test_accuracy"] > 0.97 > baseline
    assert record["test_precision"] > 0.85 and record["test_recall"] > 0.8


def test_predictions_confusion_and_probabilities_of_one_output(backend):
    """The one rule everywhere: class 1 where a > 0.5; probabilities (1 - a, a)."""
    from nn_gpu.model import metrics

    net = Network([2, 1], backend=backend, dtype="float64")
    net.weights[0][...] = backend.asarray(numpy.array([[1.0, -1.0]]))
    net.biases[0][...] = backend.asarray(numpy.zeros(1))
    X = numpy.array([[0.3, 0.3], [0.9, 0.2], [0.2, 0.9], [0.8, 0.1]])  # z = 0, +, -, +
    labels = numpy.array([1, 1, 0, 0])
    assert metrics.predictions(net, (X, labels)).tolist() == [0, 1, 0, 1]
    numpy.testing.assert_array_equal(metrics.confusion_matrix(net, (X, labels)),
                                     [[1, 1], [1, 1]])  # rows: true 0, 1; columns: predicted
    a = host(backend, net.feedforward(X))[:, 0]
    proba = metrics.probabilities(net, X)
    numpy.testing.assert_array_equal(proba, numpy.column_stack([1 - a, a]))
    assert [label for label, _ in metrics.classify(net, X)] == [0, 1, 0, 1]
