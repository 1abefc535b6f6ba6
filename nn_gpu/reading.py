"""Reading a whole handwritten number: the notes' first sub-problem.

The notes split reading handwriting into (i) breaking an image of many digits
into single digits and (ii) classifying each, and observe that (i) can be
solved with (ii): rate a candidate segmentation by how well the classifier
does on its pieces. :func:`read_number` does exactly that:

1. the picture becomes ink on paper: greyscale; the paper's own level, a
   large-scale median of the picture, is subtracted (a photo's light falls
   off across the page); the ink is whichever side of the paper has the
   longer tail (dark ink on light paper, or the reverse); grain is smoothed;
2. hysteresis thresholding (Otsu's threshold, and half of it for the faint
   edges of strokes that reach it) gives the ink's connected components;
   components over the same columns (the parts of a broken 5 or 7) are one
   group, and specks much smaller than the digits are dropped;
3. the line of strokes is cut into digits by dynamic programming over
   candidate cut columns (the middle of each empty run, the minima of the
   vertical ink projection, and more every quarter digit height through
   long stretches of ink): the cuts chosen maximise Σ log P(piece) + log
   prior(width of the piece) - the cuts' costs, where P is the classifier's
   probability of the piece's best digit. A cut through a component no
   wider than one digit, a piece holding an empty column, and a cut through
   much ink all cost dearly, so digits standing apart stay whole; where
   digits touch, the cut goes where the classifier is surest of the pieces.

Every candidate piece is made MNIST-like exactly as ``nn-gpu predict`` does
(:mod:`nn_gpu.images`: cropped, scaled to 20 pixels, centred by its mass in
28x28) and all of them go through the network in one batched feedforward;
the probabilities are :func:`nn_gpu.metrics.probabilities`.
"""

from dataclasses import dataclass

import numpy

from . import images
from .images import ImageError
from .metrics import probabilities

# The costs and bonus below were chosen on numbers made of MNIST *validation*
# digits, never on the test digits the README's figures are measured on.
GRAIN_SIGMA = 1.0       # Gaussian smoothing of grain, in working pixels
BACKGROUND_CELLS = 24   # grid of the paper level: cells per shorter side
MIN_SPECK = 0.03        # components under this share of the largest one's area are specks
MIN_HEIGHT = 0.3        # groups under this share of the digits' height are specks
MAX_WIDTH = 1.6         # widest piece (in digit heights) the cutter considers
FILL_STEP = 0.25        # most digit heights of ink without a candidate cut
WIDTH_RANGE = (0.2, 1.0)  # MNIST digits are 0.2-1.0 times as wide as tall
WIDTH_SLOPE = 10.0      # log-prior fall-off per digit height of width outside that range
DIGIT_BONUS = 0.7       # log-prior bonus of one more digit (Σ log P favours fewer pieces)
CROSS_COST = 3.0        # log-prior cost of a cut through a component as narrow as a digit
SPLIT_WIDTH = 1.3       # components wider than this (digit heights) are digits touching
GAP_COST = 3.0          # log-prior cost of a piece with an empty column inside its ink
INK_COST = 2.0          # log-prior cost of a cut, per digit height of ink it cuts through
SLIVER = (0.15, 0.15)   # parts of a piece at a cut, under this share of its ink and this
                        # many digit heights wide, are a neighbour's (digits overlapping)


@dataclass(frozen=True)
class Reading:
    """What :func:`read_number` read: ``digits`` ("2026"), and for each digit
    the classifier's probability and its box ``(x0, y0, x1, y1)`` in the
    picture's pixels (x1, y1 exclusive, as Pillow's crop boxes)."""

    digits: str
    probabilities: tuple
    boxes: tuple

    def as_dict(self):
        return {"digits": self.digits,
                "probabilities": [round(p, 4) for p in self.probabilities],
                "boxes": [list(box) for box in self.boxes]}


def read_number(net, image):
    """The number written in ``image`` (a path, a PIL image, or a 2-D array
    of greys in [0, 1], 0 black) as a :class:`Reading`.

    Raises :class:`~nn_gpu.images.ImageError` for a missing, unreadable or
    blank picture (one line, naming it) and ``InvalidArgumentError`` for a
    model that does not take 28x28 digits.
    """
    images.check_model(net)
    grey, where, scale = load_grey(image)
    strokes, height = strokes_of_digits(ink_on_paper(grey, where), where)
    cuts, pieces = candidate_pieces(strokes, height)
    Image = images.require_pillow()[0]
    inputs = [images.mnist_field(piece.ink, where, Image) for piece in pieces
              if piece.ink is not None]
    probs = probabilities(net, numpy.stack(inputs))  # one batch: every candidate
    digits, confidences, boxes = [], [], []
    for piece, p in best_cuts(strokes, cuts, pieces, probs, height):
        label = int(numpy.argmax(p))
        digits.append(str(label))
        confidences.append(float(p[label]))
        boxes.append(tuple(int(v) for v in numpy.round(numpy.asarray(piece.box) * scale)))
    return Reading("".join(digits), tuple(confidences), tuple(boxes))


# --------------------------------------------------------------- the picture
def load_grey(image):
    """(greys in [0, 1] at working size, a name for messages, the factor
    from working pixels back to the picture's)."""
    if isinstance(image, numpy.ndarray):
        return _grey_array(image), "image", 1.0
    Image, ImageOps = images.require_pillow()
    picture, where = images._open(image, Image, ImageOps)
    if picture.size[0] < 1 or picture.size[1] < 1:
        raise ImageError(f"{where}: the image is empty (0 pixels)")
    width = picture.size[0]
    grey = images._greyscale(images._shrink(picture, Image), Image, where)  # at most MAX_SIDE
    return grey, where, width / grey.shape[1]


def _grey_array(array):
    if array.ndim != 2 or array.dtype.kind not in "uif":
        raise ImageError(f"image: expected a 2-D array of grey levels, got shape "
                         f"{array.shape} of {array.dtype}")
    if array.size == 0:
        raise ImageError("image: the image is empty (0 pixels)")
    if not numpy.isfinite(array).all():
        raise ImageError("image: the image has NaN or infinite pixels")
    grey = array / 255.0 if array.dtype.kind in "ui" else array.astype(numpy.float64)
    if grey.min() < 0 or grey.max() > 1:
        raise ImageError("image: grey levels must lie in [0, 1] (or 0-255 as integers)")
    return grey


def paper_level(grey):
    """The paper under the ink: at each place, the median over a square as
    wide as the picture's shorter side (ink is the minority in it: a line of
    digits is no taller than the picture), computed on a grid of
    BACKGROUND_CELLS to that side and spread back smoothly."""
    from scipy import ndimage

    height, width = grey.shape
    step = max(1, min(height, width) // BACKGROUND_CELLS)
    small = ndimage.median_filter(grey[::step, ::step], size=BACKGROUND_CELLS,
                                  mode="reflect")
    zoom = (height / small.shape[0], width / small.shape[1])
    return ndimage.zoom(small, zoom, order=1, mode="nearest", grid_mode=True)[:height, :width]


def ink_on_paper(grey, where="image"):
    """Ink as positive values on paper near 0, whatever the polarity and light."""
    from scipy import ndimage

    deviation = grey - paper_level(grey)
    noise = _noise(deviation)
    dark = numpy.maximum(-deviation - 4 * noise, 0).sum()
    light = numpy.maximum(deviation - 4 * noise, 0).sum()
    ink = -deviation if dark >= light else deviation
    smooth = ndimage.gaussian_filter(ink, GRAIN_SIGMA) if min(ink.shape) > 8 else ink
    if smooth.max() < max(images.MIN_CONTRAST, 8 * _noise(smooth)):
        raise ImageError(f"{where}: no number found: the image is blank "
                         "(nothing stands out from the paper)")
    return smooth


def _noise(values):
    """A robust standard deviation (the paper's grain): 1.4826 x MAD."""
    return 1.4826 * float(numpy.median(numpy.abs(values - numpy.median(values))))


# ------------------------------------------------------------- the strokes
def strokes_of_digits(ink, where="image"):
    """(strokes, height): the ink of the digits' components, zero elsewhere,
    and the digits' height in pixels.

    Hysteresis thresholding: a component is the ink above half of Otsu's
    threshold, kept when some of it reaches the threshold (faint stroke
    edges stay with their strokes; grain does not reach it). Components over
    the same columns (the parts of a broken 5) make one group; groups much
    lower than the digits, and components much smaller than the largest,
    are specks.
    """
    from scipy import ndimage

    noise = _noise(ink)
    high = max(images.otsu_threshold(numpy.clip(ink / ink.max(), 0, 1)) * ink.max(),
               6 * noise, images.MIN_CONTRAST / 2)
    labels, count = ndimage.label(ink > max(high / 2, 3 * noise), structure=numpy.ones((3, 3)))
    index = numpy.arange(1, count + 1)
    strong = ndimage.maximum(ink, labels, index) > high
    areas = ndimage.sum_labels(numpy.ones_like(ink), labels, index)
    if not strong.any():
        raise ImageError(f"{where}: no number found: the image is blank "
                         "(nothing stands out from the paper)")
    keep = strong & (areas >= MIN_SPECK * areas[strong].max())
    boxes = ndimage.find_objects(labels)
    groups = []  # [[x0, x1, y0, y1, labels], ...] left to right
    for label in sorted(index[keep], key=lambda k: boxes[k - 1][1].start):
        rows, cols = boxes[label - 1]
        last = groups[-1] if groups else None
        if last and min(cols.stop, last[1]) - cols.start > 0.5 * min(cols.stop - cols.start,
                                                                     last[1] - last[0]):
            last[1], last[2], last[3] = (max(last[1], cols.stop), min(last[2], rows.start),
                                         max(last[3], rows.stop))
            last[4].append(label)
        else:
            groups.append([cols.start, cols.stop, rows.start, rows.stop, [label]])
    heights = numpy.array([y1 - y0 for _, _, y0, y1, _ in groups])
    height = float(numpy.median(heights[heights >= heights.max() / 2]))
    kept = [label for group, h in zip(groups, heights) if h >= MIN_HEIGHT * height
            for label in group[4]]
    return numpy.where(numpy.isin(labels, kept), ink, 0.0), height


# ---------------------------------------------------------------- the cutting
@dataclass
class Piece:
    """A candidate digit: the strokes between two candidate cut columns."""

    start: int          # index of its left and right cuts among the candidates
    stop: int
    ink: numpy.ndarray  # its strokes scaled to full contrast (None: no ink there)
    box: tuple          # (x0, y0, x1, y1) of that ink, working pixels


def cut_columns(projection, height):
    """Candidate cut columns (sorted, from 0 to the width) for strokes with
    this vertical projection: one in each run of empty columns, the local
    minima of the ink, and more wherever ink runs on for over a quarter of
    a digit height without a candidate (digits that overlap)."""
    width = len(projection)
    p = numpy.convolve(projection, numpy.ones(3) / 3, mode="same")
    inner = numpy.arange(1, width - 1)
    minima = inner[(p[inner] < p[inner - 1]) & (p[inner] <= p[inner + 1])
                   | (p[inner] <= p[inner - 1]) & (p[inner] < p[inner + 1])]
    empty = projection == 0
    starts = numpy.flatnonzero(empty & ~numpy.r_[False, empty[:-1]])
    stops = numpy.flatnonzero(empty & ~numpy.r_[empty[1:], False]) + 1
    gaps = (starts + stops) // 2
    cuts = sorted({0, width, *gaps.tolist(), *minima[projection[minima] > 0].tolist()})
    step = max(2, int(height * FILL_STEP))
    filled = [0]
    for left, right in zip(cuts, cuts[1:]):
        run = right - left
        if projection[left:right].any():
            filled.extend(left + round(k * run / (run // step + 1)) for k in range(1, run // step + 1))
        filled.append(right)
    return filled


def candidate_pieces(strokes, height):
    """The candidate cuts and every piece between two of them that is empty
    or no wider than a digit might be."""
    cuts = cut_columns((strokes > 0).sum(axis=0), height)
    pieces = []
    for i, left in enumerate(cuts):
        for j in range(i + 1, len(cuts)):
            right = cuts[j]
            piece = _piece(strokes[:, left:right], left, height, left > 0, right < cuts[-1])
            if piece is None:
                pieces.append(Piece(i, j, None, None))
                continue
            if piece[1][2] - piece[1][0] > MAX_WIDTH * height:
                break  # and wider still further right
            pieces.append(Piece(i, j, *piece))
    return cuts, pieces


def _piece(strokes, left, height, cut_left, cut_right):
    """(ink scaled to full contrast, its box) or None where there is no ink.
    Small parts that a cut sliced off a neighbouring digit are left out."""
    strokes = _without_slivers(strokes, height, cut_left, cut_right)
    rows = numpy.flatnonzero(strokes.any(axis=1))
    cols = numpy.flatnonzero(strokes.any(axis=0))
    if rows.size == 0:
        return None
    ink = strokes[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    ink = numpy.clip(ink / numpy.percentile(ink[ink > 0], 90), 0.0, 1.0)
    ink[ink < images.NOISE] = 0.0
    x0, y0 = left + cols[0], rows[0]
    return ink, (x0, y0, x0 + ink.shape[1], y0 + ink.shape[0])


def _without_slivers(strokes, height, cut_left, cut_right):
    from scipy import ndimage

    if not (cut_left or cut_right):
        return strokes
    labels, count = ndimage.label(strokes > 0, structure=numpy.ones((3, 3)))
    if count < 2:
        return strokes
    index = numpy.arange(1, count + 1)
    mass = ndimage.sum_labels(strokes, labels, index)
    widths = numpy.array([cols.stop - cols.start for _, cols in ndimage.find_objects(labels)])
    edges = numpy.zeros(count + 1, dtype=bool)
    if cut_left:
        edges[labels[:, 0]] = True
    if cut_right:
        edges[labels[:, -1]] = True
    sliver = (mass < SLIVER[0] * mass.sum()) & (widths <= SLIVER[1] * height) & edges[1:]
    return numpy.where(numpy.isin(labels, index[sliver]), 0.0, strokes)


def width_prior(width):
    """log prior of a digit ``width`` digit-heights wide (flat over MNIST's range)."""
    low, high = WIDTH_RANGE
    return -WIDTH_SLOPE * (max(low - width, 0.0) + max(width - high, 0.0))


def cut_costs(strokes, height):
    """For each column c, the log-prior cost of cutting between columns c-1
    and c: CROSS_COST for each component no wider than one digit that the
    cut would split (a digit standing apart is one digit), and INK_COST per
    digit height of ink in the column (digits touch by a stroke or two)."""
    from scipy import ndimage

    labels, _ = ndimage.label(strokes > 0, structure=numpy.ones((3, 3)))
    cost = numpy.zeros(strokes.shape[1] + 2)
    for _, cols in ndimage.find_objects(labels):
        if cols.stop - cols.start <= SPLIT_WIDTH * height:
            cost[cols.start + 1] += CROSS_COST
            cost[cols.stop] -= CROSS_COST
    ink = numpy.r_[numpy.count_nonzero(strokes, axis=0), 0]
    return numpy.cumsum(cost)[:-1] + INK_COST * ink / height


def best_cuts(strokes, cuts, pieces, probs, height):
    """[(piece, probabilities), ...]: the digits of the segmentation of
    ``strokes`` that maximises Σ (log P(best digit) + log prior(width)) over
    its pieces, less the cost of the cuts through single
    digits (:func:`cut_costs`) and GAP_COST for each empty column inside
    a piece's ink, by dynamic programming over the cut columns, left to right.
    ``probs`` has a row for each piece with ink, in order."""
    best = numpy.full(len(cuts), -numpy.inf)
    best[0] = 0.0
    choice = [None] * len(cuts)
    rows = numpy.cumsum([piece.ink is not None for piece in pieces]) - 1
    cost = cut_costs(strokes, height)[cuts]
    cuts = numpy.asarray(cuts)
    gaps = numpy.r_[~strokes.any(axis=0), True][cuts]
    for k in sorted(range(len(pieces)), key=lambda k: (pieces[k].stop, pieces[k].start)):
        piece = pieces[k]
        score = best[piece.start] - cost[piece.stop]
        if piece.ink is not None:
            width = (piece.box[2] - piece.box[0]) / height
            score += (numpy.log(max(probs[rows[k]].max(), 1e-300)) + width_prior(width)
                      + DIGIT_BONUS)
            inside = gaps[piece.start + 1:piece.stop]
            score -= GAP_COST * numpy.count_nonzero(
                inside & (cuts[piece.start + 1:piece.stop] > piece.box[0])
                & (cuts[piece.start + 1:piece.stop] < piece.box[2]))
        if score > best[piece.stop]:
            best[piece.stop], choice[piece.stop] = score, k
    path, at = [], len(cuts) - 1
    while at > 0:
        piece = pieces[choice[at]]
        if piece.ink is not None:
            path.append((piece, probs[rows[choice[at]]]))
        at = piece.start
    return path[::-1]


# ---------------------------------------------------------------- the drawing
def draw_reading(image, reading, path, dpi=100):
    """Write a PNG (atomically) of ``image`` with each digit read: its box
    and, above it, the digit and its probability. Needs matplotlib."""
    from .plots import new_figure, save_png

    grey, _, scale = load_grey(image)
    height, width = grey.shape[0] * scale, grey.shape[1] * scale
    inches = min(12.0, max(4.0, width / 80))
    fig = new_figure((inches, min(8.0, inches * height / width) + 0.5), dpi)
    ax = fig.add_subplot()
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1, extent=(0, width, height, 0))
    for digit, p, (x0, y0, x1, y1) in zip(reading.digits, reading.probabilities,
                                         reading.boxes):
        ax.add_patch(_rectangle((x0, y0), x1 - x0, y1 - y0))
        ax.text((x0 + x1) / 2, y0, f"{digit}\n{p:.2f}", color="tab:red", ha="center",
                va="bottom", fontsize=10, fontweight="bold")
    ax.set_title(f"read: {reading.digits}")
    ax.set_axis_off()
    save_png(fig, path)


def _rectangle(corner, width, height):
    from matplotlib.patches import Rectangle

    return Rectangle(corner, width, height, fill=False, edgecolor="tab:red", linewidth=1.5)
