"""Pictures of a training run and of a trained model, as PNG files.

    nn-gpu plot curves HISTORY.json -o curves.png          # from `train --history`
    nn-gpu plot misclassified MODEL -o misclassified.png [--count 36]
    nn-gpu plot confusion MODEL -o confusion.png
    nn-gpu plot weights MODEL -o weights.png [--count 30]

(the command: :mod:`nn_gpu.cli.plot`). Each picture is a Python function
(:func:`plot_curves`, :func:`plot_misclassified`, :func:`plot_confusion`,
:func:`plot_weights`, and :func:`plot_bench` for ``nn-gpu bench --plot``) that
writes a PNG and returns the matplotlib :class:`~matplotlib.figure.Figure`;
the numbers behind them are in :mod:`nn_gpu.model.metrics` and :mod:`nn_gpu.io.history`.

matplotlib is the optional extra ``nn_gpu[plot]``. It is imported only when a
picture is drawn, and only its object-oriented API with the Agg canvas is
used: no display is needed, and pyplot's global state (a notebook's backend,
its list of open figures) is never touched. Every PNG is written atomically.
"""

import math
import os
import textwrap

import numpy

from ..data.mnist import COLS, PIXELS, ROWS
from ..errors import InvalidArgumentError, NNGpuError
from ..io.fileio import atomic_write
from ..io.history import check_history, load_history
from ..model.metrics import confusion_matrix, predictions
from ..options import positive_int
from ..version import install_hint

PLOT_HINT = f"install nn_gpu[plot] ({install_hint('plot')})"
DEFAULT_DPI = 100
DEFAULT_MISCLASSIFIED = 36
DEFAULT_WEIGHTS = 30
#: Inches: the learning curves' figure, and one cell of an image grid
#: (the image plus its title line), plus the grid's heading.
CURVES_SIZE = (10.0, 4.2)
CELL_SIZE = (1.15, 1.3)
GRID_HEADING = 0.55
CONFUSION_SIZE = (6.4, 5.6)
COLORBAR_WIDTH = 0.9
BENCH_SIZE = (7.5, 5.0)
BENCH_DPI = 120
#: The largest picture drawn: about 0.5 GB of RGBA pixels, and matplotlib's
#: own limit on a side (--dpi 100000 would ask for terabytes).
MAX_PICTURE_PIXELS, MAX_PICTURE_SIDE = 1 << 27, (1 << 16) - 1
#: (label, history key suffix, style) of each data set, in legend order.
SPLITS = (("train", "train", "-"), ("validation", "validation", "-"), ("test", "test", "--"))


# ----------------------------------------------------------------- helpers
def require_matplotlib():
    """Fail in one line, before any work, where matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise NNGpuError(f"plotting needs matplotlib, which is not installed: {PLOT_HINT}"
                         ) from None


def check_picture_size(figsize, dpi):
    """Raise :class:`InvalidArgumentError` for a picture of ``figsize`` inches
    at ``dpi`` too large to draw, before anything is allocated."""
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not 0 < dpi < math.inf:
        raise InvalidArgumentError(f"dpi must be a positive number, got {dpi!r}")
    width, height = (side * dpi for side in figsize)  # floats: no overflow
    if max(width, height) > MAX_PICTURE_SIDE or width * height > MAX_PICTURE_PIXELS:
        largest = int(min(math.sqrt(MAX_PICTURE_PIXELS / (figsize[0] * figsize[1])),
                          MAX_PICTURE_SIDE / max(figsize)))
        raise InvalidArgumentError(
            f"dpi {dpi:g} makes a {width:.3g} x {height:.3g} pixel picture, larger than the "
            f"{MAX_PICTURE_PIXELS:,} pixels drawn at most; use a dpi of at most {largest}")


def new_figure(figsize, dpi):
    """A Figure on an Agg canvas (matplotlib's headless PNG renderer), no pyplot."""
    check_picture_size(figsize, dpi)
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path):
    """Render ``fig`` as PNG into ``path`` atomically: if anything fails, an
    existing file is left as it was and no partial file remains."""
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=fig.dpi)


def grid_shape(n):
    """(rows, columns) of a near-square grid of ``n`` >= 1 cells, no taller than
    wide, with the fewest empty cells (24: 4 x 6, not 5 x 5)."""
    side = max(1, math.ceil(math.sqrt(n)))
    cols = min(range(side, side + 3), key=lambda c: (math.ceil(n / c) * c - n, c))
    return math.ceil(n / cols), cols


def grid_figsize(n):
    """Inches of a figure holding ``n`` 28x28 images (at least one cell)."""
    rows, cols = grid_shape(max(n, 1))
    return (max(cols * CELL_SIZE[0], 3.5), rows * CELL_SIZE[1] + GRID_HEADING)


def to_host(array):
    """Any NumPy or CuPy array as a NumPy array."""
    return array.get() if hasattr(array, "get") else numpy.asarray(array)


def _check_images(net, what):
    if net.sizes[0] != PIXELS:
        raise InvalidArgumentError(f"{what} needs a network with {PIXELS} inputs ({ROWS}x{COLS} "
                                   f"pixels), this one has sizes {net.sizes}")


# ---------------------------------------------------------------- pictures
def describe_config(config):
    """The run in one line: sizes, cost, eta, preset and what else was on."""
    if not config:
        return "Learning curves"
    parts = []
    if config.get("sizes"):
        parts.append(str(list(config["sizes"])))
    if config.get("cost"):
        parts.append(f"{config['cost']} cost")
    if config.get("activation") not in (None, "sigmoid"):
        parts.append(str(config["activation"]))
    for key, name in (("eta", "eta"), ("batch_size", "mini-batch"), ("l2", "l2"), ("l1", "l1"),
                      ("momentum", "momentum"), ("dropout", "dropout")):
        value = config.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                value or key == "eta"):
            parts.append(f"{name} {value:g}")
    if config.get("expand"):
        parts.append("expanded data")
    if config.get("train_examples"):
        parts.append(f"{config['train_examples']} examples")
    if config.get("preset"):
        parts.append(f"preset {config['preset']}")
    elif isinstance(config.get("layers"), list):
        parts.append(f"a {len(config['layers'])}-layer conv network")
    return ", ".join(parts) or "Learning curves"


def no_costs_hint(config):
    """The note under curves without costs: how to record them (either kind
    of network can; a conv run records validation and test costs by default)."""
    return "no costs recorded (train --monitor training-cost evaluation-cost)"


def _series(epochs, key, scale=1.0):
    points = [(e["epoch"], e[key] * scale) for e in epochs if e.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def _draw(ax, epochs, suffix, scale, ylabel):
    """One panel: train / validation / test of the ``suffix`` values; returns
    every value drawn."""
    drawn = []
    for label, split, style in SPLITS:
        x, y = _series(epochs, split + suffix, scale)
        if not x:
            continue
        if suffix == "_accuracy" and split == "validation":
            best = max(range(len(y)), key=lambda i: y[i])  # the first of equals
            label = f"{label} (best {y[best]:.2f}%, epoch {x[best]})"
        ax.plot(x, y, style, marker="o" if len(x) < 2 else None, markersize=3, label=label)
        drawn += y
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(ylabel.split()[0].capitalize(), fontsize=11)
    ax.grid(True, alpha=0.3)
    if drawn:
        ax.legend(fontsize=9)
    else:
        ax.text(0.5, 0.5, "no accuracies recorded", transform=ax.transAxes,
                ha="center", va="center", fontsize=10, color="0.4")
    ax.xaxis.get_major_locator().set_params(integer=True)
    return drawn


def accuracy_range(values):
    """(low, high) of the accuracy axis, in %: around all but the lowest
    tenth of the values, so that the region a run ends in (98-99% for a conv
    net) is not flattened by its first epochs; None where that would hide
    nothing."""
    ordered = sorted(values)
    floor, top = ordered[len(ordered) // 10], ordered[-1]
    if floor == ordered[0]:
        return None
    margin = max(0.1 * (top - floor), 0.05)
    return max(0.0, floor - margin), min(100.0, top + margin)


def _focus_accuracy(ax, values):
    limits = accuracy_range(values)
    if limits is None:
        return
    ax.set_ylim(*limits)
    hidden = sum(value < limits[0] for value in values)
    ax.text(0.99, 0.01, f"{hidden} lower point{'s' * (hidden != 1)} below the axis",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color="0.4")


def plot_curves(history, path, dpi=DEFAULT_DPI):
    """Cost and accuracy against epoch, train / validation / test where the
    history has them, written to ``path`` as PNG (accuracy alone, with a
    note, where no cost was recorded). ``history`` is the document of
    ``nn-gpu train --history`` (a dict, or the file's path)."""
    if isinstance(history, (str, os.PathLike)):
        history = load_history(history)
    epochs = check_history(history)["epochs"]
    fig = new_figure(CURVES_SIZE, dpi)
    config = history.get("config") or {}
    fig.suptitle("\n".join(textwrap.wrap(describe_config(config), 110)), fontsize=11)
    has_costs = any(_series(epochs, split + "_cost")[0] for _, split, _ in SPLITS)
    axes = fig.subplots(1, 2) if has_costs else [fig.subplots(1, 1)]
    if has_costs:
        _draw(axes[0], epochs, "_cost", 1.0, "cost")
    else:
        fig.text(0.5, 0.01, no_costs_hint(config), ha="center", va="bottom", fontsize=9,
                 color="0.4")
    _focus_accuracy(axes[-1], _draw(axes[-1], epochs, "_accuracy", 100.0, "accuracy (%)"))
    _mark_eta_changes(epochs, axes)
    save_png(fig, path)
    return fig


def _mark_eta_changes(epochs, axes):
    """Where an eta schedule halved eta: dotted lines on every panel."""
    etas = [(e["epoch"], e.get("eta")) for e in epochs]
    changes = [epoch for (epoch, eta), (_, before) in zip(etas[1:], etas) if
               eta is not None and before is not None and eta != before]
    for i, epoch in enumerate(changes):
        for ax in axes:
            ax.axvline(epoch - 0.5, color="0.5", linestyle=":", linewidth=1,
                       label="eta changed" if i == 0 and ax is axes[0] else None)
    if changes and axes[0].get_legend() is not None:
        axes[0].legend(fontsize=9)


def plot_misclassified(net, data, path, count=DEFAULT_MISCLASSIFIED, dpi=DEFAULT_DPI,
                       split="test"):
    """The first ``count`` rows of ``(X, labels)`` the network gets wrong, as
    28x28 digits (black ink on white) titled "true 5 / pred 3", in a grid."""
    count = positive_int(count, "count")
    _check_images(net, "plot_misclassified")
    X, labels = data
    predicted = predictions(net, data)
    labels = to_host(labels)
    wrong = numpy.flatnonzero(predicted != labels)
    shown = wrong[:count]
    fig = new_figure(grid_figsize(len(shown)), dpi)
    total = len(labels)
    heading = (f"{len(wrong)} of {total} {split} digits misclassified "
               f"({100 * len(wrong) / total:.2f}%)")
    if len(shown):
        heading += f": the first {len(shown)}" if len(shown) < len(wrong) else ""
        rows, cols = grid_shape(len(shown))
        images = to_host(X[shown]).reshape(-1, ROWS, COLS)
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, index, image in zip(axes, shown, images):
            ax.imshow(image, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(f"true {labels[index]} / pred {predicted[index]}", fontsize=9, pad=2)
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in axes[len(shown):]:
            ax.set_axis_off()
    else:
        fig.text(0.5, 0.45, "none: every digit is classified correctly", ha="center",
                 fontsize=10)
    fig.suptitle(heading, fontsize=10)
    save_png(fig, path)
    return fig


def plot_confusion(net, data, path, dpi=DEFAULT_DPI, split="test"):
    """The confusion matrix of the network on ``(X, labels)`` with the count
    in every cell: rows the true digit, columns the predicted one. Colours
    are on a log scale so that a handful of confusions stands out; empty
    cells are white."""
    counts = confusion_matrix(net, data)
    from matplotlib.colors import LogNorm

    fig = new_figure(CONFUSION_SIZE, dpi)
    ax = fig.subplots()
    k = counts.shape[0]
    top = max(int(counts.max()), 2)
    norm = LogNorm(vmin=1, vmax=top)
    image = ax.imshow(numpy.ma.masked_equal(counts, 0), cmap="Blues", norm=norm,
                      interpolation="nearest")
    font = 9 if top < 1000 or k <= 10 else 7
    for (i, j), value in numpy.ndenumerate(counts):
        if value:
            dark = norm(value) > 0.6
            ax.text(j, i, str(value), ha="center", va="center", fontsize=font,
                    color="white" if dark else "black",
                    fontweight="bold" if i == j else "normal")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.set_xticks(numpy.arange(k + 1) - 0.5, minor=True)
    ax.set_yticks(numpy.arange(k + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="0.85", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    correct, total = int(numpy.trace(counts)), int(counts.sum())
    ax.set_title(f"{split} set: {correct} / {total} correct "
                 f"({100 * correct / total:.2f}%)", fontsize=11, pad=8)
    fig.colorbar(image, ax=ax, shrink=0.85, label="examples (log scale)")
    save_png(fig, path)
    return fig


def plot_weights(net, path, count=DEFAULT_WEIGHTS, dpi=DEFAULT_DPI):
    """The first-layer weights into each of the first ``count`` hidden
    neurons as a 28x28 image, red positive and blue negative, white at 0,
    on one colour scale (clipped at the 99.5th percentile of |w|)."""
    count = positive_int(count, "count")
    _check_images(net, "plot_weights")
    hidden = net.sizes[1]
    count = min(count, hidden)
    weights = net.backend.to_host(net.weights[0][:count]).astype(numpy.float64)
    limit = float(numpy.percentile(numpy.abs(weights), 99.5)) or 1.0
    width, height = grid_figsize(count)
    fig = new_figure((width + COLORBAR_WIDTH, height), dpi)
    rows, cols = grid_shape(count)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for i, (ax, w) in enumerate(zip(axes, weights)):
        image = ax.imshow(w.reshape(ROWS, COLS), cmap="RdBu_r", vmin=-limit, vmax=limit,
                          interpolation="nearest")
        ax.set_title(f"neuron {i + 1}", fontsize=9, pad=2)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[count:]:
        ax.set_axis_off()
    which = f"all {hidden}" if count == hidden else f"the first {count} of {hidden}"
    fig.suptitle(f"Input weights of {which} hidden neurons {net.sizes}", fontsize=10)
    fig.colorbar(image, ax=list(axes), shrink=0.6, aspect=30, label="weight")
    save_png(fig, path)
    return fig


def plot_bench(results, path, title, dpi=BENCH_DPI):
    """``nn-gpu bench``'s results: epoch seconds against mini-batch size,
    log-log, one line per method, plus the GEMM floor."""
    fig = new_figure(BENCH_SIZE, dpi)
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax = fig.add_subplot()
    batch_sizes = sorted({r["batch_size"] for r in results})
    for method, style in (("per_example", "s-"), ("batched", "o-")):
        points = sorted((r["batch_size"], r["median_seconds"], r["backend"])
                        for r in results if r["method"] == method)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], style,
                    label=f"{method} ({points[0][2]})")
    floors = {r["batch_size"]: r["floor_seconds"] for r in results}
    ax.plot(batch_sizes, [floors[b] for b in batch_sizes], "k--", linewidth=1,
            label="GEMM floor (epoch FLOPs / GEMM rate)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(batch_sizes, [str(b) for b in batch_sizes])
    ax.set_xticks([], minor=True)
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_locator(LogLocator(subs=(2, 5)))
    ax.yaxis.set_minor_formatter(plain)
    ax.set_xlabel("mini-batch size")
    ax.set_ylabel("seconds per epoch")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    save_png(fig, path)
    return fig
