"""``nn-gpu read``: the number written in each image, by a saved model.

    nn-gpu read model.npz photo-of-2026.jpg
    nn-gpu read model.npz *.png --json
    nn-gpu read model.npz photo.jpg --show read.png
"""

import sys
from pathlib import Path

from ..analysis.ensemble import load_model
from ..analysis.plots import require_matplotlib
from ..errors import InvalidArgumentError
from ..io.fileio import check_outputs
from ..reading.images import PILLOW_HINT, require_pillow
from ..reading.reader import draw_reading, read_number
from ..reading.whole_digit import default_check
from .common import CliError, add_backend, add_data, add_model


def show_paths(args):
    """The PNG to draw each image's reading into: --show FILE (one image),
    or IMAGE-read.png in the current directory for each image."""
    if args.show is None:
        return [None] * len(args.images)
    if args.show is not True:
        if len(args.images) > 1:
            args.parser.error("--show FILE draws one image; give one IMAGE, or --show "
                              "alone to write IMAGE-read.png for each")
        paths = [args.show]
    else:
        paths = [f"{Path(image).stem}-read.png" for image in args.images]
    inputs = [("MODEL", args.model), *(("IMAGE", image) for image in args.images)]
    check_outputs([("--show", path) for path in paths], inputs)  # never over an input
    return paths


def note(message):
    """A line on stderr that is not an error (stdout stays the readings)."""
    print(f"nn-gpu read: {message}", file=sys.stderr)


def cmd_read(args):
    """Read every image first (any bad one stops the run before output),
    then print one line (or JSON object) per image."""
    require_pillow()  # no Pillow (or matplotlib for --show): say so before loading anything
    shows = show_paths(args)
    if args.show is not None:
        require_matplotlib()
    net = load_model(args.model, backend=args.backend)  # a Network or a ConvNetwork
    check = None if args.no_check else default_check(args.data, say=note)
    try:
        readings = [read_number(net, image, check) for image in args.images]
    except InvalidArgumentError as exc:
        raise CliError(f"{args.model}: {exc}") from None
    for image, reading, show in zip(args.images, readings, shows):
        if show is not None:
            draw_reading(image, reading, show)
        if args.json:
            print(reading.json_line(image))
        else:
            chances = " ".join(f"{p:.2f}" for p in reading.probabilities)
            print(f"{image}: {reading.digits}  ({chances})")
    return 0


def add_parser(commands):
    """Register ``read`` on the subparsers object of ``nn-gpu``'s parser."""
    read = commands.add_parser(
        "read", help="read the whole number written in each image",
        description="Read the number (1 to a dozen digits) written in each image with a model "
                    "from `train --save`, fully connected or convolutional: the digits are "
                    "found as connected strokes, digits that touch are cut where the model "
                    "is surest of the pieces, and each is made MNIST-like as `predict` does. "
                    "Prints, per image, the number and each digit's probability. Needs "
                    "Pillow: " + PILLOW_HINT,
        epilog="Dark ink on light paper or the reverse; photos with uneven light and grain "
               "are fine. One line of digits per image.")
    add_model(read)
    read.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    read.add_argument("--json", action="store_true",
                      help="one JSON object per image per line: file, digits, "
                           "probabilities, boxes ([x0, y0, x1, y1] in the image's pixels)")
    read.add_argument("--show", nargs="?", const=True, metavar="FILE",
                      help="draw what was read (boxes and digits over the image) into "
                           "FILE (PNG; one image), or IMAGE-read.png for each image; "
                           "needs matplotlib")
    read.add_argument("--no-check", action="store_true",
                      help="cut by the model's confidence alone, without the whole-digit "
                           "check (a small network trained once from MNIST's training "
                           "digits and cached, as the expanded data set)")
    add_data(read)
    add_backend(read)
    read.set_defaults(func=cmd_read, parser=read)
    return read
