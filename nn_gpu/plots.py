"""``nn-gpu plot``: pictures of a training run and of a trained model.

    nn-gpu plot curves HISTORY.json -o curves.png          # from `train --history`
    nn-gpu plot misclassified MODEL -o misclassified.png [--count 36]
    nn-gpu plot confusion MODEL -o confusion.png
    nn-gpu plot weights MODEL -o weights.png [--count 30]
    python -m nn_gpu.plots curves h.json -o c.png          # the same, before cli.py knows `plot`

The modes that score a model take ``--data DIR``, ``--split test|validation``
and ``--backend``; every mode takes ``--dpi``. Each picture is also a Python
function (:func:`plot_curves`, :func:`plot_misclassified`,
:func:`plot_confusion`, :func:`plot_weights`) that writes a PNG and returns
the matplotlib :class:`~matplotlib.figure.Figure`; :func:`confusion_matrix`
is the numbers behind :func:`plot_confusion`.

matplotlib is the optional extra ``nn_gpu[plot]``. It is imported only when a
picture is drawn, and only its object-oriented API with the Agg canvas is
used: no display is needed, and pyplot's global state (a notebook's backend,
its list of open figures) is never touched. Every PNG is written atomically.
"""

import json
import math
import os
import sys
import textwrap
from pathlib import Path

import numpy

from . import cli  # cli.py imports this module inside build_parser(), not at its top
from . import core
from .backends import BACKEND_NAMES
from .errors import InvalidArgumentError, NNGpuError
from .fileio import atomic_write, read_input
from .mnist import COLS, ROWS, load_mnist
from .network import Network

PLOT_HINT = "install nn_gpu[plot] (pip install 'nn_gpu[plot]')"
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
PIXELS = ROWS * COLS
#: The largest picture drawn: about 0.5 GB of RGBA pixels, and matplotlib's
#: own limit on a side (--dpi 100000 would ask for terabytes).
MAX_PICTURE_PIXELS, MAX_PICTURE_SIDE = 1 << 27, (1 << 16) - 1
#: A history file larger than this is not one `train --history` wrote; epochs
#: beyond MAX_EPOCH neither.
MAX_HISTORY_BYTES, MAX_EPOCH = 1 << 26, 10**7
#: (label, history key suffix, style) of each data set, in legend order.
SPLITS = (("train", "train", "-"), ("validation", "validation", "-"), ("test", "test", "--"))


class HistoryError(NNGpuError, ValueError):
    """A history file (``nn-gpu train --history``) is missing or malformed."""


# ----------------------------------------------------------------- helpers
def require_matplotlib():
    """Fail in one line, before any work, where matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise NNGpuError(f"plotting needs matplotlib, which is not installed: {PLOT_HINT}") from None


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


def _check_count(count, what):
    if isinstance(count, bool) or not isinstance(count, (int, numpy.integer)) or count < 1:
        raise InvalidArgumentError(f"{what} must be a positive integer, got {count!r}")
    return int(count)


def _check_images(net, what):
    if net.sizes[0] != PIXELS:
        raise InvalidArgumentError(f"{what} needs a network with {PIXELS} inputs (28x28 "
                                   f"pixels), this one has sizes {net.sizes}")


# ------------------------------------------------------------ the numbers
def _device_predictions(net, X):
    """argmax of the output layer for every row of device X, on the device,
    scored in the same chunks as :meth:`Network.evaluate`."""
    xp = net.backend.xp
    chunks = []
    for start in range(0, X.shape[0], core.SCORING_CHUNK):
        z = core.output_logits(net.backend, net.kinds, net.weights, net.biases,
                               X[start:start + core.SCORING_CHUNK])
        chunks.append(xp.argmax(z, axis=1))  # argmax a = argmax z: f is increasing
    return chunks[0] if len(chunks) == 1 else xp.concatenate(chunks)


def predictions(net, data):
    """The network's digit for each row of ``(X, labels)``, as a NumPy int array."""
    X, _ = net.to_device(data)
    return net.backend.to_host(_device_predictions(net, X)).astype(numpy.int64)


def confusion_matrix(net, data):
    """Counts ``C[true, predicted]`` over ``(X, labels)``: an (n_out, n_out)
    NumPy int64 array, (10, 10) for MNIST. Computed on the network's backend
    with one device-to-host copy; ``C.sum()`` is the number of examples and
    the trace is :meth:`Network.evaluate`."""
    X, labels = net.to_device(data)
    xp, k = net.backend.xp, net.sizes[-1]
    pairs = labels.astype(xp.int64) * k + _device_predictions(net, X).astype(xp.int64)
    counts = xp.bincount(pairs, minlength=k * k).reshape(k, k)
    return net.backend.to_host(counts).astype(numpy.int64)


# ------------------------------------------------------------ the history
def load_history(path):
    """Read and check a history file written by ``nn-gpu train --history``."""
    path = Path(path)
    try:
        text = read_input(path, MAX_HISTORY_BYTES, "history file").decode("utf-8")
    except FileNotFoundError:
        raise HistoryError(f"{path}: history file not found") from None
    except UnicodeDecodeError:
        raise HistoryError(f"{path}: not a JSON history file (not UTF-8 text)") from None
    except OSError as exc:  # a directory, a FIFO, a device, too large, no permission
        raise HistoryError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        history = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HistoryError(f"{path}: not a JSON history file ({exc.msg} at line {exc.lineno} "
                           f"column {exc.colno})") from None
    except RecursionError:
        raise HistoryError(f"{path}: not a history file: its JSON is nested too deeply") \
            from None
    return check_history(history, str(path))


def check_history(history, where="history"):
    """``history`` if it is a ``{"config": {...}, "epochs": [...]}`` document
    with at least one epoch; else a one-line :class:`HistoryError`."""
    origin = "(write one with `nn-gpu train --history FILE`)"
    if not isinstance(history, dict) or "epochs" not in history:
        raise HistoryError(f"{where}: not a training history: expected a JSON object with "
                           f"\"epochs\" {origin}")
    epochs = history["epochs"]
    if not isinstance(epochs, list):
        raise HistoryError(f"{where}: \"epochs\" must be a list, got {type(epochs).__name__}")
    if not epochs:
        raise HistoryError(f"{where}: no epochs recorded yet (the run wrote its history "
                           "before finishing its first epoch)")
    if not isinstance(history.get("config", {}), dict):
        raise HistoryError(f"{where}: \"config\" must be a JSON object")
    for i, entry in enumerate(epochs, 1):
        if not isinstance(entry, dict):
            raise HistoryError(f"{where}: epoch entry {i} is not a JSON object")
        epoch = entry.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= MAX_EPOCH:
            raise HistoryError(f"{where}: epoch entry {i}: \"epoch\" must be a whole number "
                               f"from 0 to {MAX_EPOCH:,}, got {_shown(epoch)} {origin}")
        for key, value in entry.items():
            if value is None or not key.endswith(("_accuracy", "_cost")):
                continue  # None: not measured, left out of the plot
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise HistoryError(f"{where}: epoch entry {i}: {key} is not a number "
                                   f"({_shown(value)})")
            if key.endswith("_accuracy") and not 0 <= value <= 1:
                raise HistoryError(f"{where}: epoch entry {i}: {key} must be a fraction "
                                   f"from 0 to 1, got {_shown(value)}")
            if key.endswith("_cost") and not math.isfinite(value):
                raise HistoryError(f"{where}: epoch entry {i}: {key} must be a finite "
                                   f"number, got {_shown(value)}")
    return history


def _shown(value):
    """A JSON value, cut short for a one-line message."""
    text = "missing" if value is None else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


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
    return ", ".join(parts) or "Learning curves"


def _series(epochs, key, scale=1.0):
    points = [(e["epoch"], e[key] * scale) for e in epochs if e.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


# ---------------------------------------------------------------- pictures
def plot_curves(history, path, dpi=DEFAULT_DPI):
    """Cost and accuracy against epoch, train / validation / test where the
    history has them, written to ``path`` as PNG. ``history`` is the
    document of ``nn-gpu train --history`` (a dict, or the file's path)."""
    if isinstance(history, (str, os.PathLike)):
        history = load_history(history)
    epochs = check_history(history)["epochs"]
    fig = new_figure(CURVES_SIZE, dpi)
    cost_ax, acc_ax = fig.subplots(1, 2)
    config = history.get("config") or {}
    fig.suptitle("\n".join(textwrap.wrap(describe_config(config), 110)), fontsize=11)

    for ax, suffix, scale, ylabel in ((cost_ax, "_cost", 1.0, "cost"),
                                      (acc_ax, "_accuracy", 100.0, "accuracy (%)")):
        drawn = 0
        for label, split, style in SPLITS:
            x, y = _series(epochs, split + suffix, scale)
            if not x:
                continue
            if suffix == "_accuracy" and split == "validation":
                best = max(range(len(y)), key=lambda i: y[i])  # the first of equals
                label = f"{label} (best {y[best]:.2f}%, epoch {x[best]})"
            ax.plot(x, y, style, marker="o" if len(x) < 2 else None, markersize=3,
                    label=label)
            drawn += 1
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(ylabel.split()[0].capitalize(), fontsize=11)
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend(fontsize=9)
        else:
            hint = ("no costs recorded\n(train --monitor training-cost evaluation-cost)"
                    if suffix == "_cost" else "no accuracies recorded")
            ax.text(0.5, 0.5, hint, transform=ax.transAxes, ha="center", va="center",
                    fontsize=10, color="0.4")
        ax.xaxis.get_major_locator().set_params(integer=True)

    # Where an eta schedule halved eta: dotted lines on both panels.
    etas = [(e["epoch"], e.get("eta")) for e in epochs]
    changes = [epoch for (epoch, eta), (_, before) in zip(etas[1:], etas) if
               eta is not None and before is not None and eta != before]
    for i, epoch in enumerate(changes):
        for ax in (cost_ax, acc_ax):
            ax.axvline(epoch - 0.5, color="0.5", linestyle=":", linewidth=1,
                       label="eta changed" if i == 0 and ax is cost_ax else None)
    if changes and cost_ax.get_legend() is not None:
        cost_ax.legend(fontsize=9)
    save_png(fig, path)
    return fig


def plot_misclassified(net, data, path, count=DEFAULT_MISCLASSIFIED, dpi=DEFAULT_DPI,
                       split="test"):
    """The first ``count`` rows of ``(X, labels)`` the network gets wrong, as
    28x28 digits (black ink on white) titled "true 5 / pred 3", in a grid."""
    count = _check_count(count, "count")
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
    count = _check_count(count, "count")
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


# ------------------------------------------------------------ the command
def load_model(args):
    net = Network.load(args.model, backend=args.backend)
    cli.check_mnist_sizes(net.sizes, f"{args.model}: model layer sizes")
    return net


def load_split(args):
    _, validation, test = load_mnist(args.data)
    return test if args.split == "test" else validation


def check_command(args, figsize, source):
    """Before any work: the picture can be drawn at --dpi (checked on its
    largest size), and --output written without touching the input ``source``."""
    try:
        check_picture_size(figsize, args.dpi)
    except InvalidArgumentError as exc:
        raise cli.CliError(f"--dpi {exc}") from None
    label, path = source
    cli.check_output_path(args.output, "--output", [(label, path)])
    require_matplotlib()


def cmd_curves(args):
    """Learning curves of a `train --history` file."""
    check_command(args, CURVES_SIZE, ("HISTORY", args.history))
    history = load_history(args.history)
    plot_curves(history, args.output, dpi=args.dpi)
    print(f"Learning curves ({len(history['epochs'])} epochs) written to {args.output}")
    return 0


def cmd_misclassified(args):
    check_command(args, grid_figsize(args.count), ("MODEL", args.model))
    net = load_model(args)
    fig = plot_misclassified(net, load_split(args), args.output, count=args.count,
                             dpi=args.dpi, split=args.split)
    print(f"{fig.get_suptitle()}; written to {args.output}")
    return 0


def cmd_confusion(args):
    check_command(args, CONFUSION_SIZE, ("MODEL", args.model))
    net = load_model(args)
    plot_confusion(net, load_split(args), args.output, dpi=args.dpi, split=args.split)
    print(f"Confusion matrix ({args.split} set) written to {args.output}")
    return 0


def cmd_weights(args):
    width, height = grid_figsize(args.count)
    check_command(args, (width + COLORBAR_WIDTH, height), ("MODEL", args.model))
    net = load_model(args)
    plot_weights(net, args.output, count=args.count, dpi=args.dpi)
    print(f"Weights of {min(args.count, net.sizes[1])} hidden neurons written to {args.output}")
    return 0


def add_plot_parser(commands):
    """Register ``plot`` (with its modes) on the subparsers object of ``nn-gpu``'s parser."""
    plot = commands.add_parser(
        "plot", help="draw learning curves, misclassified digits, a confusion matrix "
                     "or weights (needs matplotlib)",
        description="Draw a PNG of a training run or a trained model. Needs matplotlib: "
                    f"{PLOT_HINT}.",
        epilog=f"See `{cli.PROG} plot KIND --help` for each kind's options.")
    modes = plot.add_subparsers(dest="mode", metavar="KIND", required=True)

    def output(parser):
        parser.add_argument("-o", "--output", required=True, metavar="FILE.png",
                            help="write the picture here (PNG, replaced atomically)")

    def common(parser, func):
        parser.add_argument("--dpi", type=cli.positive_int, default=DEFAULT_DPI, metavar="N",
                            help=f"pixels per inch (default: {DEFAULT_DPI})")
        parser.set_defaults(func=func, parser=parser)

    def model(parser, data=True):
        parser.add_argument("model", metavar="MODEL", help="model file from `train --save`")
        output(parser)
        if data:
            parser.add_argument("--data", metavar="DIR", help=cli.DATA_HELP)
            parser.add_argument("--split", choices=("test", "validation"), default="test",
                                help="the MNIST set to score (default: test)")
        parser.add_argument("--backend", choices=BACKEND_NAMES, default="auto")

    curves = modes.add_parser(
        "curves", help="cost and accuracy per epoch, from `train --history`",
        description="Plot cost and accuracy against epoch (train, validation and test, "
                    "where the history has them) from a file written by "
                    f"`{cli.PROG} train --history`.")
    curves.add_argument("history", metavar="HISTORY", help="JSON file from `train --history`")
    output(curves)
    common(curves, cmd_curves)

    wrong = modes.add_parser(
        "misclassified", help="a grid of the digits a model gets wrong",
        description="Draw the first N digits of the test (or validation) set that the "
                    "model misclassifies, each titled with its true and predicted digit.")
    model(wrong)
    wrong.add_argument("--count", type=cli.positive_int, default=DEFAULT_MISCLASSIFIED,
                       metavar="N", help=f"how many digits (default: {DEFAULT_MISCLASSIFIED})")
    common(wrong, cmd_misclassified)

    confusion = modes.add_parser(
        "confusion", help="the 10x10 confusion matrix of a model",
        description="Draw the confusion matrix of the model on the test (or validation) "
                    "set: rows are the true digit, columns the predicted one.")
    model(confusion)
    common(confusion, cmd_confusion)

    weights = modes.add_parser(
        "weights", help="first-layer weights of hidden neurons as 28x28 images",
        description="Draw the weights from the 784 input pixels into each of the first "
                    "N hidden neurons as a 28x28 image (red positive, blue negative).")
    model(weights, data=False)
    weights.add_argument("--count", type=cli.positive_int, default=DEFAULT_WEIGHTS,
                         metavar="N", help=f"how many hidden neurons, at most all of the "
                                           f"first layer (default: {DEFAULT_WEIGHTS})")
    common(weights, cmd_weights)
    return plot


def main(argv=None):
    """``nn-gpu plot`` on its own: ``argv`` holds the arguments after ``plot``
    (exit status as ``nn-gpu``)."""
    return cli.main(["plot", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
