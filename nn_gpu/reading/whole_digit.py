"""Is a piece of a line of handwriting one whole digit? A second opinion
for :func:`nn_gpu.reading.reader.read_number`.

A digit classifier is trained on single, whole, centred digits only: shown
half a digit, or two digits touching, it still names one digit, often
surely. The notes' recipe -- rate a segmentation by the classifier's
confidence in its pieces -- then cannot tell a good cut from a bad one. This
module trains the missing judge: a small network with one output neuron
(``[1568, 100, 1]``, cross-entropy, L2), whose output is the probability
that a piece is exactly one whole digit. It sees each piece twice
(:func:`nn_gpu.reading.reader.check_input`): made MNIST-like, as the classifier
sees it, and at its line's scale, where half a digit stays half as wide as
its neighbours and two digits twice as wide -- sizes the MNIST-like view
scales away. (Two views judge more pieces right than either alone:
``docs/log.md``, 2026-12-02, has the figures.)

Its examples are the reader's own candidate pieces
(:func:`nn_gpu.reading.reader.candidate_pieces`) of numbers composed from MNIST
*training* digits (:mod:`nn_gpu.data.composed`, half with gaps, half with the
digits touching or overlapping): a piece is a whole digit when both its
edges lie where the best straight cuts around one digit lie (its ink's
ends, or the middle of an overlap with a neighbour: :func:`digit_edges`),
not one when an edge is clearly elsewhere; pieces in between are left out.
Labels come from the edges rather than from the columns a piece covers, so
that a whole digit carrying an overlapping neighbour's strokes counts as not
whole (the reader would otherwise choose such pieces and misread them).
Training takes a few minutes; :func:`whole_digit_check` keeps the network in
the cache directory (as the expanded data set), named after the training
set's digest, so it is trained once per machine.
"""

import contextlib
from pathlib import Path

import numpy

from ..data import composed
from ..data.expand import default_cache_dir, source_digest
from ..model.network import Network
from . import images
from . import reader as reading

VERSION = 3          # of the check and of the reader's pieces it learns from:
                     # bump it when either changes
NUMBERS = 480        # composed numbers whose pieces it learns from (some 80,000 pieces)
DIGITS = (2, 6)      # digits per composed number
EDGES = (0.1, 0.25)  # a whole digit: both edges within the first (digit heights) of its best
                     # cuts; not one: an edge off by the second or more
HIDDEN = 100         # neurons of its hidden layer
EPOCHS, BATCH, ETA, L2 = 10, 10, 0.1, 5.0   # SGD; held-out accuracy ~94% (validation pieces)
SEED = 0
#: How long training the check takes, for the message before it starts
#: (measured: 135-141 s on a quiet 2-core machine, 8-15 minutes on a loaded one).
TRAINING_TIME = "about 2-3 minutes on a quiet 2-core machine"


def pieces_and_verdicts(X, rng, count, step=None):
    """(inputs, verdicts): :func:`~nn_gpu.reading.reader.check_input` of each
    candidate piece of ``count`` numbers composed from the digits ``X`` (rows
    of 784), and 1 for each piece that is one whole digit, 0 for one that is
    not. ``step()``, where given, is called after each number."""
    Image = images.require_pillow()[0]
    inputs, verdicts = [], []
    for k in range(count):
        style = composed.TOUCHING if k % 2 else composed.GAPS
        rows = rng.choice(len(X), size=rng.integers(DIGITS[0], DIGITS[1] + 1), replace=False)
        picture, boxes = composed.compose_number(X[rows], rng, style)
        strokes, height = reading.strokes_of_digits(reading.ink_on_paper(picture))
        for piece in reading.candidate_pieces(strokes, height)[1]:
            verdict = None if piece.ink is None else whole_verdict(piece.box, boxes, height)
            if verdict is not None:  # (neither clearly: left out)
                inputs.append(reading.check_input(piece.ink, height, Image))
                verdicts.append(verdict)
        if step is not None:
            step()
    return numpy.stack(inputs), numpy.array(verdicts)


def digit_edges(boxes):
    """(lefts, rights): for each digit of a composed number (its ``boxes``,
    left to right), where the best straight cuts around it lie: its ink's
    first and last columns, or, where its ink overlaps a neighbour's, the
    middle of the overlap -- there a piece holds least of the neighbour and
    loses least of its own."""
    starts, stops = (numpy.array(boxes, dtype=float)[:, k] for k in (0, 2))
    middles = (starts[1:] + stops[:-1]) / 2
    return (numpy.maximum(starts, numpy.r_[-numpy.inf, middles]),
            numpy.minimum(stops, numpy.r_[middles, numpy.inf]))


def whole_verdict(box, boxes, height):
    """1 when the piece of ink ``box`` is one whole digit of the composed
    number (the digit whose columns it covers most, :func:`digit_edges`):
    both its edges within EDGES[0] digit heights of that digit's best cuts;
    0 when one is off by EDGES[1] or more (half a digit, two digits, or one
    with a neighbour's strokes); None in between."""
    starts, stops = (numpy.array(boxes)[:, k] for k in (0, 2))
    lefts, rights = digit_edges(boxes)
    x0, x1 = box[0], box[2]
    cover = numpy.clip(numpy.minimum(x1, stops) - numpy.maximum(x0, starts), 0, None)
    digit = int(numpy.argmax(cover / (stops - starts)))
    off = max(abs(x0 - lefts[digit]), abs(x1 - rights[digit])) / height
    return 1 if off <= EDGES[0] else 0 if off >= EDGES[1] else None


def train_whole_digit_check(training, count=None, seed=SEED, progress=None):
    """The ``[1568, HIDDEN, 1]`` network, trained on the pieces of ``count``
    (default NUMBERS) numbers composed from the ``(X, labels)`` training
    digits (a fifth of those pieces are whole digits).

    ``progress(description, total, unit)``, where given, makes a bar (an
    object with ``update(n)`` and ``close()``) for each of the two stages:
    cutting the numbers into pieces (about two thirds of the time), then the
    epochs of SGD over the pieces."""
    count = NUMBERS if count is None else count
    with _bar(progress, "whole-digit check: cutting numbers", count, " numbers") as bar:
        inputs, verdicts = pieces_and_verdicts(training[0], numpy.random.default_rng(seed),
                                               count, step=lambda: bar.update(1))
    net = Network([inputs.shape[1], HIDDEN, 1], cost="cross_entropy", init="scaled",
                  backend="numpy", seed=seed)
    with _bar(progress, "whole-digit check: training", EPOCHS * len(verdicts),
              " pieces") as bar:
        net.sgd((inputs, verdicts), EPOCHS, BATCH, ETA, l2=L2, progress=bar.update)
    return net


class _NoBar:
    """The bar where none is wanted."""

    def update(self, n):
        pass

    def close(self):
        pass


@contextlib.contextmanager
def _bar(progress, description, total, unit):
    """``progress(description, total, unit)``'s bar (or none), closed after the block."""
    bar = _NoBar() if progress is None else progress(description, total, unit)
    try:
        yield bar
    finally:
        bar.close()


def whole_digit_check(training, cache_dir=None, say=None, progress=None):
    """The trained check, from ``cache_dir`` (default: the expanded data
    set's, :func:`nn_gpu.data.expand.default_cache_dir`) when it was trained there
    on the same ``training`` set, else trained now -- after ``say(message)``,
    where given, with ``progress`` bars (:func:`train_whole_digit_check`) --
    and kept there (a cache that cannot be written is skipped)."""
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / check_file_name(training) if directory is not None else None
    if path is not None and path.is_file():
        try:
            return Network.load(path, backend="numpy")
        except Exception:  # noqa: BLE001 - damaged or foreign: trained again below
            pass
    if say is not None:
        say(f"training the whole-digit check on MNIST's training digits, once ({TRAINING_TIME}"
            + (f"; kept in {path})" if path is not None else ")"))
    net = train_whole_digit_check(training, progress=progress)
    if path is not None:
        try:
            net.save(path)
        except OSError:
            pass  # read-only or full: the cache is optional
    return net


def check_file_name(training):
    """The cache file of the check trained on ``training``: this format's
    version and the training set's digest."""
    return f"whole-digit-v{VERSION}-{source_digest(*training)[:16]}.npz"


def default_check(data_dir=None, say=None, progress=None):
    """The check trained on MNIST's training digits in ``data_dir`` (or
    $NN_GPU_DATA, or the default data directory), or None -- after
    ``say(message)``, where given -- when MNIST is not there to train it
    (``progress``: see :func:`train_whole_digit_check`)."""
    from ..data.mnist import load_mnist, resolve_data_dir

    directory = resolve_data_dir(data_dir)
    try:
        training = load_mnist(directory)[0]
    except Exception:  # noqa: BLE001 - no MNIST: read without the check
        if say is not None:
            say(f"no MNIST in {directory} to train the whole-digit check on: reading "
                "with the classifier alone (touching digits suffer; see --data)")
        return None
    return whole_digit_check(training, say=say, progress=progress)
