"""`nn-gpu train --digit D` (a one-output detector of one digit), `evaluate`
of such a model, and `plot HISTORY.json` without the kind, as a user runs them."""

import json
import re

import numpy
import pytest
from conftest import mnist_dir, needs_mnist, one_error, run

from nn_gpu import Network
from nn_gpu.cli import main
from nn_gpu.data.mnist import load_mnist, one_vs_rest

DATA = mnist_dir()
pytestmark = needs_mnist

RUN = ["--data", str(DATA), "--train-size", "2000", "--epochs", "2", "--seed", "3"]
DETECTOR_LINE = re.compile(
    r"^Epoch (\d): (\d+) / 10000  \(precision (\d+\.\d\d)%, recall (\d+\.\d\d)%, "
    r"validation \d+ / 10000, train cost \d\.\d{4}, \d+\.\d\d s\)$")
BASELINE_9 = ("Detecting 9s: 1009 of the 10000 test images are 9s, so always answering "
              "\"not a 9\" scores 89.91%: the baseline accuracy to beat; precision and recall "
              "show what it misses")


def assert_one_line_error(ran, status, *fragments):
    """A command that failed with ``status``, printing only one error line
    holding every fragment."""
    err = one_error(ran.err, ran.status, status)
    assert ran.out == "" and all(fragment in err for fragment in fragments), err


@pytest.fixture(scope="module")
def nine(tmp_path_factory):
    """One detector run of the digit 9 with --history and --save."""
    tmp = tmp_path_factory.mktemp("nine")
    history, model = tmp / "history.json", tmp / "nine.npz"
    rc, out, _ = run("train", "--digit", "9", *RUN, "--history", history, "--save", model)
    return rc, out.splitlines(), history, model


def test_train_digit_reports_precision_recall_and_the_baseline(nine):
    rc, lines, history_file, _ = nine
    assert rc == 0
    assert lines[0].startswith("Training [784, 30, 1] (quadratic cost")
    assert lines[1] == BASELINE_9
    epochs = [DETECTOR_LINE.match(line) for line in lines[2:4]]
    assert all(epochs), lines
    history = json.loads(history_file.read_text())
    assert history["config"]["digit"] == 9 and history["config"]["sizes"] == [784, 30, 1]
    for match, entry in zip(epochs, history["epochs"]):
        assert int(match[2]) == round(10000 * entry["test_accuracy"])
        assert match[3] == f"{100 * entry['test_precision']:.2f}"
        assert match[4] == f"{100 * entry['test_recall']:.2f}"
        assert 0 < entry["validation_precision"] <= 1 and 0 < entry["validation_recall"] <= 1
    best = max(history["epochs"], key=lambda e: e["test_accuracy"])
    assert lines[-2] == (f"Best test accuracy: {100 * best['test_accuracy']:.2f}% (epoch "
                         f"{best['epoch']}, precision {100 * best['test_precision']:.2f}%, "
                         f"recall {100 * best['test_recall']:.2f}%)")
    assert best["test_accuracy"] > 0.8991  # better than always saying "not a 9"


def test_the_saved_detector_scores_as_printed(nine, mnist):
    _, _, history_file, model = nine
    last = json.loads(history_file.read_text())["epochs"][-1]
    net = Network.load(model, backend="numpy")
    assert net.sizes == [784, 30, 1] and net.last_training["digit"] == 9
    test = one_vs_rest(mnist[2], 9)
    assert net.evaluate(test) == round(10000 * last["test_accuracy"])
    assert net.precision_recall(test) == (last["test_precision"], last["test_recall"])


@pytest.mark.slow
def test_evaluate_a_detector(nine):
    _, _, history_file, model = nine
    last = json.loads(history_file.read_text())["epochs"][-1]
    rc, out, _ = run("evaluate", model, "--data", DATA)
    assert rc == 0
    lines = out.splitlines()
    correct = round(10000 * last["test_accuracy"])
    assert lines == [
        f"test accuracy: {correct} / 10000 ({correct / 100:.2f}%)",
        f"detecting 9s: precision {100 * last['test_precision']:.2f}%, recall "
        f"{100 * last['test_recall']:.2f}%; always answering \"not a 9\" scores 89.91%"]
    # As a detector of 4s (which it is not): 982 of the test digits are 4s.
    rc, out, _ = run("evaluate", model, "--data", DATA, "--digit", "4")
    assert rc == 0 and "always answering \"not a 4\" scores 90.18%" in out


def test_evaluate_needs_to_know_the_digit(tmp_path):
    detector, digits = tmp_path / "detector.npz", tmp_path / "digits.npz"
    Network([784, 5, 1], seed=0).save(detector)  # trained from Python: no digit saved
    Network([784, 5, 10], seed=0).save(digits)
    assert_one_line_error(run("evaluate", detector, "--data", DATA), 1,
                          f"{detector} has one output neuron", "pass --digit D")
    assert_one_line_error(run("evaluate", digits, "--data", DATA, "--digit", "3"), 1,
                          "classifies all ten digits")


@pytest.mark.parametrize("argv, message", [
    (["--digit", "10"], "argument --digit: expected a digit 0-9, got '10'"),
    (["--digit", "nine"], "argument --digit: expected a digit 0-9, got 'nine'"),
    (["--digit", "9", "--sizes", "784", "30", "10"],
     "the last 1 (one output neuron: is it the digit or not)"),
    (["--sizes", "784", "30", "1"], "a single output neuron detects one digit: add --digit D"),
    (["--digit", "9", "--cost", "log_likelihood"],
     "--digit: cost 'log_likelihood' puts a softmax on the output layer"),
    (["--digit", "9", "--preset", "best-mlp"], "--digit: cost 'log_likelihood'"),
])
def test_bad_detector_options_are_usage_errors(argv, message):
    assert_one_line_error(run("train", "--data", DATA, *argv), 2, message)


def test_a_preset_becomes_a_detector_with_one_output(monkeypatch, capsys):
    """--digit with --preset ch3-l2 trains [784, 100, 1] with the preset's other options."""
    seen = {}

    class Stop(Exception):
        pass

    def record(self, *args, **kwargs):
        seen["sizes"], seen["cost"] = self.sizes, self.cost.name
        raise Stop
    monkeypatch.setattr(Network, "sgd", record)
    with pytest.raises(Stop):
        main(["train", "--digit", "0", "--preset", "ch3-l2", *RUN])
    assert seen == {"sizes": [784, 100, 1], "cost": "cross_entropy"}
    assert capsys.readouterr().out.splitlines()[1].startswith(
        "Detecting 0s: 980 of the 10000 test images are 0s")


# ------------------------------------------------ plot HISTORY.json -o FILE
@pytest.mark.slow
def test_plot_a_history_without_naming_the_kind(nine, tmp_path):
    pytest.importorskip("matplotlib")
    _, _, history_file, _ = nine
    renamed = tmp_path / "run-log.txt"  # judged by its content, not its name
    renamed.write_bytes(history_file.read_bytes())
    for source, png in ((history_file, tmp_path / "a.png"), (renamed, tmp_path / "b.png")):
        rc, out, _ = run("plot", source, "-o", png)
        assert rc == 0 and out == f"Learning curves (2 epochs) written to {png}\n"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_of_a_file_that_is_no_history_says_so(nine, tmp_path):
    _, _, _, model = nine
    assert_one_line_error(run("plot", model, "-o", tmp_path / "x.png"), 1,
                          f"plot {model}: neither a plot kind (curves, misclassified, "
                          "confusion, weights) nor a history file", "not UTF-8")
    assert not (tmp_path / "x.png").exists()


def test_one_vs_rest_labels():
    labels = numpy.array([9, 0, 9, 3])
    X = numpy.zeros((4, 784))
    assert one_vs_rest((X, labels), 9)[1].tolist() == [1, 0, 1, 0]
    assert one_vs_rest((X, labels), 3)[1].dtype == numpy.int64


def test_load_mnist_counts_match_the_baselines():
    """The figures the README quotes: 1009 nines, 982 fours, 980 zeros in the test set."""
    test = load_mnist(DATA)[2][1]
    assert [(test == d).sum() for d in (9, 4, 0)] == [1009, 982, 980]


@pytest.mark.slow
def test_a_detector_run_resumes_as_a_detector(tmp_path):
    """--resume takes --digit from the checkpoint: 1 + 1 epochs == 2 epochs, bit for bit."""
    small = ["train", "--digit", "3", "--data", str(DATA), "--train-size", "500", "--seed", "2"]
    assert run(*small, "--epochs", "2", "--save", tmp_path / "straight.npz").status == 0
    assert run(*small, "--epochs", "1", "--checkpoint-dir", tmp_path / "ck").status == 0
    rc, out, _ = run("train", "--resume", tmp_path / "ck", "--epochs", "2",
                     "--save", tmp_path / "resumed.npz")
    assert rc == 0
    lines = out.splitlines()
    resumed_at = lines.index(f"Resuming after epoch 1 from {tmp_path / 'ck' / 'checkpoint.npz'}, "
                             "with --epochs 2 (was 1)")
    assert lines[resumed_at + 2].startswith("Detecting 3s: 1010 of the 10000 test images are 3s")
    straight, resumed = (Network.load(tmp_path / name, backend="numpy")
                         for name in ("straight.npz", "resumed.npz"))
    assert resumed.last_training["digit"] == 3
    for a, b in zip(straight.weights + straight.biases, resumed.weights + resumed.biases):
        numpy.testing.assert_array_equal(a, b)


def test_predict_with_a_detector(nine, mnist, tmp_path):
    """`predict` answers "a 9" / "not a 9" with the probability of that answer."""
    Image = pytest.importorskip("PIL.Image")
    from nn_gpu.model.metrics import classify
    from nn_gpu.reading.images import to_mnist

    _, _, _, model = nine
    X, labels = mnist[2]
    paths = []
    for i in (int(numpy.argmax(labels == 9)), int(numpy.argmax(labels == 1))):
        path = tmp_path / f"digit-{labels[i]}.png"
        ink = X[i].reshape(28, 28)
        Image.fromarray(numpy.uint8(255 * (1 - ink))).resize((112, 112)).save(path)
        paths.append(path)
    rc, out, _ = run("predict", model, *paths, "--backend", "numpy")
    assert rc == 0
    lines = out.splitlines()
    net = Network.load(model, backend="numpy")
    expected = classify(net, numpy.stack([to_mnist(p) for p in paths]))
    for path, line, (label, probs) in zip(paths, lines, expected):
        answer = "a 9" if label else "not a 9"
        assert line == f"{path}: {answer} ({probs[label]:.3f})"
    assert lines[1].endswith(")") and ": not a 9 (" in lines[1]  # a 1 is not a 9
