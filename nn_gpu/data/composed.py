"""Numbers written with MNIST digits, to measure :func:`nn_gpu.reading.reader.read_number`.

A number is a row of MNIST digits (take them from the *test* set: the
networks never saw those), each cropped to its ink's columns and set beside
the last with a gap -- or a negative gap, so that they touch or overlap --
each a pixel or two higher or lower, scaled up, and drawn as a picture:
dark ink on white paper, optionally with light falling off across the page,
grain, or inverted.
"""

from dataclasses import dataclass

import numpy

from .mnist import COLS, ROWS

MARGIN = 6  # paper around the number, MNIST pixels
JITTER = 2  # each digit may sit this many MNIST pixels higher or lower


@dataclass(frozen=True)
class Style:
    """How a composed number looks: ``spacing`` is the (low, high) range of
    the gaps between neighbouring digits' ink in MNIST pixels (negative: they
    overlap by that much); ``scale`` the size in picture pixels per MNIST
    pixel; ``light`` darkens the paper by a third across the page; ``grain``
    is the standard deviation of pixel noise; ``invert`` writes light ink on
    dark paper."""

    spacing: tuple = (2, 8)
    scale: float = 2.0
    light: bool = False
    grain: float = 0.0
    invert: bool = False


GAPS = Style()
TOUCHING = Style(spacing=(-3, 0))
PHOTO = Style(scale=3.0, light=True, grain=0.04, invert=False)


def compose_number(images, rng, style=GAPS):
    """A picture (2-D greys in [0, 1], 0 black) of the (n, 784) MNIST
    ``images`` side by side, and each digit's box (x0, y0, x1, y1) in it."""
    digits = [numpy.asarray(x, dtype=numpy.float64).reshape(ROWS, COLS) for x in images]
    crops = []
    for digit in digits:
        cols = numpy.flatnonzero(digit.any(axis=0))
        crops.append(digit[:, cols[0]:cols[-1] + 1])
    gaps = rng.integers(style.spacing[0], style.spacing[1] + 1, size=len(crops))
    gaps[0] = 0
    lefts = MARGIN + numpy.cumsum(gaps + numpy.array([0] + [c.shape[1] for c in crops[:-1]]))
    tops = MARGIN + JITTER + rng.integers(-JITTER, JITTER + 1, size=len(crops))
    width = int(lefts[-1] + crops[-1].shape[1] + MARGIN)
    ink = numpy.zeros((ROWS + 2 * (MARGIN + JITTER), width))
    boxes = []
    for crop, left, top in zip(crops, lefts, tops):
        region = ink[top:top + ROWS, left:left + crop.shape[1]]
        numpy.maximum(region, crop, out=region)
        rows = numpy.flatnonzero(crop.any(axis=1))
        boxes.append((left, top + rows[0], left + crop.shape[1], top + rows[-1] + 1))
    picture = _draw(ink, rng, style)
    scale = picture.shape[1] / ink.shape[1]
    return picture, [tuple(int(round(v * scale)) for v in box) for box in boxes]


def _draw(ink, rng, style):
    from PIL import Image

    height, width = (round(n * style.scale) for n in ink.shape)
    ink = numpy.asarray(Image.fromarray(ink.astype(numpy.float32)).resize(
        (width, height), Image.BILINEAR), dtype=numpy.float64).clip(0, 1)
    paper = numpy.full(ink.shape, 0.95)
    if style.light:
        paper = paper - 0.32 * numpy.linspace(0, 1, width)[None, :] \
            - 0.08 * numpy.linspace(-1, 1, height)[:, None] ** 2
    picture = paper * (1 - 0.8 * ink)
    if style.invert:
        picture = 1 - picture
    if style.grain:
        picture = picture + rng.normal(0, style.grain, picture.shape)
    return picture.clip(0, 1)


def edit_distance(a, b):
    """Levenshtein distance between two strings (insertions, deletions, substitutions)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def reading_accuracy(read, X, labels, rng, count, style=GAPS, lengths=(1, 12)):
    """(digit accuracy, whole-number accuracy, [(truth, read), ...]) of
    ``read(picture) -> digits string`` on ``count`` numbers of ``lengths[0]``
    to ``lengths[1]`` digits drawn from (X, labels). Digit accuracy is
    1 - (edit distance / length), summed over the numbers: a missed, extra or
    wrong digit each costs one."""
    right = total = whole = 0
    results = []
    for _ in range(count):
        rows = rng.choice(len(X), size=rng.integers(lengths[0], lengths[1] + 1), replace=False)
        truth = "".join(str(int(d)) for d in labels[rows])
        picture, _ = compose_number(X[rows], rng, style)
        found = read(picture)
        right += max(len(truth) - edit_distance(truth, found), 0)
        total += len(truth)
        whole += found == truth
        results.append((truth, found))
    return right / total, whole / count, results
