"""The perceptron of the seed notes: p(x) = [w·x + b > 0], learnt by the perceptron rule.

Every test runs on NumPy and on the strict stand-in device (which refuses
host NumPy arrays mixed into device math, as CuPy does), and on CuPy where a
GPU is usable.
"""

import itertools

import numpy
import pytest
from strict_backend import StrictBackend

from nn_gpu import Perceptron
from nn_gpu.backends import get_backend
from nn_gpu.errors import InvalidArgumentError

X2 = numpy.array(list(itertools.product((0, 1), repeat=2)))  # 00, 01, 10, 11
GATES = {"AND": [0, 0, 0, 1], "OR": [0, 1, 1, 1], "NAND": [1, 1, 1, 0]}
XOR = [0, 1, 1, 0]


@pytest.fixture(params=["numpy", "strict", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request):
    return StrictBackend() if request.param == "strict" else get_backend(request.param)


def host(backend, array):
    return numpy.asarray(backend.to_host(array))


@pytest.mark.parametrize("gate", sorted(GATES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_learns_the_linearly_separable_gates(backend, gate, seed):
    p = Perceptron(2, seed=seed, backend=backend)
    mistakes = p.fit(X2, GATES[gate], epochs=100, eta=0.5)
    assert p.converged_ is True
    assert mistakes[-1] == 0 and all(m > 0 for m in mistakes[:-1])  # stopped at the first clean epoch
    assert host(backend, p.predict(X2)).tolist() == GATES[gate]
    assert p.weights.shape == (2,) and isinstance(p.bias, float)


@pytest.mark.parametrize("seed", range(5))
def test_never_claims_to_have_learnt_xor(backend, seed):
    p = Perceptron(2, seed=seed, backend=backend)
    mistakes = p.fit(X2, XOR, epochs=200, eta=0.5)
    assert p.converged_ is False
    assert len(mistakes) == 200 and min(mistakes) >= 1
    assert host(backend, p.predict(X2)).tolist() != XOR


def test_fit_follows_the_rule_example_by_example(backend):
    """Each update is w += η(y - p(x))x, b += η(y - p(x)) with p computed
    from the weights *after* the previous example's update."""
    rng = numpy.random.default_rng(3)
    X = rng.integers(-3, 4, (12, 5)).astype(float)
    y = rng.integers(0, 2, 12)
    p = Perceptron(5, seed=4, backend=backend, dtype="float64")
    w, b = host(backend, p.weights).copy(), p.bias
    expected = []
    for _ in range(3):
        wrong = 0
        for x, label in zip(X, y):
            error = label - int(x @ w + b > 0)
            w, b = w + 0.25 * error * x, b + 0.25 * error
            wrong += abs(error)
        expected.append(wrong)
    assert p.fit(X, y, epochs=3, eta=0.25) == expected
    numpy.testing.assert_array_equal(host(backend, p.weights), w)
    assert p.bias == b


def test_predict_is_exactly_the_rule(backend):
    p = Perceptron(3, backend=backend, dtype="float64")
    p.weights = [1.0, -2.0, 0.5]
    p.bias = -0.5
    X = numpy.array([[0.5, 0.0, 0.0],     # z = 0: on the hyperplane -> 0
                     [1.0, 0.0, 0.0],     # z = 0.5 > 0 -> 1
                     [0.0, 0.0, 1.0],     # z = 0 -> 0
                     [0.0, 0.0, 1.5],     # z = 0.25 -> 1
                     [1.0, 1.0, 0.0],     # z = -1.5 -> 0
                     [0.0, 0.0, 1 + 2**-50]])  # z = 2^-51 > 0 -> 1
    assert host(backend, p.weighted_input(X)).tolist() == [0.0, 0.5, 0.0, 0.25, -1.5, 2**-51]
    predicted = host(backend, p.predict(X))
    assert predicted.dtype.kind == "i" and predicted.tolist() == [0, 1, 0, 1, 0, 1]
    Z = numpy.random.default_rng(0).standard_normal((200, 3))
    rule = (Z @ numpy.array([1.0, -2.0, 0.5]) - 0.5 > 0).astype(int)
    numpy.testing.assert_array_equal(host(backend, p.predict(Z)), rule)


def test_a_sigmoid_neuron_is_a_smooth_perceptron(backend):
    """σ(c(w·x + b)) → p(x) as c → ∞, for every x off the hyperplane w·x + b = 0."""
    p = Perceptron(4, seed=5, backend=backend, dtype="float64")
    X = numpy.random.default_rng(6).standard_normal((500, 4))
    z = p.weighted_input(X)
    step = host(backend, p.predict(X))
    assert 0 < step.sum() < len(step)
    closest = float(numpy.min(numpy.abs(host(backend, z))))
    assert closest > 0  # no row on the hyperplane
    gaps = []
    for c in (1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7):
        a = backend.sigmoid(z * c, out=backend.empty(z.shape, z.dtype))
        gaps.append(float(numpy.max(numpy.abs(host(backend, a) - step))))
        # The worst row is the one closest to the hyperplane: the gap is σ(-c·min|z|).
        assert gaps[-1] == pytest.approx(1 / (1 + numpy.exp(c * closest)), rel=1e-6)
    assert all(later < earlier for earlier, later in zip(gaps, gaps[1:]))
    assert gaps[0] > 0.4 and gaps[-1] < 1e-50
    # On the hyperplane the sigmoid stays at 1/2 for every c, where p(x) = 0.
    on_plane = backend.asarray(numpy.zeros(1))
    assert host(backend, backend.sigmoid(on_plane * 1e6, out=backend.empty((1,), on_plane.dtype))
                ).tolist() == [0.5]


def test_same_seed_same_perceptron_everywhere(backend):
    a, b = Perceptron(3, seed=7, backend=backend), Perceptron(3, seed=7, backend="numpy")
    numpy.testing.assert_array_equal(host(backend, a.weights), b.weights)
    assert a.bias == b.bias and a.weights.dtype == numpy.float32


@pytest.mark.parametrize("call, message", [
    (lambda p: p.predict(numpy.zeros((4, 3))), r"X must have shape \(m, 2\)"),
    (lambda p: p.predict(numpy.zeros(2)), "X must be 2-D"),
    (lambda p: p.predict(numpy.zeros((0, 2))), r"X must have shape \(m, 2\) with m >= 1"),
    (lambda p: p.predict([["a", "b"]]), "X must hold real numbers"),
    (lambda p: p.predict([[0.0, numpy.nan]]), "X contains NaN or infinite values"),
    (lambda p: p.fit([[0.0, numpy.inf]], [1], 5), "X contains NaN or infinite values"),
    (lambda p: p.fit(X2, [0, 1, 2, 1], 5), "y must hold only the labels 0 and 1"),
    (lambda p: p.fit(X2, [0, 1, -1, 1], 5), "y must hold only the labels 0 and 1"),
    (lambda p: p.fit(X2, [0, 1, 0.5, 1], 5), "y must hold only the labels 0 and 1"),
    (lambda p: p.fit(X2, [0, 1, 1], 5), r"y must hold one label per row of X \(4\)"),
    (lambda p: p.fit(X2, [0, 1, numpy.nan, 1], 5), "y contains NaN"),
    (lambda p: p.fit(X2, XOR, 0), "epochs must be a positive integer"),
    (lambda p: p.fit(X2, XOR, 2.5), "epochs must be a positive integer"),
    (lambda p: p.fit(X2, XOR, 5, eta=0), r"eta must be a number in \(0, inf\)"),
    (lambda p: p.fit(X2, XOR, 5, eta=float("inf")), r"eta must be a number in \(0, inf\)"),
    (lambda p: setattr(p, "weights", [1.0, 2.0, 3.0]), r"weights must have shape \(2,\)"),
    (lambda p: setattr(p, "bias", float("nan")), r"bias must be a number in \[-inf, inf\), got nan"),
    (lambda p: Perceptron(0), "n_inputs must be a positive integer"),
    (lambda p: Perceptron(2, dtype="int8"), "unknown dtype"),
])
def test_bad_input_is_one_clear_error(backend, call, message):
    p = Perceptron(2, seed=0, backend=backend)
    with pytest.raises(InvalidArgumentError, match=message) as info:
        call(p)
    assert "\n" not in str(info.value)
