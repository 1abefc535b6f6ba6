"""MLPClassifier: Nielsen's network behind scikit-learn's estimator API.

Most tests run twice: on the module as imported (scikit-learn's base classes
and validation, where scikit-learn is installed) and on a copy loaded with
scikit-learn blocked (the NumPy-only fallback every install gets). The
scikit-learn estimator checks run where scikit-learn is installed.
"""

import importlib.util
import inspect
import pickle
import sys

import numpy as np
import pytest

from nn_gpu.errors import InvalidArgumentError
from nn_gpu.model import estimator as nn_estimator

try:
    from sklearn.utils.estimator_checks import parametrize_with_checks
except ImportError:
    parametrize_with_checks = None

DEFAULTS = {"hidden_layer_sizes": (30,), "cost": "cross_entropy", "activation": "sigmoid",
            "init": "scaled", "epochs": 10, "batch_size": 10, "eta": 0.5, "l2": 0.0,
            "momentum": 0.0, "dropout": 0.0, "backend": "numpy", "dtype": "float32",
            "random_state": None}


def load_without_sklearn(monkeypatch):
    """A fresh copy of nn_gpu.model.estimator that cannot import scikit-learn."""
    for name in [name for name in sys.modules if name.split(".")[0] == "sklearn"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    name = "nn_gpu.model._estimator_without_sklearn"
    spec = importlib.util.spec_from_file_location(name, nn_estimator.__file__)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # so that pickle finds the class
    spec.loader.exec_module(module)
    assert not module.HAVE_SKLEARN
    return module


@pytest.fixture(params=["with_sklearn", "without_sklearn"])
def api(request, monkeypatch):
    """The estimator module, with and without scikit-learn."""
    if request.param == "without_sklearn":
        return load_without_sklearn(monkeypatch)
    if not nn_estimator.HAVE_SKLEARN:
        pytest.skip("scikit-learn is not installed")
    return nn_estimator


@pytest.fixture(scope="module")
def digits(mnist):
    """3000 training and 1000 test images of the genuine MNIST."""
    (X, y), _, (X_test, y_test) = mnist
    return (X[:3000], y[:3000]), (X_test[:1000], y_test[:1000])


def blobs(n=90, n_features=4, seed=0):
    """Three well-separated, standardised Gaussian blobs."""
    rng = np.random.default_rng(seed)
    centres = 3 * rng.standard_normal((3, n_features))
    labels = np.arange(n) % 3
    X = centres[labels] + 0.5 * rng.standard_normal((n, n_features))
    return (X - X.mean(axis=0)) / X.std(axis=0), labels


# ------------------------------------------------------------ training
def test_fit_predict_score_on_mnist(api, digits):
    (X, y), (X_test, y_test) = digits
    clf = api.MLPClassifier(epochs=3, random_state=0)
    assert clf.fit(X, y) is clf
    assert clf.n_features_in_ == 784 and clf.n_iter_ == 3
    assert clf.classes_.tolist() == list(range(10))
    assert clf.network_.sizes == [784, 30, 10]
    predicted = clf.predict(X_test)
    assert predicted.shape == (1000,) and set(predicted) <= set(range(10))
    accuracy = clf.score(X_test, y_test)
    assert accuracy == pytest.approx(np.mean(predicted == y_test))
    assert accuracy > 0.85


def test_string_labels_round_trip(api, digits):
    (X, y), (X_test, _) = digits
    names = np.array([f"digit {d}" for d in range(10)])  # sorted as the digits are
    by_int = api.MLPClassifier(epochs=1, random_state=3).fit(X, y)
    by_name = api.MLPClassifier(epochs=1, random_state=3).fit(X, names[y].tolist())
    assert by_name.classes_.tolist() == names.tolist()
    np.testing.assert_array_equal(by_name.predict(X_test), names[by_int.predict(X_test)])


def test_unordered_labels_of_any_type(api):
    X, labels = blobs()
    for names in (np.array(["cat", "ant", "bee"]), np.array(["cat", "ant", "bee"], object),
                  np.array([7, -2, 30]), np.array([1.0, 3.0, 2.0])):
        y = names[labels]
        clf = api.MLPClassifier(hidden_layer_sizes=(8,), epochs=20, random_state=0).fit(X, y)
        assert clf.classes_.tolist() == sorted(names)
        assert clf.score(X, y) > 0.95


@pytest.mark.parametrize("cost", ["cross_entropy", "quadratic"])
def test_two_classes_get_one_output_neuron(api, digits, cost):
    """Nine or not, as in the seed notes: a single sigmoid output, a > 0.5 meaning "nine"."""
    (X, y), (X_test, y_test) = digits
    names = np.array(["other", "nine"])
    clf = api.MLPClassifier(epochs=3, cost=cost, eta=0.5 if cost == "cross_entropy" else 3.0,
                            random_state=0).fit(X, names[(y == 9).astype(int)])
    assert clf.network_.sizes == [784, 30, 1] and clf.classes_.tolist() == ["nine", "other"]
    a = np.asarray(clf.network_.feedforward(X_test), dtype=np.float64)[:, 0]
    proba = clf.predict_proba(X_test)
    np.testing.assert_array_equal(proba, np.column_stack([1 - a, a]))
    np.testing.assert_array_equal(clf.predict(X_test), np.where(a > 0.5, "other", "nine"))
    assert clf.score(X_test, names[(y_test == 9).astype(int)]) > 0.95


def test_two_classes_with_log_likelihood_keep_two_softmax_outputs(api):
    X, labels = blobs()
    clf = api.MLPClassifier(hidden_layer_sizes=(8,), cost="log_likelihood", epochs=5,
                            random_state=0).fit(X[labels < 2], labels[labels < 2])
    assert clf.network_.sizes == [4, 8, 2]
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0)


def test_partial_fit_on_two_classes(api):
    X, labels = blobs()
    X, y = X[labels < 2], np.where(labels[labels < 2] == 1, "b", "a")
    clf = api.MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    for _ in range(5):
        clf.partial_fit(X, y, classes=["a", "b"])
    assert clf.network_.sizes == [4, 8, 1] and clf.score(X, y) > 0.95


def test_partial_fit_continues_training(api, digits):
    (X, y), (X_test, y_test) = digits
    clf = api.MLPClassifier(random_state=0)
    scores = []
    for start in range(0, 3000, 500):
        clf.partial_fit(X[start:start + 500], y[start:start + 500],
                        classes=np.arange(10) if start == 0 else None)
        if start == 0:
            network = clf.network_
        assert clf.network_ is network  # the same network, trained further
        scores.append(clf.score(X_test, y_test))
    assert clf.n_iter_ == 6
    assert scores[0] < scores[2] < scores[-1]
    assert scores[-1] > scores[0] + 0.1 and scores[-1] > 0.8


def test_partial_fit_needs_classes_on_the_first_call(api):
    X, y = blobs()
    clf = api.MLPClassifier()
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    assert not hasattr(clf, "network_")
    with pytest.raises(ValueError, match=r"labels not in classes: \[2\]"):
        clf.partial_fit(X, y, classes=[0, 1])
    # Every class named up front, even those absent from the first chunk.
    clf.partial_fit(X[y < 2], y[y < 2], classes=[2, 0, 1])
    assert clf.classes_.tolist() == [0, 1, 2] and clf.network_.sizes[-1] == 3
    clf.partial_fit(X, y)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="differs from the classes of the first call"):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"labels not in classes: \[5\]"):
        clf.partial_fit(X, np.where(y == 2, 5, y))


def test_partial_fit_after_fit_continues_that_network(api):
    X, y = blobs()
    clf = api.MLPClassifier(epochs=2, random_state=0).fit(X, y)
    network = clf.network_
    clf.partial_fit(X, y)
    assert clf.network_ is network and clf.n_iter_ == 3
    # fit starts over: a new network, trained `epochs` epochs.
    clf.fit(X, y)
    assert clf.network_ is not network and clf.n_iter_ == 2


def test_batch_size_larger_than_the_data_is_clipped(api):
    X, y = blobs(n=12)
    clf = api.MLPClassifier(batch_size=100, epochs=2).fit(X, y)
    assert clf.network_.last_training["mini_batch_size"] == 12


# ------------------------------------------------------- probabilities
@pytest.mark.parametrize("cost", ["cross_entropy", "quadratic", "log_likelihood"])
def test_predict_proba(api, digits, cost):
    (X, y), (X_test, _) = digits
    clf = api.MLPClassifier(cost=cost, epochs=1, random_state=1).fit(X[:1000], y[:1000])
    proba = clf.predict_proba(X_test)
    assert isinstance(proba, np.ndarray) and proba.shape == (1000, 10)
    assert np.all(proba >= 0) and np.all(proba <= 1)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X_test))
    outputs = clf.network_.backend.to_host(clf.network_.feedforward(X_test)).astype(np.float64)
    if cost == "log_likelihood":  # softmax: the outputs themselves
        np.testing.assert_allclose(proba, outputs, rtol=1e-6)
    else:  # sigmoid outputs, normalised row by row
        np.testing.assert_allclose(proba, outputs / outputs.sum(axis=1, keepdims=True))


@pytest.mark.slow
def test_predict_proba_of_a_saturated_row_is_uniform(api):
    X, y = blobs()
    clf = api.MLPClassifier(hidden_layer_sizes=(), epochs=1, random_state=0).fit(X, y)
    clf.network_.biases[-1][:] = -1e4  # every sigmoid output underflows to 0
    np.testing.assert_array_equal(clf.predict_proba(X[:2]), np.full((2, 3), 1 / 3))


# -------------------------------------------------------------- params
def test_get_params_and_set_params(api):
    clf = api.MLPClassifier()
    assert clf.get_params() == DEFAULTS
    assert list(inspect.signature(api.MLPClassifier).parameters) == list(DEFAULTS)
    assert clf.set_params(epochs=3, hidden_layer_sizes=(5, 4), eta=0.1) is clf
    assert (clf.epochs, clf.hidden_layer_sizes, clf.eta) == (3, (5, 4), 0.1)
    assert clf.get_params() == {**DEFAULTS, "epochs": 3, "hidden_layer_sizes": (5, 4),
                                "eta": 0.1}
    with pytest.raises(ValueError, match="epoch"):
        clf.set_params(epoch=3)
    assert "epochs=3" in repr(clf)
    # The constructor only stores: bad values are reported by fit.
    bad = api.MLPClassifier(epochs=0, cost="hinge", hidden_layer_sizes="x")
    assert bad.get_params()["cost"] == "hinge"
    copy = type(clf)(**clf.get_params())
    assert copy.get_params() == clf.get_params()


def test_clone_round_trip():
    sklearn_base = pytest.importorskip("sklearn.base")
    X, y = blobs()
    clf = nn_estimator.MLPClassifier(hidden_layer_sizes=(7,), epochs=2, random_state=5).fit(X, y)
    copy = sklearn_base.clone(clf)
    assert copy.get_params() == clf.get_params()
    assert not hasattr(copy, "network_") and not hasattr(copy, "classes_")
    np.testing.assert_array_equal(copy.fit(X, y).predict_proba(X), clf.predict_proba(X))


def test_in_a_pipeline_with_a_scaler():
    pytest.importorskip("sklearn")
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = blobs(n=150)
    X = 1000 + 50 * X  # far from [0, 1]: the scaler brings it back
    pipeline = make_pipeline(StandardScaler(),
                             nn_estimator.MLPClassifier(hidden_layer_sizes=(8,), epochs=10,
                                                     random_state=0))
    assert cross_val_score(pipeline, X, y, cv=3).min() > 0.9


# ------------------------------------------------------ reproducibility
@pytest.mark.slow
@pytest.mark.parametrize("settings", [{}, {"dropout": 0.2, "momentum": 0.5}])
def test_reproducible_with_random_state(api, digits, settings):
    (X, y), (X_test, _) = digits
    X, y = X[:1000], y[:1000]

    def proba(random_state, clf=None):
        clf = clf or api.MLPClassifier(epochs=2, random_state=random_state, **settings)
        return clf.fit(X, y).predict_proba(X_test)

    first = proba(7)
    np.testing.assert_array_equal(proba(7), first)
    clf = api.MLPClassifier(epochs=2, random_state=7, **settings)
    np.testing.assert_array_equal(proba(7, clf), first)
    np.testing.assert_array_equal(proba(7, clf), first)  # refitting starts over
    assert not np.array_equal(proba(8), first)
    np.testing.assert_array_equal(proba(np.random.RandomState(1)),
                                  proba(np.random.RandomState(1)))


def test_pickle_round_trip(api):
    X, y = blobs()
    clf = api.MLPClassifier(hidden_layer_sizes=(6,), epochs=2, random_state=0).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    assert copy.get_params() == clf.get_params()
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    # The shuffle RNG travels too: further training stays identical.
    np.testing.assert_array_equal(copy.partial_fit(X, y).predict_proba(X),
                                  clf.partial_fit(X, y).predict_proba(X))


# --------------------------------------------------------------- errors
BAD_DATA = {
    "1-D X": (np.zeros(10), np.zeros(10, int), "2D|2-D"),
    "3-D X": (np.zeros((10, 2, 2)), np.zeros(10, int), "dim|2-D"),
    "empty X": (np.zeros((0, 3)), np.zeros(0, int), "0 sample|empty"),
    "NaN in X": (np.where(np.eye(10, 3), np.nan, 1.0), np.arange(10) % 2, "NaN"),
    "inf in X": (np.where(np.eye(10, 3), np.inf, 1.0), np.arange(10) % 2, "[Ii]nfinit"),
    "strings in X": (np.full((10, 3), "a"), np.arange(10) % 2, "numeric|string|float"),
    "y too short": (np.ones((10, 3)), np.arange(9) % 2, "inconsistent|rows but y has"),
    "2-D y": (np.ones((10, 3)), np.zeros((10, 2), int), "1d|1-D"),
    "NaN in y": (np.ones((10, 3)), np.where(np.arange(10) == 3, np.nan, 1.0), "NaN|Unknown"),
    "continuous y": (np.ones((10, 3)), np.linspace(0, 1, 10), "Unknown label type"),
    "one class": (np.ones((10, 3)), np.ones(10, int), "at least 2 classes, got 1 class"),
    "y is None": (np.ones((10, 3)), None, "requires y"),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_clear_errors_for_bad_data(api, case):
    X, y, message = BAD_DATA[case]
    clf = api.MLPClassifier(epochs=1)
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y)
    if y is not None and case != "one class":
        with pytest.raises(ValueError, match=message):
            api.MLPClassifier().partial_fit(X, y, classes=[0, 1])


def test_sparse_input_is_refused(api):
    from scipy import sparse

    with pytest.raises(TypeError, match="[Ss]parse"):
        api.MLPClassifier().fit(sparse.csr_matrix(np.eye(4)), [0, 1, 0, 1])


def test_predict_needs_a_fitted_estimator_and_the_same_features(api):
    X, y = blobs()
    clf = api.MLPClassifier(epochs=1)
    for method in (clf.predict, clf.predict_proba):
        with pytest.raises(api.NotFittedError, match="not fitted"):
            method(X)
    clf.fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="2D|2-D"):
        clf.predict_proba(X[0])
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.full((1, 4), np.nan))
    with pytest.raises(ValueError, match="X has 3 features"):
        clf.partial_fit(X[:, :3], y)


@pytest.mark.parametrize("params, message", [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"epochs": 2.5}, "epochs must be a positive integer"),
    ({"batch_size": True}, "batch_size must be a positive integer"),
    ({"hidden_layer_sizes": (10, 0)}, "hidden_layer_sizes must be a tuple of positive"),
    ({"hidden_layer_sizes": "30"}, "hidden_layer_sizes must be a tuple of positive"),
    ({"eta": 0}, r"eta must be a number in \(0, inf\)"),
    ({"l2": float("nan")}, r"l2 \(λ\) must be a number in \[0, inf\)"),
    ({"momentum": 1.5}, r"momentum must be a number in \[0, 1\)"),
    ({"dropout": -0.1}, r"dropout must be a number in \[0, 1\)"),
    ({"cost": "hinge"}, "unknown cost 'hinge'"),
    ({"activation": "gelu"}, "unknown activation 'gelu'"),
    ({"init": "zeros"}, "unknown init 'zeros'"),
    ({"dtype": "float16"}, "unknown dtype"),
    ({"random_state": "seed"}, "random_state must be"),
])
def test_bad_hyper_parameters_are_reported_by_fit(api, params, message):
    X, y = blobs(n=12)
    clf = api.MLPClassifier(**params)  # stored as given
    with pytest.raises(InvalidArgumentError, match=message):
        clf.fit(X, y)


@pytest.mark.gpu
def test_cupy_backend_returns_host_arrays():
    X, y = blobs()
    clf = nn_estimator.MLPClassifier(backend="cupy", epochs=2, random_state=0).fit(X, y)
    reference = nn_estimator.MLPClassifier(epochs=2, random_state=0, dtype="float64",
                                        backend="numpy").fit(X, y)
    proba = clf.predict_proba(X)
    assert type(proba) is np.ndarray and type(clf.predict(X)) is np.ndarray
    assert np.mean(clf.predict(X) == reference.predict(X)) > 0.95
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), proba)


# ------------------------------------------------ scikit-learn's checks
#: Checks that cannot apply to this estimator, {name: one-line reason}. None
#: today: every check of scikit-learn's suite passes.
EXPECTED_FAILED_CHECKS = {}

#: Small and quick, yet well over the 0.83 training accuracy the checks ask for
#: (and, for scikit-learn < 1.6, predicting every class of a 20-sample problem).
CHECKED_ESTIMATORS = [
    nn_estimator.MLPClassifier(hidden_layer_sizes=(10,), epochs=10),
    nn_estimator.MLPClassifier(hidden_layer_sizes=(10,), cost="log_likelihood", activation="relu",
                               momentum=0.5, dropout=0.1, eta=0.1, epochs=20),
]

if parametrize_with_checks is not None:
    _options = inspect.signature(parametrize_with_checks).parameters
    _kwargs = {}
    if "expected_failed_checks" in _options:  # scikit-learn >= 1.6
        _kwargs["expected_failed_checks"] = lambda _: EXPECTED_FAILED_CHECKS
    if "xfail_strict" in _options:  # >= 1.8: a listed check that passes fails the run
        _kwargs["xfail_strict"] = True

    @pytest.mark.slow
    @parametrize_with_checks(CHECKED_ESTIMATORS, **_kwargs)
    def test_sklearn_estimator_checks(estimator, check):
        check(estimator)
else:
    @pytest.mark.slow
    def test_sklearn_estimator_checks():
        pytest.importorskip("sklearn")
