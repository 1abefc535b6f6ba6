"""A photo or drawing of a digit as an MNIST-style network input.

A photo or drawing of a digit looks nothing like an MNIST image until it has
been through the steps that made MNIST (LeCun et al.): :func:`to_mnist`
turns it greyscale; inverts it when the background is light (MNIST is white
ink, 1.0, on black, 0.0); levels the paper (a photo's light falls off across
the page) and stretches the ink to full contrast; crops it to the ink's
bounding box; scales it, keeping its aspect ratio, so that its longer
side is 20 pixels; and places it in a 28x28 field so that its centre of mass
falls on the field's centre, pixel (14, 14) -- where the MNIST digits' own
centres of mass are, to within half a pixel.

``nn-gpu predict`` classifies such images with a saved model.

Images are read with Pillow, an optional dependency
(``pip install 'nn_gpu[image]'``), imported only when an image is read. It
works best on a single dark digit on a plain, evenly lit light background
(or the reverse), filling a good part of the picture.
"""

import os
import warnings

import numpy

from ..data.mnist import COLS, NUM_CLASSES, PIXELS, ROWS
from ..errors import InvalidArgumentError, NNGpuError
from ..io.fileio import open_input

PILLOW_HINT = "pip install 'nn_gpu[image]'"
BOX = 20            # the longer side of the digit within it
CENTRE = ROWS / 2     # where its centre of mass goes (row and column): 14.0
MIN_CONTRAST = 0.1  # ink must differ from the background by this much (of full scale)
NOISE = 0.2         # after stretching, fainter pixels count as background
MAX_SIDE = 1024     # larger images are reduced first (speed; the digit ends up 20 px)


class ImageError(NNGpuError):
    """An image to classify is missing, unreadable, or has no digit in it."""


def require_pillow():
    """The PIL.Image and PIL.ImageOps modules, or a one-line error saying how to get them."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise ImageError(f"reading images needs Pillow, which is not installed: "
                         f"{PILLOW_HINT}") from None
    return Image, ImageOps


def _open(source, Image, ImageOps):
    """``source`` (a path, a binary stream such as the bytes of an upload in
    a ``BytesIO``, named for messages by its ``name`` attribute where it has
    one, or a PIL image) as a decoded PIL image, upright as the camera saw it
    (EXIF orientation), and a name for messages."""
    if isinstance(source, Image.Image):
        return _decoded(source, "image", ImageOps), "image"
    if hasattr(source, "read"):
        where, stream = str(getattr(source, "name", "image")), source
    else:
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
    """A digit image (a path, a binary stream, or a PIL image) as MNIST's input: a
    (784,) float32 array, rows of 28 pixels, 1.0 ink on 0.0 background.

    The steps are MNIST's own (see the module docstring); raises
    :class:`ImageError` for a missing or unreadable file, or an image with no
    ink on it.
    """
    Image, ImageOps = require_pillow()
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
    return mnist_field(ink, where, Image)


def mnist_field(ink, where, Image, line_height=None):
    """Ink (a 2-D array in [0, 1], 0 paper, with some ink on it) as MNIST's
    input: cropped to the ink, scaled so that its longer side is BOX pixels,
    placed by its centre of mass in the SIDE x SIDE field; (784,) float32.

    With ``line_height`` (the height of the digits on the line the ink
    comes from), the ink is scaled as the line is instead -- a digit as tall
    as the line gets BOX pixels of height, half a digit stays half as tall,
    two digits stay twice as wide -- shrunk only where it would not fit."""
    rows = numpy.flatnonzero(ink.any(axis=1))
    cols = numpy.flatnonzero(ink.any(axis=0))
    ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]

    height, width = ink.shape
    scale = BOX / max(height, width)
    if line_height is not None:
        scale = min(BOX / line_height, ROWS / max(height, width))
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
    field = numpy.zeros((ROWS, COLS), dtype=numpy.float32)
    r0, c0 = max(top, 0), max(left, 0)  # the part of the digit inside the field
    r1, c1 = min(top + digit.shape[0], ROWS), min(left + digit.shape[1], COLS)
    field[r0:r1, c0:c1] = digit[r0 - top:r1 - top, c0 - left:c1 - left]
    return field.reshape(PIXELS)


def check_model(net):
    """A model for 28x28 digits: 784 inputs, 10 outputs (or 1: a detector of one digit)."""
    if net.sizes[0] != PIXELS or net.sizes[-1] not in (NUM_CLASSES, 1):
        raise InvalidArgumentError(
            f"the model's layers {net.sizes} do not fit digit images: it needs "
            f"{PIXELS} inputs ({ROWS}x{COLS} pixels) and {NUM_CLASSES} outputs (or 1, a "
            "detector of one digit)")
