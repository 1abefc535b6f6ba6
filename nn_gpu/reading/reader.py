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
   vertical ink projection, the columns where components begin and end,
   and more every quarter digit height through long stretches of ink). A
   piece between two cuts holds the components there; a component's tail
   that reaches over a cut (digits overlapping without touching) goes with
   the rest of it, and a component is cut only where both sides are more
   than a tail. The cuts chosen maximise
   Σ [log P(piece) + log prior(width) + log W(piece)] - the cuts' costs,
   where P is the classifier's probability of the piece's best digit, the
   width prior rules out pieces wider than any MNIST digit, and W is the
   whole-digit check's probability that the piece
   is one whole digit (:mod:`nn_gpu.reading.whole_digit`, which sees the piece as
   the classifier does and at the line's scale): the classifier, trained
   on single digits, is often sure of a piece holding two digits or half
   of one, and the notes' score alone then cannot tell a good cut from a
   bad one. A cut through a component no wider than one digit, a piece
   holding an empty column, a cut through much ink and one along a stroke
   (a thick straight 1 split lengthwise) all cost dearly, so digits
   standing apart stay whole; where digits touch, the cut goes where
   the pieces look most like whole digits the classifier is sure of.

Every candidate piece is made MNIST-like exactly as ``nn-gpu predict`` does
(:mod:`nn_gpu.reading.images`: cropped, scaled to 20 pixels, centred by its mass in
28x28) and all of them go through the network in one batched feedforward
(and through the check in one more); the probabilities are
:func:`nn_gpu.model.metrics.probabilities`.
"""

import json
from dataclasses import dataclass, field

import numpy

from ..model.metrics import probabilities
from . import images
from .images import ImageError

# The costs and bonus below are chosen on numbers made of MNIST *validation*
# digits, never on the test digits that docs/reading.md's figures are measured on.
GRAIN_SIGMA = 1.0       # Gaussian smoothing of grain, in working pixels
MIN_SIDE = 12           # the smallest picture (working pixels, each way) a line is read from
BACKGROUND_CELLS = 24   # grid of the paper level: cells per shorter side
MIN_SPECK = 0.03        # components under this share of the largest one's area are specks
MIN_HEIGHT = 0.3        # groups under this share of the digits' height are specks
MAX_WIDTH = 1.6         # widest piece (in digit heights) the cutter considers
FILL_STEP = 0.25        # most digit heights of ink without a candidate cut
DIGIT_BONUS = (0.7, 5.0)  # log-prior bonus of one more digit, without and with the whole-digit
                          # check (Σ log P favours fewer pieces; the check stops half digits)
CROSS_COST = 3.0        # log-prior cost of a cut through a component as narrow as a digit
SPLIT_WIDTH = 1.3       # components wider than this (digit heights) are digits touching
GAP_COST = 3.0          # log-prior cost of a piece with an empty column inside its ink
WHOLE_WEIGHT = 1.0      # weight of the whole-digit check's log-probability
INK_COST = 2.0          # log-prior cost of a cut, per digit height of ink it cuts through
STROKE_COST = 3.0       # log-prior cost of a cut, per digit height it runs along a stroke...
STROKE_FREE = 0.3       # ...beyond this many (a cut between touching digits crosses short runs)
SLIVER = (0.15, 0.2)    # a component's part beyond a cut, under this share of its ink and
                        # this many digit heights wide, goes with the rest of it
WIDEST = 1.7            # MNIST's widest digits (2s, 5s) are 1.67 times as wide as tall (99.5th
                        # percentile over the training set, ink >= 0.25): a wider piece is two
WIDTH_SLOPE = 10.0      # log-prior fall-off per unit of aspect (width / height) beyond WIDEST
# A line of digits is refused beyond these, before its pieces are made (they are not a
# number -- a page of dots, a texture -- and their pieces would exhaust the memory):
MAX_STROKES = 1000      # connected strokes (a dozen digits, each in a few parts, have < 100)
MAX_PIECES_AREA = 4e8   # pixels of all candidate pieces at most (the columns between each
                        # two cuts near enough, times the inked rows; legitimate lines reach
                        # 2e8 at most: two touching digits 1,024 pixels wide)


@dataclass(frozen=True)
class Reading:
    """What :func:`read_number` read: ``digits`` ("2026"), and for each digit
    the classifier's probability and its box ``(x0, y0, x1, y1)`` in the
    picture's pixels (x1, y1 exclusive, as Pillow's crop boxes); ``inputs``
    are the digits as the classifier saw them, (784,) float32 each (MNIST-like
    28x28: :func:`nn_gpu.reading.images.mnist_field`)."""

    digits: str
    probabilities: tuple
    boxes: tuple
    inputs: tuple = field(default=(), compare=False, repr=False)

    def as_dict(self):
        return {"digits": self.digits,
                "probabilities": [round(p, 4) for p in self.probabilities],
                "boxes": [list(box) for box in self.boxes]}

    def json_line(self, name):
        """The line ``nn-gpu read --json`` prints for this reading of the
        image ``name`` (without its newline): ``nn-gpu serve`` answers the same."""
        return json.dumps({"file": name, **self.as_dict()})


def read_number(net, image, check=None):
    """The number written in ``image`` (a path, a binary stream, a PIL image,
    or a 2-D array of greys in [0, 1], 0 black) as a :class:`Reading`, by the digit
    classifier ``net`` (a Network or a ConvNetwork) and, where given, the
    whole-digit ``check`` (:func:`nn_gpu.reading.whole_digit.default_check`).

    Raises :class:`~nn_gpu.reading.images.ImageError` for a missing, unreadable or
    blank picture (one line, naming it) and ``InvalidArgumentError`` for a
    model that does not take 28x28 digits or does not name them (a detector
    of one digit answers only yes or no).
    """
    images.check_model(net, detector_ok=False)
    grey, where, scale = load_grey(image)
    strokes, height = strokes_of_digits(ink_on_paper(grey, where), where)
    cuts, pieces, components = candidate_pieces(strokes, height, where)
    Image = images.require_pillow()[0]
    inputs = numpy.stack([images.mnist_field(piece.ink, where, Image) for piece in pieces
                          if piece.ink is not None])
    probs = probabilities(net, inputs)  # one batch: every candidate
    wholes = None if check is None else probabilities(check, numpy.stack(  # and one more
        [check_input(piece.ink, height, Image)
         for piece in pieces if piece.ink is not None]))[:, 1]
    chosen = best_cuts(components, cuts, pieces, probs, height, wholes)
    digits, confidences, boxes, seen = [], [], [], []
    for (piece, p), box in zip(chosen, digit_boxes(components, cuts, chosen, height)):
        label = int(numpy.argmax(p))
        digits.append(str(label))
        confidences.append(float(p[label]))
        boxes.append(tuple(int(v) for v in numpy.round(numpy.asarray(box) * scale)))
        seen.append(images.mnist_field(piece.ink, where, Image))  # as in ``inputs`` above
    return Reading("".join(digits), tuple(confidences), tuple(boxes), tuple(seen))


def check_input(ink, line_height, Image):
    """What the whole-digit check (:mod:`nn_gpu.reading.whole_digit`) sees of a
    piece of strokes (2-D ink, cropped) from a line of digits
    ``line_height`` pixels tall: the piece made MNIST-like, as the
    classifier sees it, then at the line's scale, where a half or a pair of
    digits keeps its size (:func:`nn_gpu.reading.images.mnist_field`); (1568,)
    float32."""
    return numpy.concatenate([images.mnist_field(ink, "piece", Image),
                              images.mnist_field(ink, "piece", Image, line_height)])


# --------------------------------------------------------------- the picture
def load_grey(image):
    """(greys in [0, 1] at working size -- at most MAX_SIDE pixels each way
    --, a name for messages, the factor from working pixels back to the
    picture's). A picture that, fitted into MAX_SIDE pixels, is less than
    MIN_SIDE tall or wide is refused: no line of digits can be read there
    (a very wide, very flat picture would be a few pixels tall)."""
    Image, ImageOps = images.require_pillow()
    if isinstance(image, numpy.ndarray):
        grey = _grey_array(image)
        if max(grey.shape) > images.MAX_SIDE:  # as a picture's: at most MAX_SIDE
            grey = numpy.asarray(images._shrink(Image.fromarray(grey.astype(numpy.float32)),
                                                Image), dtype=numpy.float64).clip(0.0, 1.0)
        return _fits(grey, "image", image.shape[::-1]), "image", image.shape[1] / grey.shape[1]
    picture, where = images._open(image, Image, ImageOps)
    if picture.size[0] < 1 or picture.size[1] < 1:
        raise ImageError(f"{where}: the image is empty (0 pixels)")
    width = picture.size[0]
    grey = images._greyscale(images._shrink(picture, Image), Image, where)  # at most MAX_SIDE
    return _fits(grey, where, picture.size), where, width / grey.shape[1]


def _fits(grey, where, size):
    """``grey`` (the picture of ``size`` (width, height) at working size),
    or an :class:`ImageError` where it is too small or too flat to read."""
    if min(grey.shape) >= MIN_SIDE:
        return grey
    width, height = size
    if min(size) >= MIN_SIDE:
        raise ImageError(
            f"{where}: {width}x{height} pixels is too {'flat' if width > height else 'narrow'} "
            f"for a line of digits: fitted into {images.MAX_SIDE} pixels to be read, it would "
            f"be {grey.shape[1]}x{grey.shape[0]}; crop it to the number")
    raise ImageError(f"{where}: {width}x{height} pixels is too small to hold a line of digits "
                     f"(at least {MIN_SIDE} pixels each way)")


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
    if len(kept) > MAX_STROKES:
        raise ImageError(f"{where}: {len(kept):,} separate strokes, too many for one line of "
                         f"digits (at most {MAX_STROKES:,}); crop the picture to the number")
    return numpy.where(numpy.isin(labels, kept), ink, 0.0), height


# ---------------------------------------------------------------- the cutting
@dataclass
class Piece:
    """A candidate digit: the strokes between two candidate cut columns."""

    start: int          # index of its left and right cuts among the candidates
    stop: int
    ink: numpy.ndarray  # its strokes scaled to full contrast (None: no ink there)
    box: tuple          # (x0, y0, x1, y1) of that ink, working pixels


@dataclass(frozen=True)
class Components:
    """The strokes' connected components, as the cutter needs them:
    ``labels`` (0 paper, k + 1 for component k), and per component its
    column span ``[first, stop)``, its ink pixels per column (``counts``,
    (n, width)) and its ink left of each column (``left``, (n, width + 1):
    ``left[k, c]`` is the ink of component k in columns < c)."""

    labels: numpy.ndarray
    first: numpy.ndarray
    stop: numpy.ndarray
    counts: numpy.ndarray
    left: numpy.ndarray

    @classmethod
    def of(cls, strokes):
        from scipy import ndimage

        labels, count = ndimage.label(strokes > 0, structure=numpy.ones((3, 3)))
        width = strokes.shape[1]
        counts = numpy.zeros((count, width))
        mass = numpy.zeros((count, width))
        for k in range(count):
            mine = labels == k + 1
            counts[k] = mine.sum(axis=0)
            mass[k] = numpy.where(mine, strokes, 0.0).sum(axis=0)
        columns = numpy.arange(width)
        inked = counts > 0
        first = numpy.where(inked, columns, width).min(axis=1)
        stop = numpy.where(inked, columns + 1, 0).max(axis=1)
        left = numpy.hstack([numpy.zeros((count, 1)), numpy.cumsum(mass, axis=1)])
        return cls(labels, first, stop, counts, left)

    def sliver(self, k, a, b, height):
        """Whether columns [a, b) of component(s) k are a sliver of it: at
        most SLIVER[1] digit heights wide and SLIVER[0] of its ink (the tail
        of a digit that reaches over its neighbour; no columns at all count
        too). k, a, b broadcast together."""
        mass = self.left[k, b] - self.left[k, a]
        return (b - a <= SLIVER[1] * height) & (mass <= SLIVER[0] * self.left[k, -1])

    def taken(self, left, right, height):
        """(lo, hi): per component, the columns [lo, hi) of it that the
        piece between cut columns ``left`` and ``right`` holds (lo == hi:
        none). A component's part inside the piece is dropped when it is a
        sliver (its digit is a neighbour), and its parts beyond the cuts come
        along when they are slivers (this digit reaches over a neighbour's):
        digits that overlap without touching are taken whole. (A sliver may
        so fall between two pieces -- the junction of touching digits, which
        reads better left out -- :func:`digit_boxes` puts it back into the
        boxes.)"""
        every = numpy.arange(len(self.first))
        inside_lo = numpy.clip(left, self.first, self.stop)
        inside_hi = numpy.clip(right, self.first, self.stop)
        keep = (inside_hi > inside_lo) & ~self.sliver(every, inside_lo, inside_hi, height)
        lo = numpy.where(self.sliver(every, self.first, inside_lo, height), self.first, inside_lo)
        hi = numpy.where(self.sliver(every, inside_hi, self.stop, height), self.stop, inside_hi)
        return numpy.where(keep, lo, 0), numpy.where(keep, hi, 0)


def cut_columns(projection, height, edges=()):
    """Candidate cut columns (sorted, from 0 to the width) for strokes with
    this vertical projection: one in each run of empty columns, the local
    minima of the ink, the ``edges`` where components begin and end
    (overlapping digits part there), and more wherever ink runs on for over
    FILL_STEP digit heights without a candidate (digits that touch)."""
    width = len(projection)
    p = numpy.convolve(projection, numpy.ones(3) / 3, mode="same")
    inner = numpy.arange(1, width - 1)
    minima = inner[(p[inner] < p[inner - 1]) & (p[inner] <= p[inner + 1])
                   | (p[inner] <= p[inner - 1]) & (p[inner] < p[inner + 1])]
    empty = projection == 0
    starts = numpy.flatnonzero(empty & ~numpy.r_[False, empty[:-1]])
    stops = numpy.flatnonzero(empty & ~numpy.r_[empty[1:], False]) + 1
    gaps = (starts + stops) // 2
    inked_edges = [int(c) for c in edges if 0 < c < width and projection[c - 1] and projection[c]]
    cuts = sorted({0, width, *gaps.tolist(), *minima[projection[minima] > 0].tolist(),
                   *inked_edges})
    step = max(2, int(height * FILL_STEP))
    filled = [0]
    for left, right in zip(cuts, cuts[1:]):
        run = right - left
        if projection[left:right].any():
            gaps = run // step + 1
            filled.extend(left + round(k * run / gaps) for k in range(1, gaps))
        filled.append(right)
    return filled


def candidate_pieces(strokes, height, where="image"):
    """(cuts, pieces, components): the candidate cuts and every piece
    between two of them that is empty or no wider than a digit might be
    (:class:`ImageError` naming ``where`` if they would hold over
    MAX_PIECES_AREA pixels)."""
    components = Components.of(strokes)
    cuts = cut_columns((strokes > 0).sum(axis=0), height,
                       [*components.first, *components.stop])
    widths = numpy.subtract.outer(cuts, cuts)
    area = widths[(widths > 0) & (widths <= MAX_WIDTH * height)].sum() * numpy.count_nonzero(
        strokes.any(axis=1))
    if area > MAX_PIECES_AREA:
        raise ImageError(f"{where}: too many strokes too close together to be one line of "
                         "digits; crop the picture to the number")
    pieces = []
    for i, left in enumerate(cuts):
        for j in range(i + 1, len(cuts)):
            piece = _piece(strokes, components, left, cuts[j], height)
            if piece is None:
                pieces.append(Piece(i, j, None, None))
                continue
            if piece[1][2] - piece[1][0] > MAX_WIDTH * height:
                break  # and wider still further right
            pieces.append(Piece(i, j, *piece))
    return cuts, pieces, components


def _piece(strokes, components, left, right, height):
    """(ink scaled to full contrast, its box) of the piece between cut
    columns ``left`` and ``right`` (:meth:`Components.taken`), or None
    where it holds no ink."""
    lo, hi = components.taken(left, right, height)
    held = hi > lo
    if not held.any():
        return None
    x0, x1 = int(lo[held].min()), int(hi[held].max())
    labels = components.labels[:, x0:x1]
    columns = numpy.arange(x0, x1)
    split = held & (components.first < lo), held & (hi < components.stop)
    lo, hi = numpy.r_[0, lo], numpy.r_[0, hi]  # label 0, the paper: never held
    mask = (columns >= lo[labels]) & (columns < hi[labels])
    ink = numpy.where(mask, strokes[:, x0:x1], 0.0)
    ink = _without_slivers(ink, height, split[0].any() and x0 == left,
                           split[1].any() and x1 == right)
    rows, cols = numpy.flatnonzero(ink.any(axis=1)), numpy.flatnonzero(ink.any(axis=0))
    if rows.size == 0:  # all of it was the neighbours' slivers
        return None
    ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    ink = numpy.clip(ink / numpy.percentile(ink[ink > 0], 90), 0.0, 1.0)
    ink[ink < images.NOISE] = 0.0
    return ink, (x0 + int(cols[0]), int(rows[0]), x0 + int(cols[-1]) + 1, int(rows[-1]) + 1)


def _without_slivers(strokes, height, cut_left, cut_right):
    """The strokes of a piece less the small parts, at an edge where a
    component is cut, that belong to the neighbour there (digits that touch
    and overlap): under SLIVER[0] of the piece's ink and SLIVER[1] digit
    heights wide."""
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


def width_prior(aspect):
    """log prior of a piece ``aspect`` times as wide as it is tall: flat up
    to WIDEST, falling off beyond: one prior for every digit, as the
    whole-digit check sees the piece's shape."""
    return -WIDTH_SLOPE * max(aspect - WIDEST, 0.0)


def cut_costs(components, height):
    """For each column c, the log-prior cost of cutting between columns c-1
    and c: for each component the cut really splits (neither side a
    sliver: :meth:`Components.taken`), CROSS_COST when the component is no
    wider than SPLIT_WIDTH digit heights (a digit standing apart is one
    digit), INK_COST per digit height of its ink the cut goes through
    (digits touch by a stroke or two), and STROKE_COST per digit height by
    which the longest stretch of ink the cut runs along (ink on both sides
    of it, row after row) exceeds STROKE_FREE: such a cut splits a stroke
    lengthwise -- a thick straight 1 into two thin ones -- where touching
    digits are crossed by short stretches."""
    count, width = components.counts.shape
    columns = numpy.arange(width + 1)
    cost = numpy.zeros(width + 1)
    ink = numpy.hstack([components.counts, numpy.zeros((count, 1))])
    labels = components.labels
    for k in range(count):
        first, stop = components.first[k], components.stop[k]
        inside = columns[first + 1:stop]
        if inside.size == 0:
            continue
        split = ~(components.sliver(k, first, inside, height)
                  | components.sliver(k, inside, stop, height))
        narrow = stop - first <= SPLIT_WIDTH * height
        mine = labels[:, first:stop] == k + 1
        along = longest_runs(mine[:, :-1] & mine[:, 1:]) / height
        cost[inside] += split * (CROSS_COST * narrow + INK_COST * ink[k, inside] / height
                                 + STROKE_COST * numpy.maximum(along - STROKE_FREE, 0.0))
    return cost


def longest_runs(mask):
    """For each column of the 2-D boolean ``mask``, the length of its longest
    run of consecutive True rows."""
    height, width = mask.shape
    run = numpy.zeros(width, dtype=numpy.int64)
    longest = numpy.zeros(width, dtype=numpy.int64)
    for row in mask:
        run = numpy.where(row, run + 1, 0)
        numpy.maximum(longest, run, out=longest)
    return longest


def best_cuts(components, cuts, pieces, probs, height, wholes=None):
    """[(piece, probabilities), ...]: the digits of the segmentation that
    maximises Σ (log P(best digit) + log prior(its width) +
    WHOLE_WEIGHT log P(one whole digit) + DIGIT_BONUS) over its pieces, less
    the cost of its cuts (:func:`cut_costs`) and GAP_COST for each empty
    column inside a piece's ink, by dynamic programming over the cut
    columns, left to right. ``probs`` has a row for each piece with ink, in
    order, and ``wholes`` (None: no check) the whole-digit check's answer."""
    best = numpy.full(len(cuts), -numpy.inf)
    best[0] = 0.0
    choice = [None] * len(cuts)
    rows = numpy.cumsum([piece.ink is not None for piece in pieces]) - 1
    cost = cut_costs(components, height)[cuts]
    cuts = numpy.asarray(cuts)
    gaps = numpy.r_[components.counts.sum(axis=0) == 0, True][cuts]
    for k in sorted(range(len(pieces)), key=lambda k: (pieces[k].stop, pieces[k].start)):
        piece = pieces[k]
        score = best[piece.start] - cost[piece.stop]
        if piece.ink is not None:
            p = probs[rows[k]]
            digit = int(numpy.argmax(p))
            x0, y0, x1, y1 = piece.box
            score += (numpy.log(max(p[digit], 1e-300)) + width_prior((x1 - x0) / (y1 - y0))
                      + DIGIT_BONUS[wholes is not None])
            if wholes is not None:
                score += WHOLE_WEIGHT * numpy.log(max(wholes[rows[k]], 1e-300))
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


def digit_boxes(components, cuts, chosen, height):
    """The box (x0, y0, x1, y1) of each piece ``chosen`` by :func:`best_cuts`
    around all of its digit's ink: its own, and the slivers of its
    components that no piece holds (:meth:`Components.taken` leaves the
    flat tail of a 2 that reaches under the next cut, or the junction of
    touching digits, out of every piece), each given to the piece holding
    most of that component."""
    boxes = [list(piece.box) for piece, _ in chosen]
    if not chosen:
        return []
    held = numpy.array([components.taken(cuts[piece.start], cuts[piece.stop], height)
                        for piece, _ in chosen])  # (pieces, 2, components)
    for k in range(len(components.first)):
        spans = held[:, 1, k] - held[:, 0, k]
        if not spans.any():
            continue
        covered = numpy.zeros(components.stop[k] - components.first[k], dtype=bool)
        for lo, hi in held[:, :, k]:
            covered[lo - components.first[k]:hi - components.first[k]] = lo < hi
        if covered.all():
            continue
        owner = boxes[int(numpy.argmax(spans))]
        columns = components.first[k] + numpy.flatnonzero(~covered)
        rows = numpy.flatnonzero((components.labels[:, columns] == k + 1).any(axis=1))
        owner[0], owner[2] = min(owner[0], int(columns[0])), max(owner[2], int(columns[-1]) + 1)
        owner[1], owner[3] = min(owner[1], int(rows[0])), max(owner[3], int(rows[-1]) + 1)
    return [tuple(box) for box in boxes]


# ---------------------------------------------------------------- the drawing
LABEL_GAP = 2.0  # points between two labels (and between a label and its box)


def draw_reading(image, reading, path, dpi=100):
    """Write a PNG (atomically) of ``image`` with each digit read: its box
    and, above it, the digit and its probability; where boxes are too
    narrow for their labels side by side, the labels are stacked
    (:func:`label_levels`). Needs matplotlib. Returns the figure."""
    from ..analysis.plots import new_figure, save_png

    grey, _, scale = load_grey(image)
    height, width = grey.shape[0] * scale, grey.shape[1] * scale
    inches = min(12.0, max(4.0, width / 80))
    fig = new_figure((inches, min(8.0, inches * height / width) + 0.5), dpi)
    ax = fig.add_subplot()
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1, extent=(0, width, height, 0))
    labels = []
    for digit, p, (x0, y0, x1, y1) in zip(reading.digits, reading.probabilities,
                                         reading.boxes):
        ax.add_patch(_rectangle((x0, y0), x1 - x0, y1 - y0))
        labels.append(ax.annotate(f"{digit}\n{p:.2f}", ((x0 + x1) / 2, y0), xytext=(0, 0),
                                  textcoords="offset points", color="tab:red", ha="center",
                                  va="bottom", fontsize=10, fontweight="bold"))
    ax.set_title(f"read: {reading.digits}")
    ax.set_axis_off()
    _stack_labels(fig, labels)
    save_png(fig, path)
    return fig


def _stack_labels(fig, labels, rounds=6):
    """Raise labels that would overlap their left neighbours' to the lowest
    free level, and the title above the highest, the figure growing as
    much (the layout changes as they rise: measured again until it
    settles)."""
    ax = fig.axes[0]
    points = 72.0 / fig.dpi  # points per pixel
    pad, base = None, fig.get_figheight()
    for _ in range(rounds):
        fig.canvas.draw()
        boxes = [label.get_window_extent() for label in labels]
        spans = [(box.x0 - LABEL_GAP / points / 2, box.x1 + LABEL_GAP / points / 2)
                 for box in boxes]
        top, highest, changed = ax.get_window_extent().y1, 0.0, False
        for label, box, level in zip(labels, boxes, label_levels(spans)):
            offset = LABEL_GAP + level * (box.height * points + LABEL_GAP)
            changed |= abs(label.xyann[1] - offset) > 0.5
            highest = max(highest, (box.y1 - top) * points + offset - label.xyann[1])
            label.xyann = (0.0, offset)
        changed |= pad is None or abs(pad - (6.0 + highest)) > 0.5
        pad = 6.0 + highest
        ax.set_title(ax.get_title(), pad=pad)
        fig.set_figheight(base + highest / 72.0)  # the picture keeps its size
        if not changed:
            return


def label_levels(spans):
    """For labels spanning ``spans`` ((left, right) each, in drawing
    order), the level each goes on: the lowest where it overlaps no label
    placed before it."""
    placed, levels = [], []
    for left, right in spans:
        level = 0
        while any(other_level == level and left < other_right and other_left < right
                  for other_left, other_right, other_level in placed):
            level += 1
        placed.append((left, right, level))
        levels.append(level)
    return levels


def _rectangle(corner, width, height):
    from matplotlib.patches import Rectangle

    return Rectangle(corner, width, height, fill=False, edgecolor="tab:red", linewidth=1.5)
