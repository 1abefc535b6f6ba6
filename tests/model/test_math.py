"""The math: backprop against finite differences, the batched core against
Nielsen's per-example reference, to float64 precision."""

import numpy
import pytest
from conftest import assert_backprop_matches_finite_differences, random_problem

from nn_gpu import Network
from nn_gpu.model import reference

COSTS = ["quadratic", "cross_entropy"]


def host(backend, arrays):
    return [backend.to_host(a) for a in arrays]


@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("sizes", [[5, 4, 3], [6, 5, 4, 3]])
def test_backprop_matches_finite_differences(backend, cost, sizes):
    """∂C/∂w and ∂C/∂b of the mean cost, by central differences."""
    rng = numpy.random.default_rng(0)
    X, labels, Y = random_problem(rng, sizes, 7)
    net = Network(sizes, cost=cost, backend=backend, dtype="float64", seed=1)
    assert_backprop_matches_finite_differences(net, X, labels, Y, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("cost", COSTS)
def test_batched_backprop_equals_mean_of_per_example(backend, cost):
    sizes = [8, 6, 5, 4]
    rng = numpy.random.default_rng(2)
    X, _, Y = random_problem(rng, sizes, 9)
    net = Network(sizes, cost=cost, backend=backend, dtype="float64", seed=3)
    nabla_b, nabla_w = net.backprop(X, Y)
    Xd, Yd = backend.asarray(X), backend.asarray(Y)
    per_example = [reference.backprop_example(backend, cost, net.weights, net.biases, Xd[i], Yd[i])
                   for i in range(len(X))]
    for l in range(len(sizes) - 1):
        mean_b = sum(backend.to_host(nb[l]) for nb, _ in per_example) / len(X)
        mean_w = sum(backend.to_host(nw[l]) for _, nw in per_example) / len(X)
        numpy.testing.assert_allclose(backend.to_host(nabla_b[l]), mean_b, rtol=1e-12, atol=1e-15)
        numpy.testing.assert_allclose(backend.to_host(nabla_w[l]), mean_w, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("cost", COSTS)
def test_sgd_methods_follow_the_same_trajectory(backend, cost, mnist_slice):
    """Two epochs on real digits, 1000 examples in mini-batches of 30 (the
    last one partial): the per-example loop and the batched core give the
    same weights to float64 rounding, and the same accuracy every epoch."""
    training, test = mnist_slice
    results = {}
    for method in ("per_example", "batched"):
        net = Network([784, 20, 10], cost=cost, backend=backend, dtype="float64", seed=5)
        history = net.sgd(training, 2, 30, 0.5 if cost == "cross_entropy" else 3.0,
                          test_data=test, method=method)
        results[method] = (host(backend, net.weights + net.biases),
                           [h["test_correct"] for h in history])
    (slow, slow_acc), (fast, fast_acc) = results["per_example"], results["batched"]
    assert slow_acc == fast_acc
    for a, b in zip(slow, fast):
        numpy.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


def test_last_partial_mini_batch_is_used(backend):
    """25 examples in mini-batches of 10: three steps, the last on 5 rows."""
    sizes = [4, 3, 2]
    X, labels, Y = random_problem(numpy.random.default_rng(4), sizes, 25)
    net = Network(sizes, backend=backend, dtype="float64", seed=9)
    twin = Network(sizes, backend=backend, dtype="float64", seed=9)
    net.sgd((X, labels), 1, 10, 2.0)
    order = twin.rng.permutation(25)  # the shuffle sgd drew
    Xd, Yd = backend.asarray(X), backend.asarray(Y)
    for start in (0, 10, 20):
        reference.update_mini_batch(backend, "quadratic", twin.weights, twin.biases, Xd, Yd,
                                    [int(i) for i in order[start:start + 10]], 2.0)
    for a, b in zip(host(backend, net.weights + net.biases), host(backend, twin.weights + twin.biases)):
        numpy.testing.assert_allclose(a, b, rtol=1e-12)
    before = Network(sizes, backend=backend, dtype="float64", seed=9)
    assert not numpy.allclose(backend.to_host(before.weights[0]), backend.to_host(net.weights[0]))


@pytest.mark.parametrize("cost", COSTS)
def test_total_cost_is_the_textbook_formula(backend, cost):
    sizes = [6, 5, 4]
    X, labels, Y = random_problem(numpy.random.default_rng(6), sizes, 11)
    net = Network(sizes, cost=cost, backend=backend, dtype="float64", seed=2)
    a = backend.to_host(net.feedforward(X))
    if cost == "quadratic":
        expected = numpy.mean(0.5 * numpy.sum((a - Y) ** 2, axis=1))
    else:
        expected = numpy.mean(-numpy.sum(Y * numpy.log(a) + (1 - Y) * numpy.log(1 - a), axis=1))
    assert net.total_cost((X, labels)) == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_cost_is_finite_when_saturated(backend):
    """Huge weights saturate σ to exactly 0 or 1; the cost, taken from z, stays finite."""
    net = Network([3, 2], cost="cross_entropy", backend=backend, dtype="float64", seed=0)
    net.weights[0][...] = backend.asarray(numpy.full((2, 3), 400.0))
    cost = net.total_cost((numpy.ones((1, 3)), numpy.array([0])))
    # z = 1200 + b; label 0: C = softplus(-z_0) + softplus(z_1) = 0 + z_1.
    assert cost == pytest.approx(1200.0 + backend.to_host(net.biases[0])[1], rel=1e-12)


def test_same_seed_same_network_on_every_backend_and_dtype(backend):
    a = Network([7, 5, 3], backend=backend, dtype="float64", seed=11)
    b = Network([7, 5, 3], backend="numpy", dtype="float32", seed=11)
    for p, q in zip(a.weights + a.biases, b.weights + b.biases):
        numpy.testing.assert_allclose(backend.to_host(p), q, rtol=1e-6)
    assert b.weights[0].dtype == numpy.float32


def test_scaled_init_has_variance_one_over_n_in():
    net = Network([400, 300, 10], backend="numpy", dtype="float64", seed=0, init="scaled")
    assert net.weights[0].std() == pytest.approx(1 / 20, rel=0.02)
    assert net.biases[0].std() == pytest.approx(1.0, rel=0.1)


@pytest.mark.slow
def test_methods_agree_on_full_mnist_until_rounding_chaos_takes_over(mnist):
    """The book's run in float64: both methods give the same first epoch on all
    50,000 digits. After that SGD at η = 3 amplifies rounding differences, so
    the runs drift apart by as much as a one-ulp change to a single initial
    weight makes the batched run drift from itself: the gap is rounding, not
    a difference in the algorithm."""
    training, _, test = mnist

    def train(method, nudge=False):
        net = Network([784, 30, 10], backend="numpy", dtype="float64", seed=1)
        if nudge:
            net.weights[1][0, 0] = numpy.nextafter(net.weights[1][0, 0], numpy.inf)
        history = net.sgd(training, 2, 10, 3.0, test_data=test, method=method,
                          monitor_training_cost=True)
        return net, history

    batched, batched_history = train("batched")
    per_example, per_example_history = train("per_example")
    nudged, _ = train("batched", nudge=True)
    first_b, first_p = batched_history[0], per_example_history[0]
    assert first_b["test_correct"] == first_p["test_correct"]
    assert first_b["train_cost"] == pytest.approx(first_p["train_cost"], rel=1e-6)

    def gap(a, b):
        return max(numpy.abs(x - y).max() for x, y in zip(a.weights, b.weights))
    method_gap, rounding_gap = gap(batched, per_example), gap(batched, nudged)
    assert rounding_gap > 0.01                          # chaos is real ...
    assert method_gap < 10 * rounding_gap               # ... and explains the method gap
