"""Shared fixtures: backends to run on, and the real MNIST data.

GPU tests carry the ``gpu`` marker and are skipped, with CuPy's reason,
wherever no CUDA device is usable (CI has none).
"""

import contextlib
import io
import os
import urllib.request
import uuid
import warnings
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import numpy
import pytest

from nn_gpu.backends import cupy_status, get_backend

REPO_ROOT = Path(__file__).resolve().parents[1]


def mnist_dir():
    """The one place tests find MNIST: $NN_GPU_DATA (CI sets it), else
    ../shared/data/mnist."""
    return Path(os.environ.get("NN_GPU_DATA") or REPO_ROOT.parent / "shared" / "data" / "mnist")


def have_mnist():
    """Whether :func:`mnist_dir` holds the four MNIST files."""
    from nn_gpu.data.mnist import FILES

    return all((mnist_dir() / name).is_file() for name in FILES.values())


#: Skip (saying where MNIST was looked for) a test or module that needs the files.
needs_mnist = pytest.mark.skipif(
    not have_mnist(),
    reason=f"MNIST not found in {mnist_dir()} (set NN_GPU_DATA to a directory with the four files)")


def pytest_collection_modifyitems(config, items):
    usable, reason = cupy_status()
    if usable:
        return
    skip = pytest.mark.skip(reason=f"no usable GPU: {reason}")
    for item in items:
        if item.get_closest_marker("gpu"):  # not `in item.keywords`: a folder named gpu matches
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    """The figures the ``cudacompile`` tests recorded (registers, shared memory
    and spills of each kernel on each card), as one section of the run's log."""
    lines = {}
    for kind in ("passed", "failed"):
        for report in terminalreporter.stats.get(kind, []):
            for name, value in getattr(report, "user_properties", ()):
                if name == "cuda_compile":
                    lines.setdefault(value, None)
    if lines:
        terminalreporter.section("CUDA compile report")
        for line in lines:
            terminalreporter.write_line(line)


# ------------------------------------------------------------ the command line
class Ran(NamedTuple):
    """What one ``nn-gpu`` command did: its exit status and everything it printed."""

    status: int
    out: str
    err: str


class _Stream(io.StringIO):
    """Captured output that says it is a terminal when asked to be one."""

    def __init__(self, terminal):
        super().__init__()
        self.terminal = terminal

    def isatty(self):
        return self.terminal


def run(*argv, terminal=False):
    """``nn-gpu ARGV`` in this process (each word through str()): its status,
    stdout and stderr. stderr claims to be a terminal where ``terminal`` is
    true. A RuntimeWarning or UserWarning raised while it runs fails the test:
    what a user is told is the command's own output, nothing beside it."""
    from nn_gpu.cli import main

    out, err = _Stream(False), _Stream(terminal)
    with warnings.catch_warnings(record=True) as caught, \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        warnings.simplefilter("always")
        status = main([str(word) for word in argv])
    shown = [str(w.message) for w in caught
             if issubclass(w.category, (RuntimeWarning, UserWarning))]
    assert not shown, shown
    return Ran(status, out.getvalue(), err.getvalue())


def one_line(text, longest=400):
    """A message meant for a user: one line, no traceback, shorter than
    ``longest`` characters; returned as it is."""
    text = str(text)
    assert "\n" not in text and "Traceback" not in text and len(text) < longest, text
    return text


def one_error(err, status, expected_status=1):
    """The one error line (newline stripped) of a command that failed with
    ``expected_status``: 1 for files and data, 2 for usage."""
    assert status == expected_status, err
    assert err.endswith("\n") and err.startswith("nn-gpu"), err
    return one_line(err[:-1], longest=600)


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request):
    """Each real backend in turn (CuPy only where a device is usable)."""
    return get_backend(request.param)


@pytest.fixture(scope="session", autouse=True)
def genuine_mnist_decompressed_once():
    """The suite's in-process commands load the genuine MNIST a hundred times
    or more, from the same four unchanged files: their decompressed arrays
    (read-only, so safely shared) are kept for the session, and each load
    still builds its own Datasets. Files anywhere else, a file that changed,
    or a test that replaced one of the readers go through the readers."""
    from nn_gpu.data import mnist as module

    original = module._load_pair
    readers = (module.read_input, module._read_idx, module.read_idx_images,
               module.read_idx_labels)
    genuine = mnist_dir().resolve() if have_mnist() else None
    kept = {}

    def load_pair(directory, images_key, labels_key):
        if (genuine is None or Path(directory).resolve() != genuine
                or (module.read_input, module._read_idx, module.read_idx_images,
                    module.read_idx_labels) != readers):
            return original(directory, images_key, labels_key)
        files = [Path(directory) / module.FILES[key] for key in (images_key, labels_key)]
        key = tuple((str(path), found.st_ino, found.st_size, found.st_mtime_ns)
                    for path in files for found in [path.stat()])
        if key not in kept:
            kept[key] = original(directory, images_key, labels_key)
        return kept[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "_load_pair", load_pair)
        yield


@pytest.fixture(scope="session")
def mnist():
    """(training, validation, test) of the genuine MNIST, loaded once."""
    from nn_gpu.data.mnist import load_mnist

    path = mnist_dir()
    if not path.is_dir():
        pytest.skip(f"MNIST not found at {path}: set NN_GPU_DATA")
    return load_mnist(path)


@pytest.fixture(scope="session")
def mnist_slice(mnist):
    """A small deterministic slice of training and test data for quick runs."""
    (X, y), _, (X_test, y_test) = mnist
    return (X[:1000], y[:1000]), (X_test[:500], y_test[:500])


@pytest.fixture(scope="session")
def small_mnist(mnist, tmp_path_factory):
    """An MNIST directory small enough for dozens of command runs: 300
    training images then the 10,000 validation ones (as the real file orders
    them), 200 test images."""
    import gzip
    import struct

    from nn_gpu.data.mnist import FILES, IMAGES_MAGIC, LABELS_MAGIC

    (X, y), (X_val, y_val), (X_test, y_test) = mnist
    directory = tmp_path_factory.mktemp("mnist")
    for key, images, labels in (("train", numpy.concatenate([X[:300], X_val]),
                                 numpy.concatenate([y[:300], y_val])),
                                ("test", X_test[:200], y_test[:200])):
        pixels = numpy.rint(images * 255).astype(numpy.uint8).tobytes()
        for kind, magic, dims, payload in (
                ("images", IMAGES_MAGIC, (len(labels), 28, 28), pixels),
                ("labels", LABELS_MAGIC, (len(labels),), labels.astype(numpy.uint8))):
            (directory / FILES[f"{key}_{kind}"]).write_bytes(gzip.compress(
                struct.pack(f">I{len(dims)}I", magic, *dims) + bytes(payload), 1))
    return directory


@pytest.fixture
def small_data(monkeypatch, small_mnist):
    """Commands find :func:`small_mnist` through $NN_GPU_DATA."""
    monkeypatch.setenv("NN_GPU_DATA", str(small_mnist))
    return small_mnist


def random_problem(rng, sizes, m):
    """Random inputs in [0, 1), integer labels and their one-hot targets."""
    X = rng.random((m, sizes[0]))
    labels = rng.integers(0, sizes[-1], m)
    Y = numpy.eye(sizes[-1])[labels]
    return X, labels, Y


def assert_backprop_matches_finite_differences(net, X, labels, Y, rtol, atol, h=1e-6):
    """Every entry of net.backprop(X, Y) against the central difference
    (C(p + h) - C(p - h)) / 2h of the mean cost, parameter by parameter."""
    backend = net.backend
    nabla_b, nabla_w = net.backprop(X, Y)
    for params, grads in ((net.weights, nabla_w), (net.biases, nabla_b)):
        for param, grad in zip(params, grads):
            grad = backend.to_host(grad)
            numeric = numpy.empty(grad.shape)
            for index in numpy.ndindex(grad.shape):
                original = float(param[index])
                param[index] = original + h
                up = net.total_cost((X, labels))
                param[index] = original - h
                down = net.total_cost((X, labels))
                param[index] = original
                numeric[index] = (up - down) / (2 * h)
            numpy.testing.assert_allclose(grad, numeric, rtol=rtol, atol=atol)


# PostgreSQL, for the sweep tests: workers share one Optuna study through it,
# as users share one among machines. scripts/postgres_for_tests.sh starts a
# throwaway server and prints its URL for $NN_GPU_TEST_POSTGRES; CI sets
# NN_GPU_REQUIRE_POSTGRES=1 too, so that these tests fail there, never skip.

def _libpq_url(url):
    """The URL libpq (psycopg) reads: SQLAlchemy's postgresql+psycopg:// less the driver."""
    parts = urlsplit(url)
    return parts._replace(scheme=parts.scheme.split("+")[0]).geturl()


def _database_url(url, name):
    """url with its database replaced by name."""
    return urlsplit(url)._replace(path="/" + name).geturl()


def _postgres_unavailable(message):
    if os.environ.get("NN_GPU_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"NN_GPU_REQUIRE_POSTGRES=1, but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url():
    """The URL of a reachable PostgreSQL database, from $NN_GPU_TEST_POSTGRES."""
    url = os.environ.get("NN_GPU_TEST_POSTGRES")
    if not url:
        _postgres_unavailable(
            "set NN_GPU_TEST_POSTGRES to a PostgreSQL URL; scripts/postgres_for_tests.sh starts one"
        )
    try:
        import psycopg
    except ImportError as error:
        _postgres_unavailable(f"psycopg is not installed ({error}): pip install -e '.[test]'")
    try:
        psycopg.connect(_libpq_url(url), connect_timeout=5).close()
    except psycopg.Error as error:
        reason = " ".join(str(error).split())
        from nn_gpu.sweep.study import shown_url

        _postgres_unavailable(f"cannot connect to NN_GPU_TEST_POSTGRES={shown_url(url)}: {reason}")
    return url


@contextlib.contextmanager
def fresh_postgres_database(url):
    """A new, empty database on url's server, dropped on exit; yields its URL."""
    import psycopg
    from psycopg import sql

    name = f"nn_gpu_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(_libpq_url(url), connect_timeout=5, autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield _database_url(url, name)
        finally:
            with admin.cursor() as cursor:
                cursor.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
    finally:
        admin.close()


@pytest.fixture
def postgres_storage_url(postgres_url):
    """A fresh empty PostgreSQL database for one test (its URL), dropped afterwards."""
    with fresh_postgres_database(postgres_url) as url:
        yield url


# Small digit classifiers (fully connected, convolutional) and whole-digit
# check, trained in seconds once per session: the models the tests of
# predict, read, serve and the plots share.

@pytest.fixture(scope="session")
def trained_model(mnist, tmp_path_factory):
    """(net, saved model path): [784, 60, 10], cross-entropy, 3 epochs on
    10,000 examples (about 95% on the test set). The one trained digit
    classifier of the suite: a test that only needs *a* trained model uses
    this one rather than training its own."""
    from nn_gpu import Network

    (X, labels), _, _ = mnist
    net = Network([784, 60, 10], cost="cross_entropy", init="scaled", backend="numpy", seed=2)
    net.sgd((X[:10000], labels[:10000]), 3, 10, 0.5)
    path = tmp_path_factory.mktemp("trained_model") / "model.npz"
    net.save(path)
    return net, path


@pytest.fixture(scope="session")
def reading_check(mnist, tmp_path_factory):
    """(check, cache home): a whole-digit check trained on the pieces of 32
    composed numbers, saved where `nn-gpu read` and `serve` find it with
    XDG_CACHE_HOME set to the cache home."""
    from nn_gpu.reading.whole_digit import check_file_name, train_whole_digit_check

    check = train_whole_digit_check(mnist[0], count=32)
    home = tmp_path_factory.mktemp("reading_cache")
    (home / "nn_gpu").mkdir()
    check.save(home / "nn_gpu" / check_file_name(mnist[0]))
    return check, home


@pytest.fixture(scope="session")
def reading_conv_model(mnist, tmp_path_factory):
    """(net, saved model path): a small conv-pool layer into softmax, one
    epoch on 3,000 examples (seconds)."""
    from nn_gpu.convnet import ConvNetwork, ConvPoolLayer, SoftmaxLayer

    (X, labels), _, _ = mnist
    net = ConvNetwork([ConvPoolLayer((1, 28, 28), (6, 1, 5, 5), activation="relu"),
                       SoftmaxLayer(6 * 12 * 12, 10)], backend="numpy", seed=3)
    net.sgd((X[:3000], labels[:3000]), 1, 10, 0.03)
    path = tmp_path_factory.mktemp("reading_conv_model") / "conv.npz"
    net.save(path)
    return net, path


@pytest.fixture
def local_only(monkeypatch):
    """Fail any request that is not for a local test server, and bypass
    proxies (the download tests)."""
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    real_urlopen = urllib.request.urlopen

    def guarded(url, *args, **kwargs):
        assert str(url).startswith("http://127.0.0.1:"), f"test tried to reach {url}"
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)
