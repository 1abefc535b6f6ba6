"""The perceptron: the seed notes' first definition, and Rosenblatt's learning rule.

    p(x) = 1 if w·x + b > 0, else 0

Learning goes through the examples one at a time, in order, and after each
sets w ← w + η(y − p(x))x and b ← b + η(y − p(x)): nothing moves when the
answer was right, and a wrong answer pushes w·x + b towards the right side
of 0. The updates are *not* batched: each one changes p for every later
example of the epoch, so a batched sum of the epoch's corrections is a
different algorithm. When the classes can be split by a hyperplane the rule
stops making mistakes after finitely many epochs (Novikoff's theorem); when
they cannot (XOR) it never does, and ``fit`` says so.

A sigmoid neuron is a smooth perceptron: σ(c(w·x + b)) → p(x) as c → ∞ for
every x off the hyperplane w·x + b = 0 (``tests/model/test_perceptron.py``).
"""

import math

import numpy

from .. import options
from ..backends import get_backend
from ..errors import InvalidArgumentError


class Perceptron:
    """One perceptron with ``n_inputs`` inputs, on a NumPy or CuPy backend.

    ``weights`` is w, a backend array of shape (n_inputs,); ``bias`` is b,
    a Python float. Both start N(0, 1), drawn on the host from ``seed``, so a
    seed gives the same perceptron on every backend (``seed=None`` draws one,
    kept in ``seed``). ``converged_`` is None until ``fit`` has run. Every
    argument is checked by :mod:`nn_gpu.options`' validators, the error
    naming it.
    """

    def __init__(self, n_inputs, seed=None, backend="auto", dtype="float32"):
        self.n_inputs = options.positive_int(n_inputs, "n_inputs")
        self.dtype = options.dtype(dtype)
        seed = options.seed(seed, "seed")
        self.seed = options.fresh_seed() if seed is None else seed
        self.backend = get_backend(backend)
        rng = numpy.random.default_rng(self.seed)
        self.weights = rng.standard_normal(self.n_inputs)
        self.bias = float(rng.standard_normal())
        self.converged_ = None

    def __repr__(self):
        return (f"Perceptron({self.n_inputs}, backend={self.backend.name!r}, "
                f"dtype={self.dtype.name!r})")

    # ---------------------------------------------------------- parameters
    @property
    def weights(self):
        return self._w

    @weights.setter
    def weights(self, w):
        w = self._array(w, "weights", ndim=1)
        if w.shape != (self.n_inputs,):
            raise InvalidArgumentError(
                f"weights must have shape ({self.n_inputs},), got {tuple(w.shape)}")
        self._w = w

    @property
    def bias(self):
        """b as a Python float (reading it synchronises with the device)."""
        return self.backend.to_host(self._b).item()

    @bias.setter
    def bias(self, b):
        self._b = self.backend.asarray(options.number_in(b, "bias", low=-math.inf), self.dtype)

    # ---------------------------------------------------------- the rule
    def weighted_input(self, X):
        """z = w·x + b for every row x of X: a backend array of shape (m,)."""
        return self._z(self._inputs(X))

    def predict(self, X):
        """p(x) for every row x of X: a backend int64 array of 0s and 1s."""
        return self._p(self._z(self._inputs(X)))

    def _z(self, X):
        return self.backend.xp.matmul(X, self._w) + self._b

    def _p(self, z):
        return (z > 0).astype(self.backend.xp.int64)  # z == 0 gives 0, as the definition says

    def fit(self, X, y, epochs, eta=1.0):
        """Learn w and b by the perceptron rule; return the mistakes of each epoch.

        Each epoch visits the rows of X in order and updates after every
        example. Training stops after the first epoch without a mistake
        (``converged_`` True) or after ``epochs`` epochs (``converged_``
        False: the last epoch still made mistakes, as it always will on data
        no hyperplane separates). ``y`` holds one label, 0 or 1, per row.
        """
        epochs = options.positive_int(epochs, "epochs")
        eta = options.positive_number(eta, "eta")
        X = self._inputs(X)
        y = self._labels(y, X.shape[0])
        xp = self.backend.xp
        w, b = self._w, self._b
        mistakes = []
        for _ in range(epochs):
            wrong = xp.zeros((), dtype=xp.int64)
            for i in range(X.shape[0]):
                # error = y - p(x) in {-1, 0, 1}, kept on the device: no sync per example.
                error = y[i] - self._p(xp.matmul(X[i], w) + b)
                step = error.astype(self.dtype) * eta
                w += step * X[i]
                b += step
                wrong += xp.abs(error)
            mistakes.append(int(self.backend.to_host(wrong)))  # one sync per epoch
            if mistakes[-1] == 0:
                break
        self.converged_ = mistakes[-1] == 0
        return mistakes

    # ---------------------------------------------------------- checking
    def _array(self, values, what, ndim):
        try:
            array = self.backend.asarray(values)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"{what} must be an array of numbers") from None
        if array.dtype.kind not in "biuf":
            raise InvalidArgumentError(f"{what} must hold real numbers, got dtype {array.dtype}")
        if array.ndim != ndim:
            raise InvalidArgumentError(f"{what} must be {ndim}-D, got shape {tuple(array.shape)}")
        array = self.backend.asarray(array, self.dtype)
        if not self.backend.to_host(self.backend.xp.all(self.backend.xp.isfinite(array))):
            raise InvalidArgumentError(f"{what} contains NaN or infinite values")
        return array

    def _inputs(self, X):
        X = self._array(X, "X", ndim=2)
        if X.shape[1] != self.n_inputs or X.shape[0] == 0:
            raise InvalidArgumentError(f"X must have shape (m, {self.n_inputs}) with m >= 1 "
                                       f"(one input vector per row), got {tuple(X.shape)}")
        return X

    def _labels(self, y, m):
        xp = self.backend.xp
        y = self._array(y, "y", ndim=1)
        if y.shape != (m,):
            raise InvalidArgumentError(f"y must hold one label per row of X ({m}), "
                                       f"got shape {tuple(y.shape)}")
        if not self.backend.to_host(xp.all((y == 0) | (y == 1))):
            raise InvalidArgumentError("y must hold only the labels 0 and 1")
        return y.astype(xp.int64)
