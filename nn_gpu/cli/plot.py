"""``nn-gpu plot KIND``: learning curves, misclassified digits, the confusion
matrix or the weights, drawn by :mod:`nn_gpu.analysis.plots`."""

from pathlib import Path

from ..analysis.filters import plot_filters
from ..analysis.plots import (
    COLORBAR_WIDTH,
    CONFUSION_SIZE,
    CURVES_SIZE,
    DEFAULT_DPI,
    DEFAULT_MISCLASSIFIED,
    DEFAULT_WEIGHTS,
    PLOT_HINT,
    check_picture_size,
    grid_figsize,
    plot_confusion,
    plot_curves,
    plot_misclassified,
    plot_weights,
    require_matplotlib,
)
from ..convnet.network import ConvNetwork
from ..errors import InvalidArgumentError
from ..io.history import HistoryError, load_history
from .common import (
    PROG,
    CliError,
    add_backend,
    add_data,
    add_model,
    add_split,
    check_output_path,
    load_model,
    load_split,
    positive_int,
)


def largest_figure(args):
    """The picture's size in inches (the largest it can be, for the grids)."""
    if args.mode in ("curves", "confusion"):
        return CURVES_SIZE if args.mode == "curves" else CONFUSION_SIZE
    width, height = grid_figsize(args.count)
    return (width + COLORBAR_WIDTH if args.mode == "weights" else width), height


KINDS = ("curves", "misclassified", "confusion", "weights")


def with_kind(argv):
    """``plot FILE ...`` -> ``plot curves FILE ...`` when FILE is a training
    history, judged by its content (any name will do); other command lines
    unchanged. Another file in the kind's place gets one line saying what it
    is not (and a word that names no file, argparse's "invalid choice")."""
    if len(argv) < 2 or argv[0] != "plot" or argv[1] in KINDS or not Path(argv[1]).is_file():
        return argv
    try:
        load_history(argv[1])
    except HistoryError as exc:
        raise HistoryError(f"plot {argv[1]}: neither a plot kind ({', '.join(KINDS)}) nor "
                           f"a history file from `{PROG} train --history` ({exc})") from None
    return [argv[0], "curves", *argv[1:]]


def cmd_plot(args):
    """Every kind: before any work, check that the picture can be drawn at
    --dpi, that --output can be written and is not the input, and matplotlib;
    then draw the picture and say what was written."""
    try:
        check_picture_size(largest_figure(args), args.dpi)
    except InvalidArgumentError as exc:
        raise CliError(f"--dpi {exc}") from None
    source = ("HISTORY", args.history) if args.mode == "curves" else ("MODEL", args.model)
    check_output_path(args.output, "--output", [source])
    require_matplotlib()
    print(f"{args.draw(args)} written to {args.output}")
    return 0


def draw_curves(args):
    history = load_history(args.history)
    plot_curves(history, args.output, dpi=args.dpi)
    return f"Learning curves ({len(history['epochs'])} epochs)"


def draw_misclassified(args):
    fig = plot_misclassified(load_model(args), load_split(args), args.output,
                             count=args.count, dpi=args.dpi, split=args.split)
    return f"{fig.get_suptitle()};"


def draw_confusion(args):
    plot_confusion(load_model(args), load_split(args), args.output, dpi=args.dpi,
                   split=args.split)
    return f"Confusion matrix ({args.split} set)"


def draw_weights(args):
    net = load_model(args, detector_ok=True)  # a detector's first layer is drawn alike
    if isinstance(net, ConvNetwork):  # its first layer's filters
        try:
            fig = plot_filters(net, args.output, dpi=args.dpi)
        except InvalidArgumentError as exc:
            raise CliError(f"{args.model}: {exc}") from None
        return fig.get_suptitle()
    plot_weights(net, args.output, count=args.count, dpi=args.dpi)
    return f"Weights of {min(args.count, net.sizes[1])} hidden neurons"


def add_parser(commands):
    """Register ``plot`` (with its kinds) on the subparsers object of ``nn-gpu``'s parser."""
    plot = commands.add_parser(
        "plot", help="draw learning curves, misclassified digits, a confusion matrix "
                     "or weights (needs matplotlib)",
        description="Draw a PNG of a training run or a trained model. Needs matplotlib: "
                    f"{PLOT_HINT}.",
        epilog=f"See `{PROG} plot KIND --help` for each kind's options. The kind may be "
               f"left out for a history file: `{PROG} plot HISTORY.json -o curves.png`.")
    kinds = plot.add_subparsers(dest="mode", metavar="KIND", required=True)
    _add_curves(kinds)
    _add_model_kinds(kinds)
    return plot


def _add_output(parser):
    parser.add_argument("-o", "--output", required=True, metavar="FILE.png",
                        help="write the picture here (PNG, replaced atomically)")


def _add_dpi(parser, draw):
    """--dpi, and what runs: :func:`cmd_plot` with the kind's ``draw``."""
    parser.add_argument("--dpi", type=positive_int, default=DEFAULT_DPI, metavar="N",
                        help=f"pixels per inch (default: {DEFAULT_DPI})")
    parser.set_defaults(func=cmd_plot, draw=draw, parser=parser)


def _add_curves(kinds):
    curves = kinds.add_parser(
        "curves", help="cost and accuracy per epoch, from `train --history`",
        description="Plot cost and accuracy against epoch (train, validation and test, "
                    "where the history has them) from a file written by "
                    f"`{PROG} train --history`.")
    curves.add_argument("history", metavar="HISTORY", help="JSON file from `train --history`")
    _add_output(curves)
    _add_dpi(curves, draw_curves)


def _add_model_kinds(kinds):
    """The kinds drawn from a trained model: misclassified, confusion, weights."""
    def model_kind(name, draw, help, description, data=True, count=None):
        """A kind's parser; ``count``: (default, help) of its --count, if any."""
        parser = kinds.add_parser(name, help=help, description=description)
        add_model(parser)
        _add_output(parser)
        if data:
            add_data(parser)
            add_split(parser)
        add_backend(parser)
        if count is not None:
            parser.add_argument("--count", type=positive_int, default=count[0], metavar="N",
                                help=count[1])
        _add_dpi(parser, draw)

    model_kind(
        "misclassified", draw_misclassified, help="a grid of the digits a model gets wrong",
        description="Draw the first N digits of the test (or validation) set that the "
                    "model misclassifies, each titled with its true and predicted digit.",
        count=(DEFAULT_MISCLASSIFIED, f"how many digits (default: {DEFAULT_MISCLASSIFIED})"))
    model_kind(
        "confusion", draw_confusion, help="the 10x10 confusion matrix of a model",
        description="Draw the confusion matrix of the model on the test (or validation) "
                    "set: rows are the true digit, columns the predicted one.")
    model_kind(
        "weights", draw_weights, data=False,
        help="first-layer weights of hidden neurons as 28x28 images",
        description="Draw the weights from the 784 input pixels into each of the first "
                    "N hidden neurons as a 28x28 image (red positive, blue negative).",
        count=(DEFAULT_WEIGHTS, "how many hidden neurons, at most all of the first layer "
                                f"(default: {DEFAULT_WEIGHTS})"))
