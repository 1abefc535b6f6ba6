"""End-to-end tests of the `nn-gpu` command line, at the level a user sees it.

Most tests run ``nn-gpu ARGV`` in-process (conftest's ``run``) on a small
slice of the genuine MNIST data; one runs ``python -m nn_gpu`` in a subprocess
to prove the entry point works. Nothing here touches the network.
"""

import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
from conftest import mnist_dir, needs_mnist, one_error, run

from nn_gpu import Network, cupy_status, get_backend
from nn_gpu.data.mnist import DATA_ENV_VAR
from nn_gpu.options import TrainingSettings

REPO = Path(__file__).resolve().parents[2]
DATA = mnist_dir()

pytestmark = needs_mnist

SMALL = ["--data", str(DATA), "--train-size", "2000", "--epochs", "2", "--sizes", "784", "16", "10"]
TINY = ["train", "--data", str(DATA), "--train-size", "1000", "--sizes", "784", "16", "10"]
EPOCH_LINE = re.compile(r"^Epoch (\d+): (\d+) / 10000  \(validation (\d+) / 10000"
                        r"(, train cost \d+\.\d{4})?(, eta (\S+))?, \d+\.\d{2} s\)$")
BEST_LINE = re.compile(r"^Best test accuracy: \d+\.\d{2}% \(epoch \d+\)$")
BEST_VALIDATION_LINE = re.compile(r"^Best validation accuracy: \d+\.\d{2}% \(epoch \d+\)$")


def epoch_figures(out):
    """The (test, validation) correct counts of each epoch line."""
    return [(int(m[2]), int(m[3])) for m in map(EPOCH_LINE.match, out.splitlines()) if m]


def assert_summary(lines):
    """The run ends with the best test and the best validation accuracy."""
    assert BEST_LINE.match(lines[-2]), lines[-2]
    assert BEST_VALIDATION_LINE.match(lines[-1]), lines[-1]


class Recording(Network):
    """A Network that keeps the last instance and the arguments sgd got."""

    last = None

    def sgd(self, training_data, *args, **kwargs):
        Recording.last = self
        self.sgd_args, self.sgd_kwargs, self.training_data = args, kwargs, training_data
        return super().sgd(training_data, *args, **kwargs)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """One small training run with --history and --save, shared by several tests."""
    tmp = tmp_path_factory.mktemp("train")
    history, model = tmp / "history.json", tmp / "model.npz"
    rc, out, _ = run("train", *SMALL, "--seed", "3", "--history", history, "--save", model)
    return rc, out, history, model


def test_train_prints_header_epoch_lines_and_best(small_run):
    rc, out, _, _ = small_run
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith(
        "Training [784, 16, 10] (quadratic cost, sigmoid, normal init, eta 3, mini-batch 10, "
        "2000 examples, batched, float32) on numpy")
    assert [EPOCH_LINE.match(line)[1] for line in lines if line.startswith("Epoch")] == ["1", "2"]
    assert not any(EPOCH_LINE.match(line)[5] for line in lines if line.startswith("Epoch"))
    assert_summary(lines)
    best_validation = max(figures[1] for figures in epoch_figures(out))
    assert f"Best validation accuracy: {best_validation / 100:.2f}%" in lines[-1]


def test_history_json_schema(small_run):
    _, out, history, _ = small_run
    doc = json.loads(history.read_text())
    config = doc["config"]
    assert config["sizes"] == [784, 16, 10] and config["epochs"] == 2
    assert config["train_size"] == 2000 and config["seed"] == 3
    assert config["backend"] == "numpy" and config["data"] == str(DATA)
    assert {"batch_size", "eta", "cost", "dtype", "init", "method"} <= config.keys()
    assert config["preset"] is None and config["activation"] == "sigmoid"
    assert config["l2"] == config["l1"] == config["momentum"] == config["dropout"] == 0
    assert config["eta_schedule"] is None and config["early_stopping"] is None
    assert config["expand"] is False and config["train_examples"] == 2000
    assert config["monitor"] == ["training-cost", "training-accuracy", "evaluation-cost",
                                 "evaluation-accuracy"]
    assert [e["epoch"] for e in doc["epochs"]] == [1, 2]
    for entry, (test, validation) in zip(doc["epochs"], epoch_figures(out)):
        assert 0 <= entry["test_accuracy"] <= 1 and 0 <= entry["validation_accuracy"] <= 1
        assert entry["test_accuracy"] == test / 10000
        assert entry["validation_accuracy"] == validation / 10000
        assert entry["train_cost"] > 0 and entry["seconds"] >= 0
        assert entry["eta"] == 3.0 and "stopped" not in entry
        assert 0 <= entry["train_accuracy"] <= 1
        assert entry["validation_cost"] > 0 and entry["test_cost"] > 0
    assert list(doc["epochs"][0])[:6] == ["epoch", "validation_accuracy", "test_accuracy",
                                          "train_cost", "seconds", "eta"]


@pytest.mark.slow
def test_saved_model_evaluates_to_last_epoch_accuracy(small_run):
    _, out, _, model = small_run
    last_test, last_validation = epoch_figures(out)[-1]
    rc, out, _ = run("evaluate", model, "--data", DATA)
    assert rc == 0 and out.strip() == (
        f"test accuracy: {last_test} / 10000 ({last_test / 100:.2f}%)")
    rc, out, _ = run("evaluate", model, "--data", DATA, "--split", "validation")
    assert rc == 0 and out.startswith(f"validation accuracy: {last_validation} / 10000")


@pytest.mark.slow
def test_quiet_prints_only_the_summary():
    rc, out, _ = run("train", *SMALL, "--quiet")
    assert rc == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert_summary(lines)


@pytest.mark.slow
def test_per_example_and_batched_agree():
    figures = {}
    for method in ("per_example", "batched"):
        args = ["train", "--data", str(DATA), "--sizes", "784", "16", "10", "--dtype", "float64",
                "--seed", "1", "--train-size", "500", "--epochs", "2", "--method", method]
        rc, out, _ = run(*args)
        assert rc == 0
        figures[method] = epoch_figures(out)
    assert len(figures["batched"]) == 2
    assert figures["per_example"] == figures["batched"]


@pytest.mark.slow
def test_threads_trains_the_same_epochs():
    """--threads N fixes the compiled epoch's BLAS threads; the figures stay."""
    figures = []
    for threads in ([], ["--threads", "1"], ["--threads", "2"]):
        args = ["train", "--data", str(DATA), "--sizes", "784", "40", "10", "--dtype", "float64",
                "--seed", "1", "--train-size", "500", "--epochs", "2", "--batch-size", "100",
                "--backend", "numpy", *threads]
        rc, out, _ = run(*args)
        assert rc == 0
        figures.append(epoch_figures(out))
    assert figures[0] == figures[1] == figures[2] and len(figures[0]) == 2


@pytest.mark.slow
def test_ctrl_c_keeps_history_and_returns_130(tmp_path, monkeypatch):
    """A KeyboardInterrupt after epoch 2 of 5: the file holds both epochs."""

    class InterruptedNetwork(Network):
        def sgd(self, *args, callback, **kwargs):
            def stop_after_two(record):
                callback(record)
                if record["epoch"] == 2:
                    raise KeyboardInterrupt
            return super().sgd(*args, callback=stop_after_two, **kwargs)

    monkeypatch.setattr("nn_gpu.cli.train.Network", InterruptedNetwork)
    history = tmp_path / "h.json"
    args = ["train", "--data", str(DATA), "--train-size", "500", "--epochs", "5",
            "--sizes", "784", "16", "10", "--history", str(history)]
    rc, _, err = run(*args)
    assert rc == 130
    assert err == f"Interrupted after epoch 2; history kept in {history}\n"
    assert len(json.loads(history.read_text())["epochs"]) == 2
    assert list(tmp_path.iterdir()) == [history]  # no temporary file left behind


def assert_one_line_error(ran, status, mentions=""):
    """The one error line of a command that failed with ``status`` before
    training started, mentioning ``mentions``."""
    err = one_error(ran.err, ran.status, status)
    assert "Traceback" not in ran.out and "Epoch" not in ran.out  # training never started
    assert mentions in err
    return err


@pytest.mark.parametrize("bad, status, mentions", [
    (["--eta", "-1"], 2, "--eta"),
    (["--eta", "nan"], 2, "--eta"),
    (["--sizes", "100", "10"], 2, "784"),
    (["--sizes", "784", "0", "10"], 2, "--sizes"),
    (["--epochs", "0"], 2, "--epochs"),
    (["--batch-size", "600"], 2, "--batch-size"),
    (["--train-size", "50001"], 2, "--train-size"),
    (["--backend", "tpu"], 2, "tpu"),
    (["--activation", "softplus"], 2, "--activation"),
    (["--cost", "hinge"], 2, "--cost"),
    (["--l2", "-1"], 2, "--l2"),
    (["--l1", "nan"], 2, "--l1"),
    (["--momentum", "-0.1"], 2, "--momentum"),
    (["--momentum", "1"], 2, "--momentum"),
    (["--dropout", "1"], 2, "--dropout"),
    (["--dropout", "half"], 2, "--dropout"),
    (["--eta-schedule", "0"], 2, "--eta-schedule"),
    (["--early-stopping", "0"], 2, "--early-stopping"),
    (["--early-stopping", "1.5"], 2, "--early-stopping"),
    (["--monitor", "test-cost"], 2, "--monitor"),
    (["--preset", "nope"], 2, "nope"),
    (["--expand", "--batch-size", "2501"], 2, "2500 examples"),
    (["--preset", "ch1-30", "--sizes", "784", "10", "9"], 2, "784"),
    (["--method", "per_example", "--activation", "relu"], 2, "per_example"),
    (["--method", "per_example", "--preset", "ch3-l2"], 2, "--l2"),
    (["--data", "/nonexistent"], 1, "/nonexistent"),
    (["--history", "/nonexistent/dir/h.json"], 1, "/nonexistent/dir"),
    (["--save", "/nonexistent/dir/m.npz"], 1, "/nonexistent/dir"),
])
def test_bad_train_arguments_give_one_line(bad, status, mentions):
    assert_one_line_error(run("train", "--data", DATA, "--train-size", "500", *bad), status,
                          mentions)


def test_usage_error_format():
    err = assert_one_line_error(run("train", "--epochs", "0"), 2)
    assert err.startswith("nn-gpu train: error: ") and err.endswith("(see --help)")


def test_no_subcommand_prints_help_and_returns_2():
    rc, _, err = run()
    assert rc == 2 and "train" in err


def test_cupy_backend_without_gpu_fails_in_one_line():
    if cupy_status()[0]:
        pytest.skip("CuPy is usable here")
    err = assert_one_line_error(run("train", *SMALL, "--backend", "cupy"), 1, "CuPy")
    assert err.startswith("nn-gpu: error: ")


def test_evaluate_non_model_file(tmp_path):
    bogus = tmp_path / "model.npz"
    bogus.write_text("not a model\n")
    assert_one_line_error(run("evaluate", bogus, "--data", DATA), 1, str(bogus))


def test_evaluate_missing_file(tmp_path):
    missing = tmp_path / "missing.npz"
    assert_one_line_error(run("evaluate", missing, "--data", DATA), 1, "not found")


def test_evaluate_rejects_non_mnist_model(tmp_path):
    model = tmp_path / "xor.npz"
    Network([2, 3, 1], seed=0).save(model)
    assert_one_line_error(run("evaluate", model, "--data", DATA), 1, "784")


def test_info_reports_the_real_versions_backend_and_data(monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    rc, out, _ = run("info", "--data", DATA)
    assert rc == 0
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert lines["numpy"] == numpy.__version__
    assert lines["python"] == f"{platform.python_version()} ({sys.executable})"
    auto = get_backend("auto")
    assert lines["backend"] == f"'auto' picks: {auto.name} ({auto.describe()})"
    assert lines["data"] == (f"dir: {DATA} (from --data): "
                             "all 4 MNIST files present")
    assert lines["sweep"] == f"(Optuna): {importlib.metadata.version('optuna')}"


def test_info_names_the_source_of_the_data_dir_and_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    rc, out, _ = run("info")
    assert rc == 0
    data_line = next(line for line in out.splitlines()
                     if line.startswith("data dir:"))
    assert data_line == (f"data dir: {tmp_path} (from {DATA_ENV_VAR}): missing "
                         "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                         "t10k-images-idx3-ubyte.gz; run `nn-gpu download`")


@pytest.mark.slow
def test_python_dash_m_entry_point(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), DATA_ENV_VAR: str(DATA)}
    history = tmp_path / "h.json"
    result = subprocess.run(
        [sys.executable, "-m", "nn_gpu", "train", "--train-size", "500", "--epochs", "1",
         "--sizes", "784", "16", "10", "--history", str(history)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(epoch_figures(result.stdout)) == 1
    assert_summary(result.stdout.splitlines())
    assert json.loads(history.read_text())["config"]["data"] == str(DATA)


# ------------------------------------------------- chapter 3 options, presets
@pytest.mark.slow
def test_new_options_reach_the_network_and_sgd(tmp_path, monkeypatch):
    monkeypatch.setattr("nn_gpu.cli.train.Network", Recording)
    history = tmp_path / "h.json"
    rc, out, _ = run(*TINY, "--epochs", "1", "--activation", "tanh", "--cost", "log_likelihood",
                     "--init", "scaled", "--eta", "0.1", "--batch-size", "20", "--l2", "1.5",
                     "--l1", "0.25", "--momentum", "0.5", "--dropout", "0.2", "--eta-schedule", "2",
                     "--early-stopping", "3", "--monitor", "training-cost", "--seed", "4",
                     "--history", str(history))
    lines = out.splitlines()
    assert rc == 0
    net = Recording.last
    assert (net.activation, net.cost.name, net.init) == ("tanh", "log_likelihood", "scaled")
    assert len(net.training_data[1]) == 1000
    assert net.sgd_kwargs["settings"] == TrainingSettings(
        epochs=1, mini_batch_size=20, eta=0.1, l2=1.5, l1=0.25, momentum=0.5, dropout=0.2,
        eta_schedule=2, early_stopping=3, monitor_training_cost=True)
    assert lines[0].startswith("Training [784, 16, 10] (log_likelihood cost, tanh, scaled init, "
                               "eta 0.1, mini-batch 20, l2 1.5, l1 0.25, momentum 0.5, "
                               "dropout 0.2, eta schedule 2, early stopping 3, 1000 examples, ")
    config = json.loads(history.read_text())["config"]
    assert {key: config[key] for key in ("activation", "cost", "l2", "l1", "momentum", "dropout",
                                         "eta_schedule", "early_stopping", "monitor")} == {
        "activation": "tanh", "cost": "log_likelihood", "l2": 1.5, "l1": 0.25, "momentum": 0.5,
        "dropout": 0.2, "eta_schedule": 2, "early_stopping": 3, "monitor": ["training-cost"]}


@pytest.mark.slow
def test_monitor_chooses_what_is_measured(tmp_path):
    history = tmp_path / "h.json"
    rc, out, _ = run(*TINY, "--epochs", "1", "--monitor", "--history", str(history))
    lines = out.splitlines()
    assert rc == 0
    match = EPOCH_LINE.match(lines[1])
    assert match and match[4] is None  # no train cost on the line
    (entry,) = json.loads(history.read_text())["epochs"]
    assert set(entry) == {"epoch", "validation_accuracy", "test_accuracy", "seconds", "eta"}
    rc, out, _ = run(*TINY, "--epochs", "1", "--monitor", "training-accuracy", "evaluation-cost",
                     "--history", str(history))
    lines = out.splitlines()
    (entry,) = json.loads(history.read_text())["epochs"]
    assert {"train_accuracy", "validation_cost", "test_cost"} <= entry.keys()
    assert "train_cost" not in entry


@pytest.mark.slow
def test_preset_values_are_used_and_explicit_options_win(tmp_path):
    history = tmp_path / "h.json"
    rc, out, _ = run(*TINY, "--preset", "ch3-l2", "--epochs", "1", "--eta", "0.25",
                     "--history", str(history))
    lines = out.splitlines()
    assert rc == 0
    assert lines[0].startswith("Training [784, 16, 10] (preset ch3-l2: cross_entropy cost, "
                               "sigmoid, normal init, eta 0.25, mini-batch 10, l2 5, ")
    config = json.loads(history.read_text())["config"]
    assert config["preset"] == "ch3-l2"
    # from the preset
    assert (config["cost"], config["l2"], config["batch_size"]) == ("cross_entropy", 5.0, 10)
    # given explicitly (--sizes in TINY, --epochs, --eta)
    assert (config["sizes"], config["epochs"], config["eta"]) == ([784, 16, 10], 1, 0.25)
    # built in
    assert (config["momentum"], config["dropout"], config["expand"]) == (0.0, 0.0, False)

    rc, out, _ = run(*TINY, "--preset", "ch3-l2", "--epochs", "1", "--l2", "0",
                     "--history", str(history))
    lines = out.splitlines()
    config = json.loads(history.read_text())["config"]
    assert rc == 0 and config["l2"] == 0.0 and config["eta"] == 0.5  # an explicit 0 wins too
    assert ", l2 " not in lines[0]


@pytest.mark.slow
def test_off_cancels_a_presets_schedule(monkeypatch):
    monkeypatch.setattr("nn_gpu.cli.train.Network", Recording)
    rc, _, _ = run(*TINY, "--preset", "best-mlp", "--no-expand", "--eta-schedule", "off",
                   "--epochs", "1", "--sizes", "784", "16", "10", "--dropout", "0")
    assert rc == 0
    net = Recording.last
    settings = net.sgd_kwargs["settings"]
    assert settings.eta_schedule is None and settings.momentum == 0.9
    assert (net.activation, net.cost.name, len(net.training_data[1])) == (
        "relu", "log_likelihood", 1000)


@pytest.mark.slow
def test_expand_trains_on_five_times_the_examples(tmp_path, monkeypatch, mnist):
    from nn_gpu.data.expand import CACHE_NAME, expanded_training_set

    cache_home = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    monkeypatch.setattr("nn_gpu.cli.train.Network", Recording)
    before = sorted(DATA.iterdir())
    history = tmp_path / "h.json"
    rc, out, _ = run("train", "--data", str(DATA), "--train-size", "500", "--expand",
                     "--epochs", "1", "--sizes", "784", "16", "10", "--history", str(history))
    lines = out.splitlines()
    assert rc == 0
    assert ", 2500 expanded examples, " in lines[0]
    X, labels = Recording.last.training_data
    expected_X, expected_labels = expanded_training_set((mnist[0][0][:500], mnist[0][1][:500]))
    assert numpy.array_equal(X, expected_X) and numpy.array_equal(labels, expected_labels)
    config = json.loads(history.read_text())["config"]
    assert config["expand"] is True and config["train_examples"] == 2500
    assert config["expand_cache"] == str(cache_home / "nn_gpu")
    assert (cache_home / "nn_gpu" / CACHE_NAME).is_file()
    assert sorted(DATA.iterdir()) == before  # nothing written next to the data


@pytest.mark.slow
def test_early_stopping_prints_the_stop_and_keeps_the_best_weights(tmp_path,
                                                                   monkeypatch):
    """With eta ~ 0 the accuracy never improves after epoch 1, so epoch 2 stops
    training; the weights are then wrecked, and must come back as epoch 1's."""

    class Wrecking(Network):
        def sgd(self, *args, callback, **kwargs):
            def wreck_when_stopping(record):
                callback(record)
                if "stopped" in record:
                    for w in self.weights:
                        w[...] = 0
            return super().sgd(*args, callback=wreck_when_stopping, **kwargs)

    monkeypatch.setattr("nn_gpu.cli.train.Network", Wrecking)
    model, history = tmp_path / "m.npz", tmp_path / "h.json"
    rc, out, _ = run(*TINY, "--epochs", "5", "--eta", "1e-12", "--early-stopping", "1",
                     "--seed", "2", "--save", str(model), "--history", str(history))
    lines = out.splitlines()
    assert rc == 0
    figures = epoch_figures("\n".join(lines))
    assert len(figures) == 2 and figures[0] == figures[1]
    stop = lines.index("Stopped after epoch 2: early stopping: no better validation accuracy "
                       "in 1 epochs; keeping epoch 1's weights")
    assert lines[stop - 1].startswith("Epoch 2: ")
    assert lines[-3:-1] == [f"Best test accuracy: {figures[0][0] / 100:.2f}% (epoch 1)",
                            f"Best validation accuracy: {figures[0][1] / 100:.2f}% (epoch 1)"]
    assert lines[-1] == f"Test accuracy with the kept weights: {figures[0][0] / 100:.2f}% (epoch 1)"
    doc = json.loads(history.read_text())
    assert "stopped" in doc["epochs"][-1] and "stopped" not in doc["epochs"][0]
    assert doc["kept_weights"] == {"epoch": 1, "test_accuracy": figures[0][0] / 10000}
    rc, out, _ = run("evaluate", model, "--data", DATA)
    assert rc == 0 and out.startswith(f"test accuracy: {figures[0][0]} / 10000")


@pytest.mark.slow
def test_eta_schedule_shows_eta_and_stops_at_eta0_over_128():
    rc, out, _ = run(*TINY, "--epochs", "12", "--eta", "1e-12", "--eta-schedule", "1",
                     "--monitor")
    lines = out.splitlines()
    assert rc == 0
    etas = [EPOCH_LINE.match(line)[6] for line in lines if line.startswith("Epoch")]
    # unchanged accuracy: halved after every epoch but the first, stop at eta0/128
    assert etas == [None, None, "5e-13", "2.5e-13", "1.25e-13", "6.25e-14", "3.125e-14",
                    "1.5625e-14"]
    assert lines[-3] == ("Stopped after epoch 8: eta schedule: eta has fallen to eta0/128 "
                         "(7.8125e-15)")
    assert_summary(lines)


@pytest.mark.slow
def test_evaluate_a_relu_softmax_model(tmp_path):
    model = tmp_path / "m.npz"
    rc, out, _ = run(*TINY, "--epochs", "1", "--activation", "relu", "--cost", "log_likelihood",
                     "--init", "scaled", "--eta", "0.1", "--save", str(model))
    lines = out.splitlines()
    assert rc == 0
    (test, _), = epoch_figures("\n".join(lines))
    assert Network.load(model).activation == "relu"
    rc, out, _ = run("evaluate", model, "--data", DATA)
    assert rc == 0 and out.startswith(f"test accuracy: {test} / 10000")


def test_presets_table_lists_every_preset_with_the_books_figure():
    from nn_gpu.presets.network import PRESETS

    rc, out, _ = run("presets")
    assert rc == 0
    fully_connected, convolutional = out.split("\n\n")
    rows = {line.split()[0]: line for line in fully_connected.splitlines()[1:]
            if not line.startswith(" ")}
    assert list(rows) == list(PRESETS)
    assert "ch6-conv1     98.78% test" in convolutional and "ch6-dropout" in convolutional
    for name, preset in PRESETS.items():
        figure = preset["book_accuracy"]
        expected = "-" if figure is None else f"{figure:.2f}% {preset['book_split']}"
        assert rows[name].split()[1:3 if figure else 2] == expected.split()
    assert "95.42% test" in rows["ch1-30"] and "98.04% validation" in rows["ch3-l2-60"]
