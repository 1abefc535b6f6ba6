"""`nn-gpu plot` and the functions behind it, on a small model trained here.

The model is [784, 16, 10] after one epoch on 2,000 MNIST examples (about a
second). The command runs in-process through conftest's ``run``.
"""

import builtins
import json
import re
from pathlib import Path

import numpy
import pytest
from conftest import mnist_dir, needs_mnist, run

from nn_gpu.analysis import plots
from nn_gpu.errors import NNGpuError
from nn_gpu.io.history import HistoryError
from nn_gpu.model import metrics
from nn_gpu.model.network import Network

pytest.importorskip("matplotlib")
from matplotlib.image import imread  # noqa: E402

DATA = mnist_dir()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ERROR_LINE = re.compile(r"^nn-gpu: error: [^\n]+\n$")


def check_png(path, size_inches=None, dpi=plots.DEFAULT_DPI):
    """A complete PNG of more than 5 KB that matplotlib reads back, of the
    figure's size in pixels when given; no temporary file left beside it."""
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5_000
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    if size_inches is not None:
        width, height = (round(v * dpi) for v in size_inches)
        assert pixels.shape[:2] == (height, width)
    assert not [p.name for p in Path(path).parent.iterdir() if p.name.endswith(".tmp")]
    return pixels


def synthetic_history(epochs=5, costs=True, eta_halved_at=None):
    entries = []
    for e in range(1, epochs + 1):
        entry = {"epoch": e, "validation_accuracy": 0.9 + 0.01 * e,
                 "test_accuracy": 0.89 + 0.01 * e, "seconds": 0.1,
                 "eta": 0.25 if eta_halved_at and e >= eta_halved_at else 0.5}
        if costs:
            entry.update(train_cost=0.5 / e, validation_cost=0.6 / e, test_cost=0.62 / e,
                         train_accuracy=0.91 + 0.012 * e)
        entries.append(entry)
    config = {"preset": "ch3-l2", "sizes": [784, 100, 10], "cost": "cross_entropy", "eta": 0.5,
              "batch_size": 10, "l2": 5.0, "train_examples": 50000}
    return {"config": config, "epochs": entries}


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def model(mnist, tmp_path_factory):
    """(path, network) of [784, 16, 10] trained 1 epoch on 2,000 examples."""
    (X, y), _, _ = mnist
    net = Network([784, 16, 10], backend="numpy", seed=0)
    net.sgd((X[:2000], y[:2000]), 1, 10, 3.0)
    path = tmp_path_factory.mktemp("model") / "m.npz"
    net.save(path)
    return path, net


@pytest.fixture
def history_file(tmp_path):
    path = tmp_path / "history.json"
    path.write_text(json.dumps(synthetic_history()))
    return path


# ------------------------------------------------------------ the numbers
@needs_mnist
def test_confusion_matrix_counts_every_example(model, mnist, backend):
    path, _ = model
    net = Network.load(path, backend=backend)
    _, validation, test = mnist
    for X, labels in (test, (validation[0][:777], validation[1][:777])):
        counts = metrics.confusion_matrix(net, (X, labels))
        assert isinstance(counts, numpy.ndarray) and counts.shape == (10, 10)
        assert counts.dtype == numpy.int64 and counts.min() >= 0
        assert counts.sum() == len(labels)
        assert numpy.trace(counts) == net.evaluate((X, labels))
        # rows are the true digits, columns the predicted ones
        assert (counts.sum(axis=1) == numpy.bincount(labels, minlength=10)).all()
        predicted = metrics.predictions(net, (X, labels))
        assert (counts.sum(axis=0) == numpy.bincount(predicted, minlength=10)).all()


def test_confusion_matrix_on_a_hand_made_network():
    # 2 inputs, 2 outputs: output j copies input j, so the prediction is argmax x.
    net = Network([2, 2], backend="numpy", dtype="float64")
    net.weights[0][...] = numpy.eye(2) * 10
    net.biases[0][...] = 0
    X = numpy.array([[1, 0], [0, 1], [1, 0], [1, 0], [0, 1.0]])
    labels = numpy.array([0, 1, 1, 0, 0])
    assert metrics.confusion_matrix(net, (X, labels)).tolist() == [[2, 1], [1, 1]]


def test_confusion_matrix_rows_are_true_columns_predicted():
    # Asymmetric, so a transposed result fails: output j copies input j and
    # output 2 has a bias of 0.5, so (1, 0) -> 0, (0, 1) -> 1, (0, 0) -> 2.
    net = Network([2, 3], backend="numpy", dtype="float64")
    net.weights[0][...] = [[10, 0], [0, 10], [0, 0]]
    net.biases[0][...] = [0, 0, 0.5]
    X = numpy.array([[1, 0], [1, 0], [0, 1], [0, 0.0]])
    labels = numpy.array([1, 1, 1, 0])
    assert metrics.predictions(net, (X, labels)).tolist() == [0, 0, 1, 2]
    assert metrics.confusion_matrix(net, (X, labels)).tolist() == [[0, 0, 1], [2, 1, 0],
                                                                   [0, 0, 0]]


def test_grid_shape():
    assert [plots.grid_shape(n) for n in (1, 2, 16, 20, 24, 30, 36)] == [
        (1, 1), (1, 2), (4, 4), (4, 5), (4, 6), (5, 6), (6, 6)]
    for n in range(1, 120):
        rows, cols = plots.grid_shape(n)
        assert rows * cols >= n > (rows - 1) * cols and rows <= cols


# ---------------------------------------------------- pictures, from Python
@needs_mnist
def test_plot_misclassified_titles_the_first_wrong_digits(model, mnist, tmp_path):
    _, net = model
    X, labels = mnist[2]
    predicted = numpy.argmax(net.feedforward(X), axis=1)
    wrong = numpy.flatnonzero(predicted != labels)
    assert len(wrong) > 12
    fig = plots.plot_misclassified(net, (X, labels), tmp_path / "m.png", count=12)
    check_png(tmp_path / "m.png", fig.get_size_inches())
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 12
    for ax, index in zip(axes, wrong[:12]):
        assert ax.get_title() == f"true {labels[index]} / pred {predicted[index]}"
        image = ax.images[0]
        # the digit upright (row 0 at the top) and black ink on white paper
        assert (image.get_array() == X[index].reshape(28, 28)).all()
        assert image.origin == "upper"
        assert image.get_cmap().name == "gray_r" and image.get_clim() == (0.0, 1.0)
    assert fig.get_suptitle().startswith(f"{len(wrong)} of 10000 test digits misclassified")


@pytest.mark.slow
@needs_mnist
def test_plot_weights_draws_first_layer_rows_centred_at_zero(model, tmp_path):
    _, net = model
    fig = plots.plot_weights(net, tmp_path / "w.png", count=5)
    check_png(tmp_path / "w.png", fig.get_size_inches())
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 5
    for i, image in enumerate(images):
        assert numpy.allclose(image.get_array(), net.weights[0][i].reshape(28, 28))
        low, high = image.get_clim()
        assert low == -high < 0
    # more neurons than the layer has: all of them
    fig = plots.plot_weights(net, tmp_path / "w.png", count=100)
    assert len([ax for ax in fig.axes if ax.images]) == 16
    assert "all 16 hidden neurons" in fig.get_suptitle()


@needs_mnist
def test_plot_confusion_shows_the_matrix(model, mnist, tmp_path):
    _, net = model
    fig = plots.plot_confusion(net, mnist[2], tmp_path / "c.png")
    check_png(tmp_path / "c.png", plots.CONFUSION_SIZE)
    ax = fig.axes[0]
    counts = metrics.confusion_matrix(net, mnist[2])
    assert (ax.images[0].get_array().filled(0) == counts).all()
    shown = sorted(int(t.get_text()) for t in ax.texts)
    assert shown == sorted(counts[counts > 0].tolist())
    assert ax.get_xlabel() == "predicted digit" and ax.get_ylabel() == "true digit"
    assert f"{numpy.trace(counts)} / 10000 correct" in ax.get_title()


def test_plot_curves_from_a_synthetic_history(tmp_path):
    fig = plots.plot_curves(synthetic_history(eta_halved_at=4), tmp_path / "c.png", dpi=80)
    check_png(tmp_path / "c.png", plots.CURVES_SIZE, dpi=80)
    cost_ax, acc_ax = fig.axes
    assert [l.get_label() for l in cost_ax.get_legend().get_lines()] == [
        "train", "validation", "test", "eta changed"]
    labels = [l.get_label() for l in acc_ax.get_legend().get_lines()]
    assert labels == ["train", "validation (best 95.00%, epoch 5)", "test"]
    test_line = next(l for l in acc_ax.get_lines() if l.get_label() == "test")
    assert list(test_line.get_xdata()) == [1, 2, 3, 4, 5]
    assert numpy.allclose(test_line.get_ydata(), [90, 91, 92, 93, 94])
    title = fig.get_suptitle()
    for part in ("[784, 100, 10]", "cross_entropy cost", "eta 0.5", "l2 5", "preset ch3-l2"):
        assert part in title


def test_plot_curves_without_costs_or_config(tmp_path):
    history = synthetic_history(epochs=1, costs=False)
    del history["config"]
    fig = plots.plot_curves(history, tmp_path / "c.png")
    check_png(tmp_path / "c.png", plots.CURVES_SIZE)
    acc_ax, = fig.axes  # no empty cost panel: the accuracy alone, and a note
    assert any("no costs recorded" in text.get_text() for text in fig.texts)
    assert len(acc_ax.get_lines()) == 2  # validation and test, one epoch each


def test_plot_curves_skips_values_not_measured(tmp_path):
    history = synthetic_history(epochs=3)
    history["epochs"][1]["train_cost"] = None
    fig = plots.plot_curves(history, tmp_path / "c.png")
    train = next(l for l in fig.axes[0].get_lines() if l.get_label() == "train")
    assert list(train.get_xdata()) == [1, 3]


def test_plot_curves_accepts_a_path(history_file, tmp_path):
    plots.plot_curves(history_file, tmp_path / "c.png")
    check_png(tmp_path / "c.png", plots.CURVES_SIZE)


def test_an_existing_png_is_untouched_when_plotting_fails(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    path = tmp_path / "curves.png"
    path.write_bytes(b"the old picture")

    def broken_savefig(self, handle, **kwargs):
        handle.write(PNG_SIGNATURE + b"half a picture")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(RuntimeError, match="disk on fire"):
        plots.plot_curves(synthetic_history(), path)
    assert path.read_bytes() == b"the old picture"
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]  # no temporary file left
    monkeypatch.undo()
    with pytest.raises(HistoryError):  # fails before the file is opened
        plots.plot_curves({"epochs": []}, path)
    assert path.read_bytes() == b"the old picture"


# ------------------------------------------------------------ the command
@pytest.mark.slow
@needs_mnist
@pytest.mark.parametrize("mode, extra, size", [
    ("misclassified", [], plots.grid_figsize(36)),
    ("misclassified", ["--count", "7", "--split", "validation"], plots.grid_figsize(7)),
    ("confusion", [], plots.CONFUSION_SIZE),
    ("confusion", ["--split", "validation", "--dpi", "60"], plots.CONFUSION_SIZE),
    ("weights", [], plots.grid_figsize(16)),  # --count 30 of 16 hidden neurons: all 16
    ("weights", ["--count", "6"], plots.grid_figsize(6)),
])
def test_model_modes_write_a_png(mode, extra, size, model, tmp_path):
    path, _ = model
    out_png = tmp_path / f"{mode}.png"
    argv = ([mode, path, "-o", out_png, "--data", DATA, "--backend", "numpy", *extra]
            if mode != "weights" else [mode, path, "-o", out_png, *extra])
    rc, out, _ = run("plot", *argv)
    assert rc == 0
    assert out.count("\n") == 1 and str(out_png) in out
    if mode == "weights":
        size = (size[0] + plots.COLORBAR_WIDTH, size[1])
    dpi = int(extra[extra.index("--dpi") + 1]) if "--dpi" in extra else plots.DEFAULT_DPI
    check_png(out_png, size, dpi)
    if "validation" in extra and mode == "misclassified":
        assert "of 10000 validation digits misclassified" in out


def test_curves_mode_writes_a_png(history_file, tmp_path):
    out_png = tmp_path / "curves.png"
    rc, out, _ = run("plot", "curves", history_file, "-o", out_png)
    assert rc == 0
    assert out == f"Learning curves (5 epochs) written to {out_png}\n"
    check_png(out_png, plots.CURVES_SIZE)


@pytest.mark.parametrize("content, message", [
    (None, "history file not found"),
    ("", "not a JSON history file (Expecting value at line 1 column 1)"),
    ('{"epochs": [', "not a JSON history file"),
    (b"\xff\xfe\x00", "not a JSON history file (not UTF-8 text)"),
    ("[1, 2]", 'expected a JSON object with "epochs"'),
    ('{"config": {}}', 'expected a JSON object with "epochs"'),
    ('{"config": {}, "epochs": []}', "no epochs recorded yet"),
    ('{"epochs": {"1": 0.9}}', '"epochs" must be a list'),
    ('{"epochs": [3]}', "epoch entry 1 is not a JSON object"),
    ('{"epochs": [{"epoch": 1, "test_accuracy": "high"}]}', "test_accuracy is not a number"),
    ('{"config": [], "epochs": [{"epoch": 1}]}', '"config" must be a JSON object'),
])
def test_bad_history_files_are_one_line_errors(content, message, tmp_path):
    history = tmp_path / "h.json"
    if isinstance(content, bytes):
        history.write_bytes(content)
    elif content is not None:
        history.write_text(content)
    out_png = tmp_path / "c.png"
    rc, out, err = run("plot", "curves", str(history), "-o", str(out_png))
    assert rc == 1 and out == ""
    assert ERROR_LINE.match(err), err
    assert err.startswith(f"nn-gpu: error: {history}: ") and message in err, err
    assert not out_png.exists()


def test_history_that_is_a_directory(tmp_path):
    rc, _, err = run("plot", "curves", str(tmp_path), "-o", str(tmp_path / "c.png"))
    assert rc == 1 and ERROR_LINE.match(err) and "is a directory" in err


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: KIND"),
    (["histogram"], "argument KIND: invalid choice: 'histogram'"),
    (["curves", "h.json"], "the following arguments are required: -o/--output"),
    (["curves", "-o", "c.png"], "the following arguments are required: HISTORY"),
    (["misclassified", "m.npz", "-o", "g.png", "--count", "0"],
     "argument --count: must be a positive integer, got 0"),
    (["weights", "m.npz", "-o", "w.png", "--count", "many"],
     "argument --count: expected a positive integer, got 'many'"),
    (["confusion", "m.npz", "-o", "c.png", "--split", "train"],
     "argument --split: invalid choice: 'train'"),
    (["confusion", "m.npz", "-o", "c.png", "--backend", "tpu"],
     "argument --backend: invalid choice: 'tpu'"),
    (["curves", "h.json", "-o", "c.png", "--dpi", "0"], "argument --dpi: must be a positive integer"),
    (["weights", "m.npz", "-o", "w.png", "--data", "DIR"], "unrecognized arguments: --data"),
])
def test_bad_arguments_are_one_line_usage_errors(argv, message):
    rc, out, err = run("plot", *argv)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1, err
    assert re.match(r"nn-gpu( plot( \w+)?)?: error: ", err) and message in err, err


@pytest.mark.parametrize("mode", ["misclassified", "confusion", "weights"])
def test_a_missing_model_is_a_one_line_error(mode, tmp_path):
    rc, _, err = run("plot", mode, str(tmp_path / "nope.npz"), "-o", str(tmp_path / "p.png"))
    assert rc == 1 and ERROR_LINE.match(err)
    assert "nope.npz: model file not found" in err
    assert not (tmp_path / "p.png").exists()


def test_an_unwritable_output_fails_before_any_work(tmp_path):
    # the model does not exist either: the output path is checked first
    rc, _, err = run("plot", "confusion", str(tmp_path / "nope.npz"),
                     "-o", str(tmp_path / "no-such-dir" / "c.png"))
    assert rc == 1 and ERROR_LINE.match(err)
    assert "--output" in err and "does not exist" in err


@needs_mnist
def test_a_model_that_is_not_for_mnist(tmp_path):
    path = tmp_path / "small.npz"
    Network([4, 3, 2], backend="numpy", seed=0).save(path)
    rc, _, err = run("plot", "weights", str(path), "-o", str(tmp_path / "w.png"))
    assert rc == 1 and ERROR_LINE.match(err) and "do not fit MNIST" in err


def test_api_rejects_bad_counts_and_non_image_networks(tmp_path):
    net = Network([784, 4, 10], backend="numpy", seed=0)
    with pytest.raises(NNGpuError, match="count must be a positive integer"):
        plots.plot_weights(net, tmp_path / "w.png", count=0)
    with pytest.raises(NNGpuError, match="784 inputs"):
        plots.plot_weights(Network([5, 3, 2], backend="numpy"), tmp_path / "w.png")
    assert not list(tmp_path.iterdir())


def test_without_matplotlib_is_one_line(history_file, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    for argv in (["curves", str(history_file)], ["weights", str(tmp_path / "m.npz")]):
        rc, _, err = run("plot", *argv, "-o", str(tmp_path / "p.png"))
        assert rc == 1 and ERROR_LINE.match(err), err
        assert "plotting needs matplotlib" in err and "install nn_gpu[plot]" in err
    with pytest.raises(NNGpuError, match=re.escape("install nn_gpu[plot]")):
        plots.plot_curves(synthetic_history(), tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()


def test_curves_without_costs_suggest_how_to_record_them():
    assert "--monitor" in plots.no_costs_hint({"sizes": [784, 30, 10]})
    assert "--monitor" in plots.no_costs_hint({"preset": "ch6-conv2", "layers": [{}]})
