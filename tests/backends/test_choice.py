"""Where a training runs (nn_gpu/backends/choice.py): the one choice that
``Network.sgd`` and ``nn-gpu train`` make, from the capability table and the
launch/FLOP model; a GPU is the CuPy stand-in (tests/fake_cupy.py)."""

import fake_cupy
import numpy
import pytest
from conftest import needs_mnist

from nn_gpu import Network
from nn_gpu.backends import BackendChoice, NumpyBackend, choice, choose_backend, devices, estimate
from nn_gpu.backends.base import Backend
from nn_gpu.cli import main
from nn_gpu.errors import BackendUnavailableError
from nn_gpu.model import core
from nn_gpu.model.costs import get_cost

BOOK = [784, 30, 10]


def plan(cost="quadratic", hidden="sigmoid", layers=2, train_size=50_000, **settings):
    cost = get_cost(cost)
    return core.Plan(cost=cost, kinds=(hidden,) * (layers - 1) + (cost.output_activation,),
                     eta=3.0, train_size=train_size, **settings)


@pytest.fixture
def gpu(monkeypatch):
    """A usable "GPU": CuPy's stand-in answers, and numba-cuda says it can
    launch (the fused epoch's kernel itself never runs in these tests)."""
    from nn_gpu.backends.cuda import cupy_backend

    fake_cupy.install(monkeypatch)
    monkeypatch.setattr(cupy_backend, "numba_cuda_usable", lambda: True)
    return cupy_backend


@pytest.mark.parametrize("sizes, batch, settings, name, path, words", [
    (BOOK, 1, {}, "cupy", "fused_gpu", "GPU's fused GPU epoch"),
    (BOOK, 10, {}, "cupy", "fused_gpu", "GPU's fused GPU epoch"),
    (BOOK, 100, {}, "cupy", "cublas", "the cuBLAS path is estimated faster"),
    (BOOK, 1000, {}, "cupy", "cublas", "shared memory"),
    (BOOK, 10, {"dropout": 0.5}, "numpy", "core", "dropout = 0.5: the kernel draws no"),
    ([784, 30, 30, 10], 10, {}, "numpy", "compiled_cpu", "3 weight layers"),
    ([784, 30, 30, 10], 1000, {}, "cupy", "cublas", "3 weight layers"),
])
def test_auto_takes_the_fastest_path_the_table_allows(gpu, sizes, batch, settings, name, path,
                                                      words):
    chosen = choose_backend("auto", plan(layers=len(sizes) - 1, **settings), sizes, batch)
    assert isinstance(chosen, BackendChoice)
    assert (chosen.name, chosen.path) == (name, path), chosen
    assert words in chosen.reason and "not yet measured" in chosen.reason, chosen.reason
    assert chosen.backend.reason == chosen.reason
    seconds = chosen.estimates
    if name == "cupy":     # the GPU path taken, estimated faster than the CPU
        assert seconds[choice.ESTIMATED_AS[path]] < seconds["cpu"]
    else:                  # the fused epoch refused, the cuBLAS path slower
        assert seconds["cublas"] >= seconds["cpu"]


def test_auto_without_numba_cuda_weighs_the_cublas_path(gpu, monkeypatch):
    monkeypatch.setattr(gpu, "numba_cuda_usable", lambda: False)
    small = choose_backend("auto", plan(), BOOK, 10)  # the cuBLAS path is host-bound here
    assert (small.name, small.path) == ("numpy", "compiled_cpu")
    assert "(numba-cuda cannot launch kernels here)" in small.reason
    large = choose_backend("auto", plan(), BOOK, 1000)
    assert (large.name, large.path) == ("cupy", "cublas")


def test_auto_without_a_gpu_says_why(monkeypatch):
    monkeypatch.setattr(devices, "cupy_status", lambda: (False, "CuPy is not installed"))
    chosen = choose_backend("auto", plan(), BOOK, 10)
    assert (chosen.name, chosen.path) == ("numpy", "compiled_cpu")
    assert chosen.reason == "auto: CuPy is not installed" and chosen.estimates is None


def test_requested_backends_get_their_path(gpu):
    assert choose_backend("numpy", plan(), BOOK, 10).path == "compiled_cpu"
    assert choose_backend("numpy", plan(l1=1.0), BOOK, 10).path == "core"
    requested = choose_backend("cupy", plan(), BOOK, 1000)
    assert (requested.name, requested.path) == ("cupy", "cublas")
    assert requested.reason.startswith("requested; estimated")
    assert choose_backend("cupy", plan(), BOOK, 10).path == "fused_gpu"


def test_cupy_requested_without_a_gpu_is_an_error(monkeypatch):
    monkeypatch.setattr(devices, "cupy_status", lambda: (False, "CuPy is not installed"))
    with pytest.raises(BackendUnavailableError, match="not installed"):
        choose_backend("cupy", plan(), BOOK, 10)


def test_a_given_backend_is_kept_with_its_reason(gpu):
    """The choice never rewrites a backend it was handed (the object may be
    shared): it names the path that backend will take."""
    cpu, cupy, generic = NumpyBackend(reason="mine"), gpu.CupyBackend(reason="mine"), \
        Backend(numpy, reason="mine")
    for backend, path in ((cpu, "compiled_cpu"), (cupy, "fused_gpu"), (generic, "core")):
        chosen = choose_backend(backend, plan(), BOOK, 10)
        assert chosen.backend is backend and chosen.path == path
        assert chosen.reason == backend.reason == "mine"


def test_the_per_example_reference_runs_on_the_cpu_under_auto(gpu):
    chosen = choose_backend("auto", plan(), BOOK, 10, method="per_example")
    assert (chosen.name, chosen.path) == ("numpy", "per_example")
    assert choose_backend("cupy", plan(), BOOK, 10, method="per_example").name == "cupy"


def test_the_figures_are_the_model_s():
    seconds = estimate.epoch_seconds(BOOK, 10, 50_000)
    words = choice._figures("fused_gpu", None, seconds)
    assert f"{seconds['fused']:.3g} s/epoch on the GPU's fused GPU epoch" in words
    assert f"against {seconds['cpu']:.3g} s on the CPU" in words


# ------------------------------------------------------------ Network(auto)
def data(n=200, n_in=784, classes=10, seed=0):
    rng = numpy.random.default_rng(seed)
    return rng.random((n, n_in)), rng.integers(0, classes, n)


@pytest.mark.slow
def test_an_auto_network_stays_on_the_host_until_training_chooses(gpu):
    net = Network([784, 12, 10], dtype="float64", seed=1)
    assert net.backend.name == "numpy" and net.backend_choice is None
    assert "until training chooses" in net.backend.reason
    before = [w.copy() for w in net.weights]
    net.sgd(data(200), 1, 200, 0.5)          # mini-batch 200: beyond the fused kernel
    assert (net.backend.name, net.backend_choice.path) == ("cupy", "cublas")
    assert net.backend is net.backend_choice.backend
    twin = Network([784, 12, 10], backend="numpy", dtype="float64", seed=1)
    assert all(numpy.array_equal(a, b) for a, b in zip(before, twin.weights))
    twin.sgd(data(200), 1, 200, 0.5)          # the same training, moved, as on the CPU
    for a, b in zip(net.weights + net.biases, twin.weights + twin.biases):
        numpy.testing.assert_allclose(net.backend.to_host(a), b, rtol=1e-12)
    net.sgd(data(200), 1, 10, 0.5, dropout=0.5)   # each training chooses again
    assert (net.backend.name, net.backend_choice.path) == ("numpy", "core")


def test_a_network_given_a_backend_keeps_it(gpu):
    backend = NumpyBackend(threads=1)
    net = Network([784, 12, 10], backend=backend, dtype="float64", seed=1)
    net.sgd(data(100), 1, 10, 0.5)
    assert net.backend is backend and net.backend_choice.backend is backend
    assert net.backend_choice.path == "compiled_cpu"


@needs_mnist
@pytest.mark.parametrize("batch", [10, 1000])
def test_sgd_and_train_make_the_same_choice(gpu, monkeypatch, capsys, mnist, batch):
    """`nn-gpu train`'s header and Network(backend="auto").sgd's
    backend_choice, for the same network and mini-batch: one choice."""
    monkeypatch.setattr(gpu, "numba_cuda_usable", lambda: False)  # no kernel to run here
    assert main(["train", "--train-size", "1000", "--batch-size", str(batch), "--epochs", "1",
                 "--sizes", "784", "12", "10", "--seed", "1"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    (X, labels), _, _ = mnist
    net = Network([784, 12, 10], seed=1)
    net.sgd((X[:1000], labels[:1000]), 1, batch, 3.0)
    assert header.endswith(f" on {net.backend_choice.name}: {net.backend_choice.reason}"), \
        (header, net.backend_choice)
    assert net.backend_choice.name == ("numpy" if batch == 10 else "cupy")
