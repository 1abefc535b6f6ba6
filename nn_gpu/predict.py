"""``nn-gpu predict``: classify your own digit images with a saved model.

A photo or drawing of a digit looks nothing like an MNIST image until it has
been through the steps that made MNIST (LeCun et al.): :func:`to_mnist`
turns it greyscale; inverts it when the background is light (MNIST is white
ink, 1.0, on black, 0.0); levels the paper (a photo's light falls off across
the page) and stretches the ink to full contrast; crops it to the ink's
bounding box; scales it, keeping its aspect ratio, so that its longer
side is 20 pixels; and places it in a 28x28 field so that its centre of mass
falls on the field's centre, pixel (14, 14) -- where the MNIST digits' own
centres of mass are, to within half a pixel.

    nn-gpu train --save model.npz
    nn-gpu predict model.npz my-seven.png photo-of-a-3.jpg

Images are read with Pillow, an optional dependency
(``pip install 'nn_gpu[image]'``), imported only when an image is read. It
works best on a single dark digit on a plain, evenly lit light background
(or the reverse), filling a good part of the picture.
"""

import os
import sys
import warnings

import numpy

from . import cli  # cli.py imports this module inside build_parser(), not at its top
from .backends import BACKEND_NAMES
from .errors import InvalidArgumentError, NNGpuError
from .fileio import open_input
from .network import Network

PILLOW_HINT = "pip install 'nn_gpu[image]'"
SIDE = 28           # the MNIST field
BOX = 20            # the longer side of the digit within it
CENTRE = 14.0       # where its centre of mass goes (row and column)
MIN_CONTRAST = 0.1  # ink must differ from the background by this much (of full scale)
NOISE = 0.2         # after stretching, fainter pixels count as background
MAX_SIDE = 1024     # larger images are reduced first (speed; the digit ends up 20 px)
DIGITS = 10


class ImageError(NNGpuError):
    """An image to classify is missing, unreadable, or has no digit in it."""


def _pillow():
    """The PIL.Image and PIL.ImageOps modules, or a one-line error saying how to get them."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise ImageError(f"reading images needs Pillow, which is not installed: "
                         f"{PILLOW_HINT}") from None
    return Image, ImageOps


def _open(source, Image, ImageOps):
    """``source`` (a path or a PIL image) as a decoded PIL image, upright
    as the camera saw it (EXIF orientation), and a name for messages."""
    if isinstance(source, Image.Image):
        return _decoded(source, "image", ImageOps), "image"
    where = os.fspath(source)
    try:
        stream = open_input(where, what="image")  # a FIFO or a device: refused, never waited on
    except FileNotFoundError:
        raise ImageError(f"{where}: image file not found") from None
    except OSError as exc:  # not a regular file, no permission...
        raise ImageError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    try:
        with warnings.catch_warnings():  # a "decompression bomb": refused, not warned about
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            handle = Image.open(stream)
    except BaseException as exc:
        stream.close()
        if isinstance(exc, (Image.DecompressionBombWarning, Image.DecompressionBombError)):
            raise ImageError(f"{where}: too large to be a digit to classify (more than "
                             f"{Image.MAX_IMAGE_PIXELS:,} pixels); scale it down first") from None
        if isinstance(exc, Image.UnidentifiedImageError):
            raise ImageError(f"{where}: not an image file Pillow can read") from None
        if isinstance(exc, Exception):  # decoders raise many kinds on bad bytes
            raise ImageError(f"{where}: cannot be read as an image "
                             f"({type(exc).__name__})") from None
        raise
    with stream, handle:  # closes the file: the image returned is a decoded copy
        try:
            handle.draft(None, (MAX_SIDE, MAX_SIDE))  # JPEG: decode big photos smaller
        except Exception:  # noqa: BLE001 - only an optimisation
            pass
        return _decoded(handle, where, ImageOps), where


def _decoded(image, where, ImageOps):
    try:
        image.load()
        return ImageOps.exif_transpose(image)  # a copy, rotated if EXIF says so
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt image data
        raise ImageError(f"{where}: damaged image file ({' '.join(str(exc).split())})") \
            from None


def _greyscale(image, Image, where):
    """The image as a float array in [0, 1], 0 black and 1 white. Transparent
    parts count as white paper; 16-bit and float images keep their range."""
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        grey = numpy.asarray(image, dtype=numpy.float64)
        if not numpy.isfinite(grey).all():
            raise ImageError(f"{where}: {int((~numpy.isfinite(grey)).sum())} pixels are NaN or "
                             "infinite; save the image with finite pixel values")
        top = 65535.0 if image.mode.startswith("I;16") else next(
            (scale for scale in (1.0, 255.0, 65535.0) if grey.max() <= scale), grey.max())
        return numpy.clip(grey / top, 0.0, 1.0)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    return numpy.asarray(image.convert("L"), dtype=numpy.float64) / 255.0


def _shrink(image, Image):
    """Reduce an image larger than MAX_SIDE on its longer side (keeps aspect)."""
    if max(image.size) > MAX_SIDE:
        image = image.copy()
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.LANCZOS)
    return image


def _border(array):
    """The pixels of the outermost ring of a 2-D array."""
    if min(array.shape) <= 2:
        return array.ravel()
    return numpy.concatenate([array[0], array[-1], array[1:-1, 0], array[1:-1, -1]])


def otsu_threshold(values):
    """Otsu's threshold of values in [0, 1]: the cut between two classes
    (paper and ink) that maximises the variance between them."""
    counts, edges = numpy.histogram(values, bins=256, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = numpy.cumsum(counts)  # pixels at or below each cut
    mass = numpy.cumsum(counts * centres)
    total, total_mass = weight[-1], mass[-1]
    above = total - weight
    with numpy.errstate(divide="ignore", invalid="ignore"):
        between = (mass / weight - (total_mass - mass) / above) ** 2 * weight * above
    between = numpy.nan_to_num(between[:-1], nan=-1.0)
    return float(edges[int(numpy.argmax(between)) + 1])


def paper_level(ink, rounds=3, samples=20_000):
    """The paper's own level under the ink: a smooth quadratic surface fitted
    by least squares to the pixels that Otsu's threshold calls paper, refitted
    a few times as the threshold of what is left improves. On a clean scan it
    is flat (0); on a photo it follows the light's fall-off across the page."""
    height, width = ink.shape

    def terms(r, c):
        r, c = r / height - 0.5, c / width - 0.5
        return [numpy.ones_like(r), r, c, r * r, r * c, c * c]

    grid = numpy.mgrid[0:height, 0:width].astype(numpy.float64)
    level = numpy.full_like(ink, numpy.median(ink))
    for _ in range(rounds):
        flat = ink - level
        rows, cols = numpy.nonzero(flat <= otsu_threshold(numpy.clip(flat, 0.0, 1.0)))
        if rows.size < 6:
            break
        step = max(1, rows.size // samples)
        rows, cols = rows[::step], cols[::step]
        coefficients, *_ = numpy.linalg.lstsq(numpy.stack(terms(rows, cols), axis=1),
                                              ink[rows, cols], rcond=None)
        level = sum(k * t for k, t in zip(coefficients, terms(*grid)))
    return level


def to_mnist(image):
    """A digit image (a path, or a PIL image) as MNIST's network input: a
    (784,) float32 array, rows of 28 pixels, 1.0 ink on 0.0 background.

    The steps are MNIST's own (see the module docstring); raises
    :class:`ImageError` for a missing or unreadable file, or an image with no
    ink on it.
    """
    Image, ImageOps = _pillow()
    image, where = _open(image, Image, ImageOps)
    if image.size[0] < 1 or image.size[1] < 1:
        raise ImageError(f"{where}: the image is empty (0 pixels)")
    grey = _greyscale(_shrink(image, Image), Image, where)

    # Ink is what differs from the paper, which the border is mostly made of.
    ink = 1.0 - grey if numpy.median(_border(grey)) > 0.5 else grey
    if numpy.ptp(ink) >= MIN_CONTRAST:
        ink = ink - paper_level(ink)  # photos: light that falls off across the page
    contrast = ink.max() - max(numpy.median(_border(ink)), 0.0)
    if contrast < MIN_CONTRAST:
        raise ImageError(f"{where}: no digit found: the image is blank "
                         "(nothing stands out from the paper)")
    ink = numpy.clip(ink / contrast, 0.0, 1.0)
    ink[ink < NOISE] = 0.0

    rows = numpy.flatnonzero(ink.any(axis=1))
    cols = numpy.flatnonzero(ink.any(axis=0))
    ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]

    height, width = ink.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = Image.fromarray(ink.astype(numpy.float32)).resize(size, Image.LANCZOS)
    digit = numpy.clip(numpy.asarray(digit, dtype=numpy.float64), 0.0, 1.0)
    mass = digit.sum()
    if mass <= 0:  # (cannot happen for a non-blank crop, but never divide by zero)
        raise ImageError(f"{where}: no digit found after scaling it to {BOX} pixels")

    # Integer shifts, as MNIST: the centre of mass lands within half a pixel of (14, 14).
    com_row = (digit.sum(axis=1) * numpy.arange(digit.shape[0])).sum() / mass
    com_col = (digit.sum(axis=0) * numpy.arange(digit.shape[1])).sum() / mass
    top, left = int(round(CENTRE - com_row)), int(round(CENTRE - com_col))
    field = numpy.zeros((SIDE, SIDE), dtype=numpy.float32)
    r0, c0 = max(top, 0), max(left, 0)  # the part of the digit inside the field
    r1, c1 = min(top + digit.shape[0], SIDE), min(left + digit.shape[1], SIDE)
    field[r0:r1, c0:c1] = digit[r0 - top:r1 - top, c0 - left:c1 - left]
    return field.reshape(SIDE * SIDE)


def check_model(net):
    """A model for 28x28 digits: 784 inputs, 10 outputs."""
    if net.sizes[0] != SIDE * SIDE or net.sizes[-1] != DIGITS:
        raise InvalidArgumentError(
            f"the model's layers {net.sizes} do not fit digit images: it needs "
            f"{SIDE * SIDE} inputs (28x28 pixels) and {DIGITS} outputs")


def probabilities(net, X):
    """Class probabilities of the rows of X, shape (m, 10), float64: a^L for
    softmax outputs, a^L normalised to sum 1 for sigmoid outputs."""
    outputs = numpy.asarray(net.backend.to_host(net.feedforward(X)), dtype=numpy.float64)
    if net.kinds[-1] == "softmax":
        return outputs
    totals = outputs.sum(axis=1, keepdims=True)
    uniform = numpy.full_like(outputs, 1.0 / outputs.shape[1])
    return numpy.divide(outputs, totals, out=uniform, where=totals > 0)


def predict_images(net, images):
    """``[(label, probabilities), ...]``, one pair per image (paths or PIL
    images): the predicted digit as an int and the (10,) float64
    probabilities of each class, summing to 1."""
    check_model(net)
    images = list(images)
    if not images:
        return []
    X = numpy.stack([to_mnist(image) for image in images])
    return [(int(numpy.argmax(p)), p) for p in probabilities(net, X)]


def ascii_art(x):
    """A 28x28 input as 28 lines of text, darker characters for more ink."""
    shades = " .:-=+*#%@"
    levels = numpy.minimum((numpy.asarray(x).reshape(SIDE, SIDE) * len(shades)).astype(int),
                           len(shades) - 1)
    return ["".join(shades[v] for v in row) for row in levels]


def format_result(name, label, probs):
    """``NAME: 7 (0.913)  0:0.0012 1:0.0003 ... 9:0.0150``."""
    classes = " ".join(f"{digit}:{p:.4f}" for digit, p in enumerate(probs))
    return f"{name}: {label} ({probs[label]:.3f})  {classes}"


# ------------------------------------------------------------ the command
def cmd_predict(args):
    """Classify each image; print the digit and every class's probability."""
    _pillow()  # no Pillow: say so before loading anything
    net = Network.load(args.model, backend=args.backend)
    try:
        check_model(net)
    except InvalidArgumentError as exc:
        raise cli.CliError(f"{args.model}: {exc}") from None
    inputs = [to_mnist(path) for path in args.images]  # every image checked before any output
    for path, x, probs in zip(args.images, inputs, probabilities(net, numpy.stack(inputs))):
        label = int(numpy.argmax(probs))
        print(format_result(path, label, probs))
        if args.show:
            print("\n".join(f"  |{line}|" for line in ascii_art(x)))
    return 0


def add_predict_parser(commands):
    """Register ``predict`` on the subparsers object of ``nn-gpu``'s parser."""
    predict = commands.add_parser(
        "predict", help="classify your own digit images with a saved model",
        description="Classify digit images (any format Pillow reads) with a model from "
                    "`train --save`. Each image is made to look like an MNIST digit first: "
                    "greyscale, light ink on dark, cropped, scaled to 20 pixels and "
                    "centred by its centre of mass in 28x28. Prints, per image, the "
                    "predicted digit, its probability, and the probability of each digit "
                    "0-9. Needs Pillow: " + PILLOW_HINT,
        epilog="Best results: one dark digit on a plain, evenly lit light background "
               "(or the reverse), filling a good part of the picture.")
    predict.add_argument("model", metavar="MODEL", help="model file from `train --save`")
    predict.add_argument("images", metavar="IMAGE", nargs="+", help="image files of digits")
    predict.add_argument("--backend", choices=BACKEND_NAMES, default="auto")
    predict.add_argument("--show", action="store_true",
                         help="also draw each image as the network sees it (28x28 text)")
    predict.set_defaults(func=cmd_predict, parser=predict)
    return predict


def main(argv=None):
    """``nn-gpu predict`` on its own: ``argv`` holds the arguments after ``predict``
    (exit status as ``nn-gpu``)."""
    return cli.main(["predict", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
