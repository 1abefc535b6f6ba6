"""``nn-gpu predict``: classify your own digit images with a saved model.

    nn-gpu train --save model.npz
    nn-gpu predict model.npz my-seven.png photo-of-a-3.jpg

Each image is made an MNIST-style input first (:mod:`nn_gpu.reading.images`); the
probabilities are :func:`nn_gpu.model.metrics.probabilities`.
"""

import numpy

from ..analysis.ensemble import load_model
from ..data.mnist import COLS, ROWS
from ..errors import InvalidArgumentError
from ..model.metrics import classify
from ..reading.images import PILLOW_HINT, check_model, require_pillow, to_mnist
from .common import CliError, add_backend, add_model, saved_digit


def ascii_art(x):
    """A 28x28 input as 28 lines of text, darker characters for more ink."""
    shades = " .:-=+*#%@"
    levels = numpy.minimum((numpy.asarray(x).reshape(ROWS, COLS) * len(shades)).astype(int),
                           len(shades) - 1)
    return ["".join(shades[v] for v in row) for row in levels]


def format_result(name, label, probs):
    """``NAME: 7 (0.913)  0:0.0012 1:0.0003 ... 9:0.0150``."""
    classes = " ".join(f"{digit}:{p:.4f}" for digit, p in enumerate(probs))
    return f"{name}: {label} ({probs[label]:.3f})  {classes}"


def format_detection(name, label, probs, digit):
    """A detector's answer: ``NAME: a 9 (0.973)`` or ``NAME: not a 9 (0.988)``,
    the probability of that answer; "yes"/"no" where the digit is unknown."""
    if digit is None:
        answer = "yes" if label else "no"
    else:
        answer = f"a {digit}" if label else f"not a {digit}"
    return f"{name}: {answer} ({probs[label]:.3f})"


# ------------------------------------------------------------ the command
def cmd_predict(args):
    """Classify each image; print the digit and every class's probability."""
    require_pillow()  # no Pillow: say so before loading anything
    net = load_model(args.model, backend=args.backend)
    try:
        check_model(net)
    except InvalidArgumentError as exc:
        raise CliError(f"{args.model}: {exc}") from None
    inputs = [to_mnist(path) for path in args.images]  # every image checked before any output
    detects = saved_digit(net) if net.sizes[-1] == 1 else None
    for path, x, (label, probs) in zip(args.images, inputs, classify(net, numpy.stack(inputs))):
        if net.sizes[-1] == 1:
            print(format_detection(path, label, probs, detects))
        else:
            print(format_result(path, label, probs))
        if args.show:
            print("\n".join(f"  |{line}|" for line in ascii_art(x)))
    return 0


def add_parser(commands):
    """Register ``predict`` on the subparsers object of ``nn-gpu``'s parser."""
    predict = commands.add_parser(
        "predict", help="classify your own digit images with a saved model",
        description="Classify digit images (any format Pillow reads) with a model from "
                    "`train --save`. Each image is made to look like an MNIST digit first: "
                    "greyscale, light ink on dark, cropped, scaled to 20 pixels and "
                    "centred by its centre of mass in 28x28. Prints, per image, the "
                    "predicted digit, its probability, and the probability of each digit "
                    "0-9; for a detector from `train --digit D`, \"a D\" or \"not a D\" "
                    "and its probability. Needs Pillow: " + PILLOW_HINT,
        epilog="Best results: one dark digit on a plain, evenly lit light background "
               "(or the reverse), filling a good part of the picture.")
    add_model(predict)
    predict.add_argument("images", metavar="IMAGE", nargs="+", help="image files of digits")
    add_backend(predict)
    predict.add_argument("--show", action="store_true",
                         help="also draw each image as the network sees it (28x28 text)")
    predict.set_defaults(func=cmd_predict, parser=predict)
    return predict
