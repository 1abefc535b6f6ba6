"""The capability table (nn_gpu/backends/capabilities.py), tested as a table:
every path against every kind of training, each refusal with its reason;
and every caller shown to ask it (a reason planted in the table comes out of
each)."""

import dataclasses

import pytest

from nn_gpu import Network
from nn_gpu.backends import NumpyBackend, capabilities
from nn_gpu.backends.capabilities import PATHS, Refusal, refusal
from nn_gpu.backends.cpu.records import ACTIVATION_CODES
from nn_gpu.cli import main
from nn_gpu.errors import InvalidArgumentError
from nn_gpu.model import core
from nn_gpu.model.costs import QuadraticCost, get_cost


class HingeCost(QuadraticCost):
    """A cost of the user's with its own output error: no compiled path knows it."""

    name = "hinge"


def training(cost="quadratic", hidden="sigmoid", layers=2, **settings):
    cost = HingeCost if cost == "hinge" else get_cost(cost)
    kinds = (hidden,) * (layers - 1) + (cost.output_activation,)
    return core.Plan(cost=cost, kinds=kinds, eta=3.0, train_size=50_000, **settings)


#: (case, plan, dtype, C-ordered parameters).
CASES = {
    "book": (training(), "float32", True),
    "float64": (training(), "float64", True),
    "tanh": (training(hidden="tanh"), "float32", True),
    "relu": (training(hidden="relu"), "float32", True),
    "cross_entropy": (training("cross_entropy"), "float32", True),
    "log_likelihood": (training("log_likelihood"), "float32", True),
    "hinge": (training("hinge"), "float32", True),
    "3 layers": (training(layers=3), "float32", True),
    "1 layer": (training(layers=1), "float32", True),
    "l2": (training(l2=5.0), "float32", True),
    "l1": (training(l1=1.0), "float32", True),
    "momentum": (training(momentum=0.9), "float32", True),
    "dropout": (training(dropout=0.5), "float32", True),
    "float16": (training(), "float16", True),
    "fortran": (training(), "float32", False),
}

#: path -> {case: the option it refuses}; every other case runs.
REFUSED = {
    "compiled_cpu": {"hinge": "cost", "l1": "l1", "dropout": "dropout", "float16": "dtype",
                     "fortran": "order"},
    "fused_gpu": {"hinge": "cost", "3 layers": "layers", "1 layer": "layers",
                  "dropout": "dropout", "float16": "dtype", "fortran": "order"},
    "cublas": {"float16": "dtype"},
    "core": {"float16": "dtype"},
    "per_example": {"tanh": "activation", "relu": "activation",
                    "log_likelihood": "cost", "hinge": "cost", "l2": "l2", "l1": "l1",
                    "momentum": "momentum", "dropout": "dropout", "float16": "dtype"},
}


def test_the_table_names_every_path():
    assert set(PATHS) == set(REFUSED) == {"compiled_cpu", "fused_gpu", "cublas", "core",
                                          "per_example"}


@pytest.mark.parametrize("path", sorted(REFUSED))
@pytest.mark.parametrize("case", sorted(CASES))
def test_what_each_path_runs(path, case):
    plan, dtype, c_ordered = CASES[case]
    refused = refusal(path, plan, dtype, c_ordered)
    expected = REFUSED[path].get(case)
    if expected is None:
        assert refused is None, refused
        assert capabilities.supports(path, plan, dtype, c_ordered)
    else:
        assert isinstance(refused, Refusal) and refused.option == expected, refused
        assert refused.why and refused.subject in str(refused) and refused.why in str(refused)


def test_a_refusal_reads_as_one_line_with_its_reason():
    assert str(refusal("compiled_cpu", training(dropout=0.5))) == (
        "dropout = 0.5: the compiled loop draws no dropout masks")
    assert str(refusal("fused_gpu", training(layers=3))) == (
        "3 weight layers: the fused GPU epoch runs 2 (the kernel keeps the one hidden layer "
        "of a step in shared memory)")
    assert str(refusal("per_example", training(hidden="relu"))) == (
        "hidden activation 'relu': the book's chapter-1 loop has sigmoid neurons only")


@pytest.mark.parametrize("path", sorted(PATHS))
def test_every_refusal_has_a_reason(path):
    table = PATHS[path]
    assert all(table.refuses.values())
    assert set(table.refuses) <= set(capabilities.OPTIONS)
    if table.layers != (1, float("inf")):
        assert table.layers_why
    if set(table.hidden) != {"sigmoid", "tanh", "relu"} or set(table.output) != {"sigmoid",
                                                                                  "softmax"}:
        assert table.activations_why
    if table.error_forms is not None or table.cost_names is not None:
        assert table.costs_why


def test_the_compiled_loop_has_a_code_for_every_activation_it_is_said_to_run():
    table = PATHS["compiled_cpu"]
    assert set(table.hidden) | set(table.output) <= set(ACTIVATION_CODES)


# ----------------------------------------------------- every caller asks it
@pytest.fixture
def planted(monkeypatch):
    """Plant a refusal of L2 (reason "PLANTED") in a path of the table."""
    def plant(path):
        table = PATHS[path]
        monkeypatch.setitem(PATHS, path, dataclasses.replace(
            table, refuses={**table.refuses, "l2": "PLANTED"}))
    return plant


def test_the_numpy_backend_asks_the_table(planted):
    plan = training(l2=5.0)
    assert NumpyBackend().compiled_epoch(plan) is not None
    planted("compiled_cpu")
    assert NumpyBackend().compiled_epoch(plan) is None


def test_the_fused_epoch_and_the_gpu_path_ask_the_table(planted, monkeypatch):
    from nn_gpu.backends import gpu_path_for
    from nn_gpu.backends.cuda import cupy_backend
    from nn_gpu.backends.cuda import epoch as cuda_epoch

    monkeypatch.setattr(cupy_backend, "numba_cuda_usable", lambda: True)
    plan = training(l2=5.0)
    assert cuda_epoch.unsupported(plan, [784, 30, 10], 10, "float32") is None
    assert gpu_path_for([784, 30, 10], 10, "float32", plan)[0] == "fused_gpu"
    planted("fused_gpu")
    assert cuda_epoch.unsupported(plan, [784, 30, 10], 10, "float32").why == "PLANTED"
    path, why, _ = gpu_path_for([784, 30, 10], 10, "float32", plan)
    assert path == "cublas" and "PLANTED" in why


def test_the_cupy_backend_asks_the_table(planted, monkeypatch):
    import fake_cupy

    from nn_gpu.backends.cuda import cupy_backend

    fake_cupy.install(monkeypatch)
    monkeypatch.setattr(cupy_backend, "numba_cuda_usable", lambda: True)
    backend = cupy_backend.CupyBackend()
    assert backend.compiled_epoch(training(l2=5.0)) is not None
    planted("fused_gpu")
    assert backend.compiled_epoch(training(l2=5.0)) is None


def test_the_per_example_method_asks_the_table(planted, mnist_slice):
    training_data = (mnist_slice[0][0][:50], mnist_slice[0][1][:50])
    net = Network([784, 10, 10], backend="numpy", seed=0)
    with pytest.raises(InvalidArgumentError, match="l1 = 1: the book's chapter-1 loop has no L1"):
        net.sgd(training_data, 1, 10, 1.0, method="per_example", l1=1.0)
    planted("per_example")
    with pytest.raises(InvalidArgumentError, match="l2 = 2: PLANTED"):
        net.sgd(training_data, 1, 10, 1.0, method="per_example", l2=2.0)


def test_train_per_example_asks_the_table(planted, capsys):
    planted("per_example")
    assert main(["train", "--method", "per_example", "--l2", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--method per_example cannot train with l2 = 2 (--l2): PLANTED" in err


def test_train_per_example_names_the_flag_at_fault(capsys):
    assert main(["train", "--method", "per_example", "--cost", "log_likelihood"]) == 2
    err = capsys.readouterr().err
    assert "output activation 'softmax' (--cost): the book's chapter-1 loop has sigmoid" in err


def test_a_cost_with_its_own_output_error_runs_on_the_core_only():
    plan = training("hinge")
    assert [path for path in PATHS if capabilities.supports(path, plan)] == ["cublas", "core"]
