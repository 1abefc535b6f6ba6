"""Nielsen's network behind scikit-learn's estimator API.

:class:`MLPClassifier` wraps :class:`nn_gpu.model.network.Network` and its
mini-batch SGD so that it can be used like any scikit-learn classifier
(``fit``/``predict``/``predict_proba``/``score``, ``partial_fit``,
``get_params``/``set_params``, pipelines, grid search, cross-validation)::

    >>> from nn_gpu.model.estimator import MLPClassifier
    >>> clf = MLPClassifier(hidden_layer_sizes=(30,), epochs=10, eta=0.5, random_state=1)
    >>> clf.fit(X_train, y_train).score(X_test, y_test)

The name is scikit-learn's, the model is the book's: sigmoid (or tanh/relu)
hidden layers, a sigmoid output layer with the cross-entropy or quadratic
cost (or softmax with log-likelihood), trained by plain mini-batch SGD with
Nielsen's L2, momentum and dropout. It is *not* ``sklearn.neural_network
.MLPClassifier`` (no Adam, no early stopping, different parameters).

scikit-learn is optional. Where it is installed the class derives from
``sklearn.base.ClassifierMixin`` and ``BaseEstimator`` and validates input
with ``sklearn.utils.validation``, so it passes scikit-learn's estimator
checks; without it the class provides the same ``get_params``,
``set_params`` and ``score`` itself and checks inputs with NumPy.

Inputs are not rescaled. Nielsen's networks expect features of order 1 (MNIST
pixels in [0, 1]): scale other data first, e.g. with
``sklearn.preprocessing.StandardScaler`` or ``MinMaxScaler`` in a pipeline,
or sigmoid units saturate and learning stalls.
"""

import inspect
import io
import numbers
import warnings

import numpy as np

from ..errors import InvalidArgumentError, NNGpuError
from ..options import TrainingSettings, positive_int
from .metrics import probabilities
from .network import Network

try:  # scikit-learn is optional: only its API, never needed at run time.
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted
    try:
        from sklearn.utils.validation import validate_data as _sk_validate_data  # >= 1.6
    except ImportError:  # older releases: the estimator's own _validate_data method
        _sk_validate_data = None
    HAVE_SKLEARN = True
except ImportError:
    HAVE_SKLEARN = False

    class NotFittedError(NNGpuError, ValueError, AttributeError):
        """The estimator is used before ``fit`` (as scikit-learn's NotFittedError)."""

__all__ = ["MLPClassifier", "NotFittedError", "HAVE_SKLEARN"]

# X is handed to the network as float32 or float64 (it casts to its own dtype).
_FLOAT_DTYPES = (np.float64, np.float32)


class _EstimatorBase:
    """``get_params``/``set_params``/``score`` where scikit-learn is absent:
    the parameters are the constructor's arguments, stored under their names."""

    @classmethod
    def _get_param_names(cls):
        signature = inspect.signature(cls.__init__)
        return sorted(name for name, p in signature.parameters.items()
                      if name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep=True):
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise InvalidArgumentError(
                    f"invalid parameter {name!r} for {type(self).__name__}; "
                    f"valid parameters: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {name: p.default for name, p in
                    inspect.signature(type(self).__init__).parameters.items()}
        changed = [f"{name}={value!r}" for name, value in self.get_params().items()
                   if not _is_default(value, defaults[name])]
        return f"{type(self).__name__}({', '.join(changed)})"

    def score(self, X, y):
        """Mean accuracy of ``predict(X)`` against ``y``."""
        y = _column_or_1d(y)
        predicted = self.predict(X)
        if len(y) != len(predicted):
            raise InvalidArgumentError(f"y has {len(y)} labels but X has {len(predicted)} rows")
        return float(np.mean(predicted == y))


_BASES = (ClassifierMixin, BaseEstimator) if HAVE_SKLEARN else (_EstimatorBase,)


class MLPClassifier(*_BASES):
    """Nielsen's feed-forward network as a scikit-learn classifier.

    Builds ``Network([n_features, *hidden_layer_sizes, n_classes])`` in
    ``fit`` and trains it with mini-batch SGD (:meth:`Network.sgd`). Labels
    may be any sortable values (ints, strings); they are kept in ``classes_``
    and encoded as output neurons 0..n_classes-1 in that order. A problem
    with two classes gets a single sigmoid output neuron instead (the seed
    notes' "is it a nine?", and scikit-learn's own MLPClassifier): a > 0.5
    means ``classes_[1]``; only the log-likelihood cost, whose softmax needs
    two outputs, keeps two. Features are used as given: scale them to order
    1 first (see the module docstring). ``predict_proba`` gives the softmax
    outputs, for one output neuron (1 - a, a), or else the sigmoid outputs'
    row a^L normalised to sum to 1.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (30,)
        Widths of the hidden layers; ``()`` gives a single-layer network.
    cost : {"cross_entropy", "quadratic", "log_likelihood"}, default "cross_entropy"
        The first two use sigmoid output neurons, ``"log_likelihood"`` a
        softmax output layer.
    activation : {"sigmoid", "tanh", "relu"}, default "sigmoid"
        The hidden layers' neurons.
    init : {"scaled", "normal"}, default "scaled"
        Initial weights N(0, 1/n_in) (``"scaled"``) or N(0, 1) (``"normal"``).
    epochs : int, default 10
        Epochs of SGD per ``fit`` (``partial_fit`` trains one).
    batch_size : int, default 10
        Mini-batch size; clipped to the number of samples when larger.
    eta : float, default 0.5
        The learning rate η.
    l2 : float, default 0.0
        Nielsen's λ: the cost gets (λ/2n)Σw² with n the number of samples
        passed to that ``fit``/``partial_fit`` call.
    momentum : float, default 0.0
        Momentum coefficient μ in [0, 1); the velocity restarts at 0 on every
        ``fit``/``partial_fit`` call.
    dropout : float, default 0.0
        Probability of dropping each hidden neuron while training.
    backend : str, default "numpy"
        ``"numpy"``, ``"cupy"`` or ``"auto"`` (a name, so that the estimator
        can be cloned and pickled; an unpickled model is rebuilt on it).
    dtype : {"float32", "float64"}, default "float32"
        The network's floats; ``predict_proba`` returns float64 either way.
    random_state : int, numpy Generator or RandomState, or None
        Seeds the initial weights, the shuffles and the dropout masks; an int
        makes ``fit`` reproducible. None: different on every ``fit``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The sorted class labels; output neuron j stands for ``classes_[j]``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    network_ : nn_gpu.model.network.Network
        The trained network (``network_.weights``, ``network_.biases``); one
        output neuron for two classes unless the cost is log-likelihood.
    n_iter_ : int
        Epochs this network has been trained for (``fit`` plus ``partial_fit``).
    """

    def __init__(self, hidden_layer_sizes=(30,), *, cost="cross_entropy", activation="sigmoid",
                 init="scaled", epochs=10, batch_size=10, eta=0.5, l2=0.0, momentum=0.0,
                 dropout=0.0, backend="numpy", dtype="float32", random_state=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.cost = cost
        self.activation = activation
        self.init = init
        self.epochs = epochs
        self.batch_size = batch_size
        self.eta = eta
        self.l2 = l2
        self.momentum = momentum
        self.dropout = dropout
        self.backend = backend
        self.dtype = dtype
        self.random_state = random_state

    # ------------------------------------------------------------ training
    def fit(self, X, y):
        """Train a new network on ``(X, y)`` for ``epochs`` epochs; return self."""
        X, y = self._validate_X_y(X, y, reset=True)
        classes, codes = np.unique(y, return_inverse=True)
        _check_two_classes(classes)
        net = self._new_network(X.shape[1], len(classes))
        self._train(net, X, codes.reshape(-1), positive_int(self.epochs, "epochs"))
        self.network_, self.classes_ = net, classes
        self.n_iter_ = positive_int(self.epochs, "epochs")
        return self

    def partial_fit(self, X, y, classes=None):
        """Train one epoch on ``(X, y)``, continuing the current network.

        The first call (before any ``fit``) must pass ``classes``, every label
        that will ever appear, as in ``SGDClassifier.partial_fit``; it builds
        the network. Later calls may omit it. The training parameters (eta,
        batch_size, l2, momentum, dropout) are read on every call; the
        architecture ones only when the network is built.
        """
        first_call = not self.__sklearn_is_fitted__()
        if first_call and classes is None:
            raise InvalidArgumentError(
                "classes must be passed on the first call to partial_fit: every label that "
                "can occur, e.g. classes=numpy.unique(y_all)")
        X, y = self._validate_X_y(X, y, reset=first_call)
        if classes is not None:
            classes = np.unique(_column_or_1d(classes))
            if first_call:
                _check_two_classes(classes)
            elif not np.array_equal(classes, self.classes_):
                raise InvalidArgumentError(
                    f"classes={classes.tolist()} differs from the classes of the first call "
                    f"(classes_={self.classes_.tolist()})")
        known = classes if first_call else self.classes_
        codes = _encode(y, known)
        if first_call:
            self.network_ = self._new_network(X.shape[1], len(known))
            self.classes_, self.n_iter_ = known, 0
        self._train(self.network_, X, codes, 1)
        self.n_iter_ += 1
        return self

    def _new_network(self, n_features, n_classes):
        hidden = _hidden_sizes(self.hidden_layer_sizes)
        softmax = self.cost == "log_likelihood"
        n_out = 1 if n_classes == 2 and not softmax else n_classes
        return Network([n_features, *hidden, n_out], cost=self.cost, backend=self.backend,
                       dtype=self.dtype, seed=_seed(self.random_state), init=self.init,
                       activation=self.activation)

    def _train(self, net, X, codes, epochs):
        net.sgd((X, codes), settings=TrainingSettings(
            epochs=epochs, mini_batch_size=min(positive_int(self.batch_size, "batch_size"),
                                               len(codes)),
            eta=self.eta, l2=self.l2, momentum=self.momentum, dropout=self.dropout))

    # ---------------------------------------------------------- prediction
    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), rows summing to 1.

        With ``cost="log_likelihood"`` these are the softmax outputs. With a
        single sigmoid output neuron (two classes) a is the probability of
        ``classes_[1]``: the row is (1 - a, a). With several sigmoid outputs
        each a_j lies in (0, 1) but the outputs are independent, so the row
        a^L is normalised to sum to 1 (a row that underflows to all zeros
        becomes uniform). Either way the column order is ``classes_`` and the
        argmax is ``predict``'s.
        """
        self._check_fitted()
        X = self._validate_X(X)
        return probabilities(self.network_, X)

    def predict(self, X):
        """The label of the most active output neuron for each row of X
        (with one output neuron: ``classes_[1]`` where a > 0.5)."""
        proba = self.predict_proba(X)  # checks fitted before classes_ is read
        return self.classes_[np.argmax(proba, axis=1)]

    # score: ClassifierMixin's (accuracy) where scikit-learn is installed,
    # else _EstimatorBase's.

    # ---------------------------------------------------------- validation
    def __sklearn_is_fitted__(self):
        return hasattr(self, "network_")

    def _check_fitted(self):
        if HAVE_SKLEARN:
            check_is_fitted(self)
        elif not self.__sklearn_is_fitted__():
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet; "
                                 "call fit or partial_fit first")

    def _validate_X_y(self, X, y, reset):
        if HAVE_SKLEARN:
            X, y = self._sk_validate(X, y, reset=reset)
            check_classification_targets(y)
            return X, y
        if y is None:
            raise InvalidArgumentError(f"{type(self).__name__} requires y to be passed, "
                                       "but the target y is None")
        X = self._numpy_check_X(X, reset)
        y = _column_or_1d(y)
        if len(y) != X.shape[0]:
            raise InvalidArgumentError(f"X has {X.shape[0]} rows but y has {len(y)} labels")
        if y.dtype.kind == "c" or (y.dtype.kind == "f" and not (
                np.all(np.isfinite(y)) and np.all(y == np.round(y)))):
            raise InvalidArgumentError(
                "Unknown label type: y must hold class labels (integers, strings), "
                "not continuous, infinite or NaN values")
        return X, y

    def _validate_X(self, X):
        """X for prediction: the fit's number of features."""
        if HAVE_SKLEARN:
            return self._sk_validate(X, reset=False)
        return self._numpy_check_X(X, reset=False)

    def _sk_validate(self, X, y="no_validation", reset=True):
        if _sk_validate_data is not None:
            return _sk_validate_data(self, X, y, reset=reset, dtype=_FLOAT_DTYPES)
        return self._validate_data(X, y, reset=reset, dtype=_FLOAT_DTYPES)

    def _numpy_check_X(self, X, reset):
        """The checks of sklearn's check_array that matter here, in NumPy."""
        if hasattr(X, "toarray"):
            raise TypeError("sparse input is not supported: pass a dense array (X.toarray())")
        X = np.asarray(X)
        if X.dtype.kind not in "fiub":
            if X.dtype.kind == "c":
                raise InvalidArgumentError("complex data is not supported")
            try:
                X = X.astype(np.float64)
            except (TypeError, ValueError):
                raise InvalidArgumentError(
                    f"X must be numeric, got an array of dtype {X.dtype}") from None
        if X.dtype not in _FLOAT_DTYPES:
            X = X.astype(np.float64)
        if X.ndim != 2:
            raise InvalidArgumentError(
                f"X must be a 2-D array (n_samples, n_features), got shape {X.shape}; "
                "reshape one feature with X.reshape(-1, 1), one sample with X.reshape(1, -1)")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise InvalidArgumentError(f"X is empty: shape {X.shape}")
        if not np.all(np.isfinite(X)):
            raise InvalidArgumentError("X contains NaN or infinite values")
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise InvalidArgumentError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input")
        return X

    # ------------------------------------------------------------- pickling
    # A Network holds its backend (a module reference), which cannot be
    # pickled: store the network as host arrays and rebuild it on load, on the
    # estimator's ``backend``.
    def __getstate__(self):
        parent = getattr(super(), "__getstate__", None)
        state = dict(parent() if parent is not None else self.__dict__)
        if "network_" in state:
            state["network_"] = _network_state(state["network_"])
        return state

    def __setstate__(self, state):
        state = dict(state)
        network = state.pop("network_", None)
        parent = getattr(super(), "__setstate__", None)
        if parent is not None:
            parent(state)
        else:
            self.__dict__.update(state)
        if network is not None:
            self.network_ = _restore_network(network, self.backend)


# -------------------------------------------------------------- helpers
def _is_default(value, default):
    try:
        return bool(value is default or value == default)
    except (TypeError, ValueError):  # e.g. an array, compared element-wise
        return False


def _column_or_1d(y):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected; "
                      "using y.ravel()", stacklevel=3)
        y = y.ravel()
    if y.ndim != 1:
        raise InvalidArgumentError(f"y must be 1-D (one label per sample), got shape {y.shape}")
    return y


def _check_two_classes(classes):
    if len(classes) < 2:
        raise InvalidArgumentError(
            f"MLPClassifier needs at least 2 classes, got {len(classes)} class "
            f"({classes.tolist()})")


def _encode(y, classes):
    """Labels -> output-neuron indices into the sorted ``classes``."""
    unknown = ~np.isin(y, classes)
    if unknown.any():
        raise InvalidArgumentError(
            f"y contains labels not in classes: {np.unique(y[unknown]).tolist()[:10]} "
            f"(classes: {classes.tolist()})")
    return np.searchsorted(classes, y)


def _hidden_sizes(value):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    try:
        sizes = list(value)
    except TypeError:
        sizes = None
    if sizes is None or any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1
                            for n in sizes):
        raise InvalidArgumentError("hidden_layer_sizes must be a tuple of positive integers, "
                                   f"got {value!r}")
    return [int(n) for n in sizes]


def _seed(random_state):
    """random_state -> a Network seed, in scikit-learn's conventions."""
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63))
    raise InvalidArgumentError("random_state must be None, an int, a numpy Generator or "
                               f"RandomState, got {random_state!r}")


def _network_state(net):
    """The network as a model file's bytes, plus what a file does not keep:
    the seed and the state of the shuffling generator."""
    buffer = io.BytesIO()
    net.write(buffer)
    return {"model": buffer.getvalue(), "seed": net.seed, "rng": net.rng.bit_generator.state}


def _restore_network(state, backend):
    net = Network.load(io.BytesIO(state["model"]), backend=backend)
    net.seed = state["seed"]
    net.rng.bit_generator.state = state["rng"]
    return net
