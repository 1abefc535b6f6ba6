"""The network: Nielsen's ``Network`` class on a pluggable array backend.

Conventions (a contract other code depends on): ``sizes`` lists the layer
widths, input first; ``weights[l]`` has shape (n_out, n_in), its entry
w_jk connecting neuron k of one layer to neuron j of the next; ``biases[l]``
has shape (n_out,); a batch of inputs X is (m, n_in), one example per row.
"""

import functools
import json
import math
import time
import zipfile

import numpy

from . import core, reference
from .backends import get_backend
from .costs import get_cost
from .errors import InvalidArgumentError, ModelFileError
from .fileio import atomic_write

DTYPES = ("float32", "float64")
INITS = ("normal", "scaled")
METHODS = ("batched", "per_example")
MODEL_FORMAT = "nn_gpu.network"
MODEL_VERSION = 1


def initial_parameters(rng, sizes, init):
    """(biases, weights) as float64 host arrays drawn from ``rng``.

    ``"normal"``: every entry N(0, 1), as in the seed notes.
    ``"scaled"``: weights N(0, 1/n_in), so z starts O(1) and does not saturate.
    Drawing on the host makes the same seed give the same network on every backend.
    """
    biases = [rng.standard_normal(n_out) for n_out in sizes[1:]]
    weights = [rng.standard_normal((n_out, n_in)) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    if init == "scaled":
        weights = [w / math.sqrt(w.shape[1]) for w in weights]
    return biases, weights


def _check_choice(value, choices, what):
    if value not in choices:
        raise InvalidArgumentError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
    return value


def _check_dtype(dtype):
    try:
        name = numpy.dtype(dtype).name
    except TypeError:
        name = dtype
    return numpy.dtype(_check_choice(name, DTYPES, "dtype"))


def _check_positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < 1:
        raise InvalidArgumentError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


class Network:
    """A feed-forward network of sigmoid neurons trained by mini-batch SGD.

    ``backend`` is ``"auto"``, ``"numpy"``, ``"cupy"`` or a backend object;
    ``dtype`` is ``"float32"`` (fast) or ``"float64"`` (exact comparisons);
    ``seed`` fixes the initial parameters and every epoch's shuffle.
    """

    def __init__(self, sizes, cost="quadratic", backend="auto", dtype="float32", seed=None,
                 init="normal"):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) < 2:
            raise InvalidArgumentError(
                f"sizes must list at least two layer widths (input and output), got {sizes!r}")
        self.sizes = [_check_positive_int(n, "every layer size") for n in sizes]
        self.cost = get_cost(cost)
        self.dtype = _check_dtype(dtype)
        self.init = _check_choice(init, INITS, "init")
        self.backend = get_backend(backend)
        self.seed = seed
        # Host RNG: initial parameters and shuffles, identical on every backend.
        self.rng = numpy.random.default_rng(seed)
        biases, weights = initial_parameters(self.rng, self.sizes, init)
        self.biases = [self.backend.asarray(b, self.dtype) for b in biases]
        self.weights = [self.backend.asarray(w, self.dtype) for w in weights]

    def __repr__(self):
        return (f"Network({self.sizes}, cost={self.cost.name!r}, "
                f"backend={self.backend.name!r}, dtype={self.dtype.name!r})")

    @property
    def num_layers(self):
        return len(self.sizes)

    # ------------------------------------------------------------ inputs
    def _inputs(self, X, what="X"):
        """X as a (m, n_in) device array of the network's dtype."""
        X = self.backend.xp.ascontiguousarray(self.backend.asarray(X, self.dtype))
        if X.ndim != 2 or X.shape[1] != self.sizes[0] or X.shape[0] == 0:
            raise InvalidArgumentError(
                f"{what} must have shape (m, {self.sizes[0]}) with m >= 1, got {tuple(X.shape)}")
        return X

    def _dataset(self, data, what):
        """Validate ``(X, labels)`` and move it to the device once."""
        try:
            X, labels = data
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"{what} must be a pair (X, labels)") from None
        X = self._inputs(X, f"{what} X")
        labels = self.backend.asarray(labels)
        if labels.shape != (X.shape[0],):
            raise InvalidArgumentError(
                f"{what} labels must have shape ({X.shape[0]},) to match X, got {tuple(labels.shape)}")
        if labels.dtype.kind not in "iu":
            raise InvalidArgumentError(f"{what} labels must be integers, got dtype {labels.dtype}")
        xp = self.backend.xp
        # One read-back per data set, before training starts.
        low, high, finite = (self._read(v) for v in
                             (xp.min(labels), xp.max(labels), xp.all(xp.isfinite(X))))
        if low < 0 or high >= self.sizes[-1]:
            raise InvalidArgumentError(
                f"{what} labels must lie in [0, {self.sizes[-1] - 1}], found {low}..{high}")
        if not finite:
            raise InvalidArgumentError(f"{what} X contains NaN or infinite values")
        return X, labels

    def _one_hot(self, labels):
        xp = self.backend.xp
        Y = xp.zeros((labels.shape[0], self.sizes[-1]), dtype=self.dtype)
        Y[xp.arange(labels.shape[0]), labels] = 1
        return Y

    def _read(self, device_value):
        """A 0-d device value as a Python number: a host synchronisation point."""
        return self.backend.to_host(device_value).item()

    # ---------------------------------------------------------- the math
    def feedforward(self, X):
        """Output activations a^L, shape (m, n_out), as a backend array."""
        X = self._inputs(X)
        activations = [X] + [self.backend.empty((X.shape[0], n), self.dtype) for n in self.sizes[1:]]
        return core.feedforward(self.backend, self.weights, self.biases, activations)

    def backprop(self, X, Y):
        """(nabla_b, nabla_w): the gradient of the mean per-example cost over
        the rows of X with one-hot targets Y, computed for the whole batch at once."""
        X = self._inputs(X)
        Y = self.backend.asarray(Y, self.dtype)
        if Y.shape != (X.shape[0], self.sizes[-1]):
            raise InvalidArgumentError(
                f"Y must have shape ({X.shape[0]}, {self.sizes[-1]}), got {tuple(Y.shape)}")
        return core.gradient(self.backend, self.cost, self.weights, self.biases, X, Y)

    def evaluate(self, data):
        """Number of rows of ``(X, labels)`` whose largest output is the label."""
        X, labels = self._dataset(data, "data")
        return self._read(core.count_correct(self.backend, self.weights, self.biases, X, labels))

    def total_cost(self, data):
        """Mean cost C over ``(X, labels)``."""
        X, labels = self._dataset(data, "data")
        return self._read(core.total_cost(self.backend, self.cost, self.weights, self.biases,
                                          X, self._one_hot(labels)))

    # ---------------------------------------------------------- training
    def sgd(self, training_data, epochs, mini_batch_size, eta, test_data=None,
            validation_data=None, method="batched", monitor_training_cost=False, callback=None):
        """Train by mini-batch stochastic gradient descent; return the history.

        Each epoch shuffles the training set with the network's host RNG (the
        same order for both methods and every backend), then takes SGD steps
        w -> w - (η/m) Σ_x ∇C_x over consecutive mini-batches, the last one
        possibly smaller. ``method="batched"`` runs the matrix core;
        ``"per_example"`` is Nielsen's loop, kept as the reference.

        Returns one dict per epoch: ``epoch``, ``seconds`` (training time),
        and for each data set given ``{name}_correct``, ``{name}_total``,
        ``{name}_accuracy`` (name: validation, test), plus ``train_cost`` if
        ``monitor_training_cost``. ``callback(record)`` is called after each epoch.
        """
        epochs = _check_positive_int(epochs, "epochs")
        run_epoch = self.epoch_runner(training_data, mini_batch_size, eta, method)
        backend = self.backend
        scored = [(name, self._dataset(data, f"{name}_data"))
                  for name, data in (("validation", validation_data), ("test", test_data))
                  if data is not None]

        history = []
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            run_epoch()
            record = {"epoch": epoch, "seconds": time.perf_counter() - started}
            for name, (X_eval, labels_eval) in scored:
                correct = self._read(core.count_correct(backend, self.weights, self.biases,
                                                        X_eval, labels_eval))
                total = X_eval.shape[0]
                record.update({f"{name}_correct": correct, f"{name}_total": total,
                               f"{name}_accuracy": correct / total})
            if monitor_training_cost:
                record["train_cost"] = self._read(core.total_cost(
                    backend, self.cost, self.weights, self.biases, *run_epoch.data))
            history.append(record)
            if callback is not None:
                callback(record)
        return history

    def epoch_runner(self, training_data, mini_batch_size, eta, method="batched"):
        """Validate the training set and move it to the device once; return a
        function that trains one epoch per call (shuffle, SGD steps,
        synchronise). ``sgd`` is a loop over it; benchmarks time it directly.
        The function's ``data`` attribute is the device pair (X, one-hot Y).
        """
        mini_batch_size = _check_positive_int(mini_batch_size, "mini_batch_size")
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 < eta < math.inf:
            raise InvalidArgumentError(f"eta must be a positive number, got {eta!r}")
        _check_choice(method, METHODS, "method")
        backend = self.backend
        X, labels = self._dataset(training_data, "training_data")
        n = X.shape[0]
        if mini_batch_size > n:
            raise InvalidArgumentError(
                f"mini_batch_size {mini_batch_size} is larger than the training set ({n} examples)")
        Y = self._one_hot(labels)
        if method == "batched":
            workspace = core.Workspace(backend, self.sizes, mini_batch_size, self.dtype)
            # The backend's native epoch, if it has one (loaded now, not in the first epoch).
            train_epoch = backend.compiled_epoch(self.cost.name) or functools.partial(
                core.train_epoch, backend, self.cost)

        def run_epoch():
            order = self.rng.permutation(n)
            if method == "batched":
                train_epoch(self.weights, self.biases, X, Y, backend.asarray(order),
                            mini_batch_size, eta, workspace)
            else:
                reference.train_epoch(backend, self.cost.name, self.weights, self.biases, X, Y,
                                      order, mini_batch_size, eta)
            backend.synchronize()

        run_epoch.data = (X, Y)
        return run_epoch

    # ------------------------------------------------------- persistence
    def metadata(self):
        return {"format": MODEL_FORMAT, "version": MODEL_VERSION, "sizes": self.sizes,
                "cost": self.cost.name, "dtype": self.dtype.name, "init": self.init}

    def save(self, path):
        """Write the network to ``path`` as ``.npz`` arrays plus JSON metadata
        (no pickle), atomically: an existing file is replaced only when the
        new one is complete."""
        arrays = {f"w{l}": self.backend.to_host(w) for l, w in enumerate(self.weights)}
        arrays.update({f"b{l}": self.backend.to_host(b) for l, b in enumerate(self.biases)})
        arrays["metadata"] = numpy.array(json.dumps(self.metadata()))
        with atomic_write(path) as handle:
            numpy.savez(handle, **arrays)

    @classmethod
    def load(cls, path, backend="auto"):
        """Read a network written by :meth:`save`, onto any backend."""
        try:
            with numpy.load(path, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except FileNotFoundError:
            raise ModelFileError(f"{path}: model file not found") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            # (numpy's own message here suggests allow_pickle, which we never want)
            raise ModelFileError(f"{path}: not a readable nn_gpu model file (.npz written "
                                 "by Network.save / nn-gpu train --save)") from None
        try:
            meta = json.loads(str(arrays["metadata"]))
            if meta.get("format") != MODEL_FORMAT:
                raise ValueError(f"format is {meta.get('format')!r}, expected {MODEL_FORMAT!r}")
            if meta.get("version") != MODEL_VERSION:
                raise ValueError(f"unsupported version {meta.get('version')!r}")
            net = cls(meta["sizes"], cost=meta["cost"], backend=backend, dtype=meta["dtype"],
                      init=meta.get("init", "normal"))
            for name, params in (("w", net.weights), ("b", net.biases)):
                for l, current in enumerate(params):
                    stored = arrays[f"{name}{l}"]
                    if stored.shape != tuple(current.shape):
                        raise ValueError(f"array {name}{l} has shape {stored.shape}, "
                                         f"expected {tuple(current.shape)}")
                    params[l] = net.backend.asarray(numpy.ascontiguousarray(stored), net.dtype)
        except KeyError as exc:
            raise ModelFileError(f"{path}: not an nn_gpu model file (missing {exc})") from None
        except (ValueError, TypeError, InvalidArgumentError) as exc:
            raise ModelFileError(f"{path}: invalid model file: {exc}") from None
        return net
