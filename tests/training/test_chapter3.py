"""Chapter 3's improvements: each one's math, and a short run showing it
changes learning the way the book says."""

import numpy
import pytest
from conftest import assert_backprop_matches_finite_differences, random_problem

from nn_gpu import Network
from nn_gpu.backends import Backend
from nn_gpu.errors import InvalidArgumentError
from nn_gpu.training.loop import Watch

NETS = [("quadratic", "sigmoid"), ("cross_entropy", "sigmoid"), ("log_likelihood", "sigmoid"),
        ("cross_entropy", "tanh"), ("log_likelihood", "relu")]


@pytest.mark.parametrize("cost, activation", NETS)
def test_backprop_matches_finite_differences(backend, cost, activation):
    sizes = [6, 5, 4, 3]
    X, labels, Y = random_problem(numpy.random.default_rng(0), sizes, 7)
    net = Network(sizes, cost=cost, activation=activation, backend=backend, dtype="float64",
                  seed=1)
    assert_backprop_matches_finite_differences(net, X, labels, Y, rtol=1e-5, atol=1e-8)


def test_softmax_outputs_are_a_distribution_and_the_cost_is_minus_log_a_y(backend):
    X, labels, _ = random_problem(numpy.random.default_rng(1), [5, 4, 3], 6)
    net = Network([5, 4, 3], cost="log_likelihood", backend=backend, dtype="float64", seed=2)
    a = backend.to_host(net.feedforward(X))
    numpy.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=1e-12)
    expected = -numpy.mean(numpy.log(a[numpy.arange(6), labels]))
    assert net.total_cost((X, labels)) == pytest.approx(expected, rel=1e-12)
    net.weights[-1][...] = backend.asarray(numpy.full((3, 4), 500.0))  # huge z: no overflow
    assert numpy.isfinite(net.total_cost((X, labels)))


def test_regularisation_is_scaled_by_the_training_set_size():
    """network2.py divides by the size of whatever set it scores; the
    regularisation term belongs to the training set's size n."""
    X, labels, _ = random_problem(numpy.random.default_rng(2), [4, 3, 2], 10)
    net = Network([4, 3, 2], backend="numpy", dtype="float64", seed=3)
    plain = net.total_cost((X, labels))
    sum_sq = sum(float((w * w).sum()) for w in net.weights)
    sum_abs = sum(float(numpy.abs(w).sum()) for w in net.weights)
    with_l2 = net.total_cost((X, labels), l2=5.0, train_size=50_000)
    assert with_l2 == pytest.approx(plain + 5.0 / (2 * 50_000) * sum_sq, rel=1e-12)
    with_l1 = net.total_cost((X, labels), l1=2.0, train_size=1000)
    assert with_l1 == pytest.approx(plain + 2.0 / 1000 * sum_abs, rel=1e-12)


def one_step(settings, eta=0.5, steps=1):
    """Train [4, 3, 2] on 8 examples, one mini-batch per step; return the
    network and its starting copy."""
    X, labels, Y = random_problem(numpy.random.default_rng(4), [4, 3, 2], 8)
    net = Network([4, 3, 2], cost="cross_entropy", backend="numpy", dtype="float64", seed=5)
    start = Network([4, 3, 2], cost="cross_entropy", backend="numpy", dtype="float64", seed=5)
    net.sgd((X, labels), steps, 8, eta, **settings)
    return net, start, X, Y


def test_l2_step_is_weight_decay_then_gradient():
    net, start, X, Y = one_step({"l2": 3.0})
    nabla_b, nabla_w = start.backprop(X, Y)
    for w, w0, nw in zip(net.weights, start.weights, nabla_w):
        numpy.testing.assert_allclose(w, (1 - 0.5 * 3.0 / 8) * w0 - 0.5 * nw, rtol=1e-12)
    for b, b0, nb in zip(net.biases, start.biases, nabla_b):  # biases are not regularised
        numpy.testing.assert_allclose(b, b0 - 0.5 * nb, rtol=1e-12)


def test_l1_step_moves_weights_towards_zero_by_a_constant():
    net, start, X, Y = one_step({"l1": 2.0})
    _, nabla_w = start.backprop(X, Y)
    for w, w0, nw in zip(net.weights, start.weights, nabla_w):
        numpy.testing.assert_allclose(w, w0 - 0.5 * 2.0 / 8 * numpy.sign(w0) - 0.5 * nw,
                                      rtol=1e-12)


def test_momentum_accumulates_velocity():
    """Two steps: v1 = -η∇C(p0), p1 = p0 + v1; v2 = μ v1 - η∇C(p1), p2 = p1 + v2,
    for weights and biases alike."""
    net, start, X, Y = one_step({"momentum": 0.9}, steps=2)
    params = start.weights + start.biases
    nabla_b, nabla_w = start.backprop(X, Y)
    velocity = [-0.5 * g for g in list(nabla_w) + list(nabla_b)]
    for p, v in zip(params, velocity):
        p += v
    nabla_b, nabla_w = start.backprop(X, Y)
    for p, p1, v, g in zip(net.weights + net.biases, params, velocity,
                           list(nabla_w) + list(nabla_b)):
        numpy.testing.assert_allclose(p, p1 + 0.9 * v - 0.5 * g, rtol=1e-9)


def test_dropout_off_when_scoring_and_vanishing_dropout_is_no_dropout(mnist_slice):
    """The masked path with p -> 0 is the plain path (both on the portable
    core), and scoring a dropout-trained network is deterministic."""
    training, test = mnist_slice
    training = (training[0][:100], training[1][:100])
    nets = []
    for dropout in (0.0, 1e-12):
        net = Network([784, 20, 10], backend=Backend(numpy), dtype="float64", seed=6)
        net.sgd(training, 1, 10, 1.0, dropout=dropout)
        nets.append(net)
    for a, b in zip(nets[0].weights, nets[1].weights):
        numpy.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    X = test[0][:5]
    numpy.testing.assert_array_equal(nets[1].feedforward(X), nets[1].feedforward(X))


def test_per_example_reference_refuses_what_it_does_not_implement():
    X, labels, _ = random_problem(numpy.random.default_rng(7), [4, 3, 2], 8)
    with pytest.raises(InvalidArgumentError, match="per_example"):
        Network([4, 3, 2], backend="numpy").sgd((X, labels), 1, 4, 1.0, method="per_example",
                                                 l2=1.0)
    with pytest.raises(InvalidArgumentError, match="per_example"):
        Network([4, 3, 2], activation="relu", backend="numpy").sgd(
            (X, labels), 1, 4, 1.0, method="per_example")


@pytest.mark.parametrize("settings, message", [
    ({"l2": -1.0}, r"l2 \(λ\) must be a number in \[0, inf\)"),
    ({"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
    ({"momentum": 1.5}, r"momentum must be a number in \[0, 1\)"),
    ({"eta_schedule": 0}, "eta_schedule must be a positive number of epochs"),
    ({"early_stopping": 3}, "pass validation_data"),
])
def test_bad_settings_are_clear_errors(settings, message):
    X, labels, _ = random_problem(numpy.random.default_rng(8), [4, 3, 2], 8)
    with pytest.raises(InvalidArgumentError, match=message):
        Network([4, 3, 2], backend="numpy").sgd((X, labels), 1, 4, 1.0, **settings)
    with pytest.raises(InvalidArgumentError, match="unknown activation 'swish'"):
        Network([4, 3, 2], activation="swish")


class FakeNet:
    def __init__(self):
        self.saved = None

    def copy_parameters(self):
        return "params"

    def set_parameters(self, params):
        self.saved = params


def test_eta_schedule_halves_and_stops_at_one_128th():
    watch = Watch(FakeNet(), 1.0, eta_schedule=2, early_stopping=None)
    assert watch.update(1, 0.90) is None and watch.eta == 1.0
    assert watch.update(2, 0.90) is None and watch.eta == 1.0   # one flat epoch
    assert watch.update(3, 0.89) is None and watch.eta == 0.5   # two: halve
    assert watch.update(4, 0.95) is None and watch.eta == 0.5   # improvement resets
    stops = [watch.update(epoch, 0.5) for epoch in range(5, 5 + 2 * 6)]
    assert watch.eta == 1 / 128 and stops[-1].startswith("eta schedule")
    assert all(stop is None for stop in stops[:-1])


def test_early_stopping_keeps_the_best_weights(mnist_slice):
    training, test = mnist_slice
    kept = {}

    def remember(record):
        kept[record["epoch"]] = ([w.copy() for w in net.weights], record["validation_accuracy"])
    net = Network([784, 10, 10], backend="numpy", seed=9)
    # η = 30 makes training erratic, so validation accuracy soon stops improving.
    history = net.sgd(training, 30, 10, 30.0, validation_data=test, early_stopping=2,
                      callback=remember)
    assert "early stopping" in history[-1]["stopped"] and len(history) < 30
    best = max(kept, key=lambda epoch: (kept[epoch][1], -epoch))
    for w, w_best in zip(net.weights, kept[best][0]):
        numpy.testing.assert_array_equal(w, w_best)


# ------------------------------------------------ learning, as the book says

def short_run(mnist, epochs=1, n=10_000, eta=0.5, sizes=(784, 30, 10), **kwargs):
    """Train on the first n training images; return (net, history). Keyword
    arguments go to Network or to sgd, whichever takes them."""
    (X, y), (Xv, yv), _ = mnist
    settings = {key: kwargs.pop(key) for key in list(kwargs)
                if key in ("l2", "l1", "momentum", "dropout")}
    net = Network(list(sizes), backend="numpy", seed=3, **kwargs)
    history = net.sgd((X[:n], y[:n]), epochs, 10, eta, validation_data=(Xv, yv),
                      monitor_training_accuracy=True, **settings)
    return net, history


def test_cross_entropy_learns_faster_than_quadratic_from_saturated_outputs(mnist):
    """Big initial weights saturate the outputs; σ'(z) ≈ 0 slows the quadratic
    cost, not cross-entropy (the book's motivation for it)."""
    accuracy = {cost: short_run(mnist, cost=cost)[1][0]["validation_accuracy"]
                for cost in ("quadratic", "cross_entropy")}
    assert accuracy["cross_entropy"] > accuracy["quadratic"] + 0.03


def test_scaled_initialisation_learns_faster_at_first(mnist):
    accuracy = {init: short_run(mnist, cost="cross_entropy", init=init)[1][0][
        "validation_accuracy"] for init in ("normal", "scaled")}
    assert accuracy["scaled"] > accuracy["normal"] + 0.02


@pytest.mark.slow
def test_l2_shrinks_weights_and_narrows_the_overfitting_gap(mnist):
    """1,000 training images for 30 epochs overfit (the book's chapter-3 setup)."""
    runs = {l2: short_run(mnist, epochs=30, n=1000, cost="cross_entropy", l2=l2)
            for l2 in (0.0, 1.0)}
    norm = {l2: sum(float((w * w).sum()) for w in net.weights) for l2, (net, _) in runs.items()}
    gap = {l2: h[-1]["train_accuracy"] - h[-1]["validation_accuracy"]
           for l2, (_, h) in runs.items()}
    assert norm[1.0] < 0.5 * norm[0.0]
    assert gap[1.0] < gap[0.0]


@pytest.mark.slow
def test_l1_makes_more_weights_near_zero_than_l2(mnist):
    near_zero = {}
    for name, setting in (("l1", {"l1": 1.0}), ("l2", {"l2": 1.0})):
        net, _ = short_run(mnist, epochs=10, n=2000, cost="cross_entropy", init="scaled",
                           **setting)
        near_zero[name] = float(numpy.mean(numpy.abs(net.weights[0]) < 1e-3))
    assert near_zero["l1"] > near_zero["l2"] + 0.05


def test_momentum_speeds_up_a_small_learning_rate(mnist):
    cost = {mu: short_run(mnist, cost="cross_entropy", init="scaled", eta=0.05,
                          momentum=mu)[1][0]["validation_accuracy"] for mu in (0.0, 0.9)}
    assert cost[0.9] > cost[0.0] + 0.01


def test_dropout_still_learns_and_is_reproducible(mnist):
    a = short_run(mnist, cost="cross_entropy", init="scaled", dropout=0.3)
    b = short_run(mnist, cost="cross_entropy", init="scaled", dropout=0.3)
    assert a[1][0]["validation_accuracy"] > 0.85
    for wa, wb in zip(a[0].weights, b[0].weights):  # masks come from the network's seed
        numpy.testing.assert_array_equal(wa, wb)
