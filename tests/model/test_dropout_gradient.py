"""Dropout's gradient against finite differences, with the mask held fixed.

One SGD step of the batched core with dropout, on a backend whose "random"
masks are fixed, moves the parameters by η times the gradient of the mean
cost of the *thinned* network: the one whose hidden activations are
multiplied by those masks. That cost is written out here in plain NumPy and
differentiated numerically, so the test fails if backprop forgets the mask
(a dropped unit passing error back) or takes the weight gradients from the
activations before dropout.
"""

import numpy
import pytest

from nn_gpu import Network
from nn_gpu.backends import NumpyBackend
from nn_gpu.model import core

SIZES = [4, 6, 5, 3]
ROWS = 7
P = 0.5
ETA = 0.1


class FixedMasks(NumpyBackend):
    """NumPy, but the dropout masks are given, one per hidden layer in order."""

    def __init__(self, masks):
        super().__init__("dropout masks fixed for a gradient check")
        self.masks = masks
        self.drawn = 0

    def dropout_mask(self, rng, p, out):
        out[...] = self.masks[self.drawn % len(self.masks)]
        self.drawn += 1
        return out


def activation(kind, z):
    if kind == "sigmoid":
        return 1 / (1 + numpy.exp(-z))
    if kind == "tanh":
        return numpy.tanh(z)
    if kind == "softmax":
        e = numpy.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise AssertionError(kind)


def thinned_cost(net, weights, biases, masks, X, Y):
    """Mean cost of the network with its hidden activations times ``masks``."""
    a = X
    for l, (w, b) in enumerate(zip(weights, biases)):
        z = a @ w.T + b
        if l == len(weights) - 1:
            return float(net.cost.total(net.backend, z, Y)) / X.shape[0]
        a = activation(net.kinds[l], z) * masks[l]


def one_dropout_step(net, X, Y):
    """The parameters after one core SGD step on the whole batch (X, Y)."""
    backend = net.backend
    workspace = core.Workspace(backend, net.sizes, ROWS, net.dtype, dropout=True)
    activations, targets, deltas = workspace.slot(0, ROWS)
    activations[0][...] = X
    targets[...] = Y
    plan = core.Plan(cost=net.cost, kinds=net.kinds, eta=ETA, train_size=ROWS, dropout=P)
    weights = [w.copy() for w in net.weights]
    biases = [b.copy() for b in net.biases]
    core.train_step(backend, plan, weights, biases, workspace, activations, targets, deltas)
    return weights, biases


@pytest.mark.parametrize("cost, activation_kind", [("cross_entropy", "sigmoid"),
                                                    ("log_likelihood", "tanh"),
                                                    ("quadratic", "sigmoid")])
def test_dropout_gradient_matches_finite_differences(cost, activation_kind):
    rng = numpy.random.default_rng(3)
    masks = [(rng.random((ROWS, n)) >= P) / (1 - P) for n in SIZES[1:-1]]
    assert all(0 < (m == 0).mean() < 1 for m in masks)  # some units dropped, some kept
    net = Network(SIZES, cost=cost, activation=activation_kind, backend=FixedMasks(masks),
                  dtype="float64", seed=1, init="scaled")
    X = rng.random((ROWS, SIZES[0]))
    Y = numpy.eye(SIZES[-1])[rng.integers(0, SIZES[-1], ROWS)]
    stepped_w, stepped_b = one_dropout_step(net, X, Y)

    h = 1e-6
    for params, stepped in ((net.weights, stepped_w), (net.biases, stepped_b)):
        for param, after in zip(params, stepped):
            analytic = (param - after) / ETA  # the step was η ∇C
            numeric = numpy.empty(param.shape)
            for index in numpy.ndindex(param.shape):
                original = param[index]
                param[index] = original + h
                up = thinned_cost(net, net.weights, net.biases, masks, X, Y)
                param[index] = original - h
                down = thinned_cost(net, net.weights, net.biases, masks, X, Y)
                param[index] = original
                numeric[index] = (up - down) / (2 * h)
            numpy.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)
