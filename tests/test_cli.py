"""End-to-end tests of the `nn-gpu` command line, at the level a user sees it.

Most tests call ``main([...])`` in-process on a small slice of the genuine
MNIST data; one runs ``python -m nn_gpu`` in a subprocess to prove the entry
point works. Nothing here touches the network.
"""

import json
import os
import re
import subprocess
import sys
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import pytest

from nn_gpu import Network, cupy_status
from nn_gpu.cli import main
from nn_gpu.mnist import DATA_ENV_VAR, FILES

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get(DATA_ENV_VAR) or Path(__file__).resolve().parents[2] / "shared/data/mnist")

pytestmark = pytest.mark.skipif(
    not all((DATA / name).is_file() for name in FILES.values()),
    reason=f"MNIST not found in {DATA} (set {DATA_ENV_VAR} to a directory with the four files)")

SMALL = ["--data", str(DATA), "--train-size", "2000", "--epochs", "2", "--sizes", "784", "16", "10"]
EPOCH_LINE = re.compile(r"^Epoch (\d+): (\d+) / 10000  \(validation (\d+) / 10000, "
                        r"train cost \d+\.\d{4}, \d+\.\d{2} s\)$")
BEST_LINE = re.compile(r"^Best test accuracy: \d+\.\d{2}% \(epoch \d\)$")


def epoch_figures(out):
    """The (test, validation) correct counts of each epoch line."""
    return [(int(m[2]), int(m[3])) for m in map(EPOCH_LINE.match, out.splitlines()) if m]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small training run with --history and --save, shared by several tests."""
    tmp = tmp_path_factory.mktemp("train")
    history, model = tmp / "history.json", tmp / "model.npz"
    out = StringIO()
    with redirect_stdout(out):
        rc = main(["train", *SMALL, "--seed", "3", "--history", str(history), "--save", str(model)])
    return rc, out.getvalue(), history, model


def test_train_prints_header_epoch_lines_and_best(trained):
    rc, out, _, _ = trained
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith("Training [784, 16, 10] (quadratic cost, batched, float32) on numpy")
    assert [EPOCH_LINE.match(line)[1] for line in lines if line.startswith("Epoch")] == ["1", "2"]
    assert BEST_LINE.match(lines[-1]), lines[-1]


def test_history_json_schema(trained):
    _, out, history, _ = trained
    doc = json.loads(history.read_text())
    config = doc["config"]
    assert config["sizes"] == [784, 16, 10] and config["epochs"] == 2
    assert config["train_size"] == 2000 and config["seed"] == 3
    assert config["backend"] == "numpy" and config["data"] == str(DATA)
    assert {"batch_size", "eta", "cost", "dtype", "init", "method"} <= config.keys()
    assert [e["epoch"] for e in doc["epochs"]] == [1, 2]
    for entry, (test, validation) in zip(doc["epochs"], epoch_figures(out)):
        assert 0 <= entry["test_accuracy"] <= 1 and 0 <= entry["validation_accuracy"] <= 1
        assert entry["test_accuracy"] == test / 10000
        assert entry["validation_accuracy"] == validation / 10000
        assert entry["train_cost"] > 0 and entry["seconds"] >= 0


def test_saved_model_evaluates_to_last_epoch_accuracy(trained, capsys):
    _, out, _, model = trained
    last_test, last_validation = epoch_figures(out)[-1]
    assert main(["evaluate", str(model), "--data", str(DATA)]) == 0
    assert capsys.readouterr().out.strip() == (
        f"test accuracy: {last_test} / 10000 ({last_test / 100:.2f}%)")
    assert main(["evaluate", str(model), "--data", str(DATA), "--split", "validation"]) == 0
    assert capsys.readouterr().out.startswith(f"validation accuracy: {last_validation} / 10000")


def test_quiet_prints_only_the_final_line(capsys):
    assert main(["train", *SMALL, "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and BEST_LINE.match(lines[0])


def test_per_example_and_batched_agree(capsys):
    figures = {}
    for method in ("per_example", "batched"):
        args = ["train", "--data", str(DATA), "--sizes", "784", "16", "10", "--dtype", "float64",
                "--seed", "1", "--train-size", "500", "--epochs", "2", "--method", method]
        assert main(args) == 0
        figures[method] = epoch_figures(capsys.readouterr().out)
    assert len(figures["batched"]) == 2
    assert figures["per_example"] == figures["batched"]


def test_ctrl_c_keeps_history_and_returns_130(tmp_path, capsys, monkeypatch):
    """A KeyboardInterrupt after epoch 2 of 5: the file holds both epochs."""

    class InterruptedNetwork(Network):
        def sgd(self, *args, callback, **kwargs):
            def stop_after_two(record):
                callback(record)
                if record["epoch"] == 2:
                    raise KeyboardInterrupt
            return super().sgd(*args, callback=stop_after_two, **kwargs)

    monkeypatch.setattr("nn_gpu.cli.Network", InterruptedNetwork)
    history = tmp_path / "h.json"
    args = ["train", "--data", str(DATA), "--train-size", "500", "--epochs", "5",
            "--sizes", "784", "16", "10", "--history", str(history)]
    assert main(args) == 130
    captured = capsys.readouterr()
    assert captured.err == f"Interrupted after epoch 2; history kept in {history}\n"
    assert len(json.loads(history.read_text())["epochs"]) == 2
    assert list(tmp_path.iterdir()) == [history]  # no temporary file left behind


def assert_one_line_error(rc, capsys, mentions=""):
    captured = capsys.readouterr()
    assert rc != 0
    assert len(captured.err.splitlines()) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert "Epoch" not in captured.out  # training never started
    assert mentions in captured.err
    return captured.err


@pytest.mark.parametrize("bad, status, mentions", [
    (["--eta", "-1"], 2, "--eta"),
    (["--eta", "nan"], 2, "--eta"),
    (["--sizes", "100", "10"], 2, "784"),
    (["--sizes", "784", "0", "10"], 2, "--sizes"),
    (["--epochs", "0"], 2, "--epochs"),
    (["--batch-size", "600"], 2, "--batch-size"),
    (["--train-size", "50001"], 2, "--train-size"),
    (["--backend", "tpu"], 2, "tpu"),
    (["--data", "/nonexistent"], 1, "/nonexistent"),
    (["--history", "/nonexistent/dir/h.json"], 1, "/nonexistent/dir"),
    (["--save", "/nonexistent/dir/m.npz"], 1, "/nonexistent/dir"),
])
def test_bad_train_arguments_give_one_line(bad, status, mentions, capsys):
    rc = main(["train", "--data", str(DATA), "--train-size", "500", *bad])
    assert rc == status
    assert_one_line_error(rc, capsys, mentions)


def test_usage_error_format(capsys):
    err = assert_one_line_error(main(["train", "--epochs", "0"]), capsys)
    assert err.startswith("nn-gpu train: error: ") and err.rstrip().endswith("(see --help)")


def test_no_subcommand_prints_help_and_returns_2(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().err


def test_cupy_backend_without_gpu_fails_in_one_line(capsys):
    if cupy_status()[0]:
        pytest.skip("CuPy is usable here")
    rc = main(["train", *SMALL, "--backend", "cupy"])
    assert rc == 1
    err = assert_one_line_error(rc, capsys, "CuPy")
    assert err.startswith("nn-gpu: error: ")


def test_evaluate_non_model_file(tmp_path, capsys):
    bogus = tmp_path / "model.npz"
    bogus.write_text("not a model\n")
    assert_one_line_error(main(["evaluate", str(bogus), "--data", str(DATA)]), capsys, str(bogus))


def test_evaluate_missing_file(tmp_path, capsys):
    missing = tmp_path / "missing.npz"
    assert_one_line_error(main(["evaluate", str(missing), "--data", str(DATA)]), capsys, "not found")


def test_evaluate_rejects_non_mnist_model(tmp_path, capsys):
    model = tmp_path / "xor.npz"
    Network([2, 3, 1], seed=0).save(model)
    assert_one_line_error(main(["evaluate", str(model), "--data", str(DATA)]), capsys, "784")


def test_info_mentions_numpy_and_auto(capsys):
    assert main(["info", "--data", str(DATA)]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "auto" in out
    assert "all 4 MNIST files present" in out


def test_python_dash_m_entry_point(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), DATA_ENV_VAR: str(DATA)}
    history = tmp_path / "h.json"
    result = subprocess.run(
        [sys.executable, "-m", "nn_gpu", "train", "--train-size", "500", "--epochs", "1",
         "--sizes", "784", "16", "10", "--history", str(history)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(epoch_figures(result.stdout)) == 1
    assert BEST_LINE.match(result.stdout.splitlines()[-1])
    assert json.loads(history.read_text())["config"]["data"] == str(DATA)
