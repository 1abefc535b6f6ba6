"""nn_gpu.reading.reader and `nn-gpu read`: a whole handwritten number.

The geometry (components, cut candidates, cut costs, the dynamic programme)
is tested on drawn blobs and hand-made classifier outputs; reading itself on
numbers composed from MNIST *test* digits with the suite's small trained
network (conftest's ``trained_model``: 3 epochs on 10,000 examples), using
only digits that network reads right on their own -- so that what is tested
is the segmentation, not the network.
"""

import json
import re

import numpy
import pytest

Image = pytest.importorskip("PIL.Image",
                            reason="Pillow is not installed: pip install 'nn_gpu[image]'")

from conftest import mnist_dir, run  # noqa: E402

from nn_gpu import Network
from nn_gpu.data.composed import GAPS, PHOTO, TOUCHING, Style, compose_number, edit_distance  # noqa: E402
from nn_gpu.reading import reader as reading  # noqa: E402
from nn_gpu.reading.images import ImageError  # noqa: E402
from nn_gpu.reading.reader import Components, Piece, best_cuts, cut_columns, read_number  # noqa: E402

LINE = re.compile(r"^(?P<name>.+): (?P<digits>\d+)  \((?P<probs>[01]\.\d\d( [01]\.\d\d)*)\)$")


# --------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def check(reading_check):
    """A whole-digit check trained on the pieces of 32 composed numbers (seconds)."""
    return reading_check[0]


@pytest.fixture(scope="module")
def check_dir(reading_check):
    """A cache directory holding ``check`` where `nn-gpu read` looks for it."""
    return reading_check[1]


@pytest.fixture
def check_cache(check_dir, monkeypatch):
    """`nn-gpu read` finds MNIST and the small check already trained."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(check_dir))
    monkeypatch.setenv("NN_GPU_DATA", str(mnist_dir()))


@pytest.fixture(scope="module")
def known(mnist, trained_model):
    """Test digits the small network reads right on their own, confidently:
    (images, labels)."""
    _, _, (X, labels) = mnist
    X, labels = X[:2000], labels[:2000]
    outputs = numpy.asarray(trained_model[0].feedforward(X))
    right = (numpy.argmax(outputs, axis=1) == labels) & (outputs.max(axis=1) > 0.9)
    return X[right], labels[right]


def number(known, rng, length, style=GAPS):
    """(picture, truth string, true boxes) of ``length`` known digits."""
    X, labels = known
    rows = rng.choice(len(X), size=length, replace=False)
    picture, boxes = compose_number(X[rows], rng, style)
    return picture, "".join(str(d) for d in labels[rows]), boxes


def blobs(shape, boxes, value=0.0, paper=1.0):
    """A picture of filled ellipses (x0, y0, x1, y1) on paper."""
    picture = numpy.full(shape, paper)
    rows, cols = numpy.mgrid[0:shape[0], 0:shape[1]]
    for x0, y0, x1, y1 in boxes:
        inside = (((cols - (x0 + x1 - 1) / 2) / ((x1 - x0) / 2)) ** 2
                  + ((rows - (y0 + y1 - 1) / 2) / ((y1 - y0) / 2)) ** 2) <= 1
        picture[inside] = value
    return picture


def close(box, truth, within):
    return all(abs(a - b) <= within for a, b in zip(box, truth))


# ------------------------------------------------------- the picture's ink
@pytest.mark.parametrize("invert", [False, True])
def test_polarity_ink_is_positive_either_way(invert):
    picture = blobs((60, 100), [(20, 10, 40, 50), (60, 10, 80, 50)])
    ink = reading.ink_on_paper(1 - picture if invert else picture)
    assert ink[30, 30] > 0.8 and abs(ink[5, 5]) < 0.05  # the blob is ink, the paper not


def test_uneven_light_is_levelled():
    """Paper darkening from 0.95 to 0.45 across the page, grey ink on it:
    the ink stands out by the same amount everywhere."""
    ink = blobs((60, 300), [(20, 10, 40, 50), (250, 10, 270, 50)], value=1.0, paper=0.0)
    paper = 0.95 - 0.5 * numpy.linspace(0, 1, 300)[None, :] * numpy.ones((60, 1))
    levelled = reading.ink_on_paper(paper * (1 - 0.6 * ink))
    left, right = levelled[30, 30], levelled[30, 260]
    assert left > 0.4 and right > 0.2 and abs(levelled[30, 150]) < 0.03
    strokes, height = reading.strokes_of_digits(levelled)
    assert (strokes[:, 20:40] > 0).any() and (strokes[:, 250:270] > 0).any()
    assert not (strokes[:, 60:230] > 0).any()  # the dark side of the page is not ink
    assert height == pytest.approx(40, abs=3)


def test_components_left_to_right_specks_dropped_broken_digit_kept():
    # three digits, the middle one broken in two parts over the same columns, and specks
    picture = blobs((80, 200), [(10, 10, 40, 70), (80, 10, 110, 35), (82, 40, 108, 70),
                                (150, 12, 175, 68), (60, 5, 62, 7), (130, 74, 132, 76)])
    strokes, height = reading.strokes_of_digits(reading.ink_on_paper(picture))
    assert height == pytest.approx(60, abs=3)
    columns = numpy.flatnonzero(strokes.any(axis=0))
    runs = numpy.split(columns, numpy.flatnonzero(numpy.diff(columns) > 1) + 1)
    found = [(r[0], r[-1] + 1) for r in runs]  # (smoothing the grain widens them by a pixel)
    assert numpy.allclose(found, [(10, 40), (80, 110), (150, 175)], atol=1), found
    assert not strokes[:, 55:65].any() and not strokes[72:, 125:135].any()


# ----------------------------------------------------------- the cutting
def test_cut_columns_gaps_minima_and_fill():
    height = 40
    projection = numpy.r_[numpy.zeros(6), numpy.full(20, 9), [9, 5, 2, 5, 9], numpy.full(20, 9),
                          numpy.zeros(10), numpy.full(40, 12)]
    cuts = cut_columns(projection.astype(int), height)
    assert cuts[0] == 0 and cuts[-1] == len(projection) and cuts == sorted(cuts)
    assert 3 in cuts and 56 in cuts + [56] and any(49 <= c <= 56 for c in cuts)  # the gaps
    assert 28 in cuts  # the minimum where two digits touch
    inside = [c for c in cuts if 61 <= c < 101]  # 40 columns of ink, no minimum
    assert len(inside) >= 3 and max(numpy.diff([61, *inside, 101])) <= height // 4 + 1


def test_cut_costs_split_lone_digits_dearly_and_touching_ones_cheaply():
    height = 40
    lone = blobs((50, 60), [(10, 5, 40, 45)], value=1.0, paper=0.0)
    touching = blobs((50, 90), [(5, 5, 45, 45), (44, 5, 84, 45)], value=1.0, paper=0.0)
    lone_cost = reading.cut_costs(Components.of(lone), height)
    touching_cost = reading.cut_costs(Components.of(touching), height)
    assert lone_cost[25] >= reading.CROSS_COST and lone_cost[5] == 0 and lone_cost[50] == 0
    waist = touching_cost[42:48].min()
    assert waist < reading.INK_COST * 0.5 and waist < touching_cost[25] / 2


def test_the_dynamic_programme_cuts_where_the_classifier_is_surest():
    """A 'classifier' sure of the pieces 0-20 and 20-40 only: the DP must
    choose the cut at column 20, whatever the other candidates."""
    strokes = numpy.zeros((40, 40))
    strokes[5:35, 2:19] = strokes[5:35, 21:38] = strokes[18:21, 19:21] = 1.0  # two, touching
    cuts = [0, 10, 20, 30, 40]
    pieces, probs = [], []
    for i in range(5):
        for j in range(i + 1, 5):
            pieces.append(Piece(i, j, numpy.ones((2, 2)), (cuts[i], 5, cuts[j], 35)))
            p = numpy.full(10, 0.02)
            p[3 if i == 0 else 7] = 0.82 if (i, j) in ((0, 2), (2, 4)) else 0.3
            probs.append(p / p.sum())
    # (the two touch over 36 columns, wider than one digit of height 24 could be)
    chosen = best_cuts(Components.of(strokes), cuts, pieces, numpy.array(probs), height=24)
    assert [(p.start, p.stop) for p, _ in chosen] == [(0, 2), (2, 4)]
    assert [int(numpy.argmax(p)) for _, p in chosen] == [3, 7]


def test_digits_that_overlap_without_touching_are_taken_whole():
    """Two components over the same columns 34-39 (one above the other's
    row): a cut anywhere in that overlap gives each piece its whole digit,
    and no part of the other; a cut through the middle of one still cuts."""
    strokes = blobs((50, 70), [(10, 5, 40, 25), (34, 25, 64, 45)], value=1.0, paper=0.0)
    components = Components.of(strokes)
    assert len(components.first) == 2
    for cut in (34, 36, 39):
        left = reading._piece(strokes, components, 0, cut, height=40)
        right = reading._piece(strokes, components, cut, 70, height=40)
        assert left[1] == (10, 5, 40, 25) and right[1] == (34, 25, 64, 45), cut
    halves = reading._piece(strokes, components, 0, 25, height=40)
    assert halves[1][:3] == (10, 5, 25)
    assert reading.cut_costs(components, 40)[36] == 0  # no digit is cut there
    assert reading.cut_costs(components, 40)[25] >= reading.CROSS_COST


def test_a_cut_along_a_thick_stroke_costs_more_than_one_across_touching_digits():
    """A thick straight 1 (a bar 10 pixels wide, 40 tall) cut down its
    middle runs along the stroke its whole height: STROKE_COST is paid on
    top of the cost of cutting a lone digit. Two digits touching by a short
    bridge are cut across it at no stroke cost."""
    height = 40
    bar = numpy.zeros((50, 40))
    bar[5:45, 15:25] = 1.0
    along = reading.cut_costs(Components.of(bar), height)[20]
    expected = (reading.CROSS_COST + reading.INK_COST
                + reading.STROKE_COST * (1 - reading.STROKE_FREE))
    assert along == pytest.approx(expected, rel=1e-9)
    bridge = numpy.zeros((50, 70))  # wider than one digit: no CROSS_COST either
    bridge[5:45, 2:30] = bridge[5:45, 40:68] = bridge[24:28, 30:40] = 1.0
    across = reading.cut_costs(Components.of(bridge), height)[35]
    assert across == pytest.approx(reading.INK_COST * 4 / height)  # 4 rows of bridge, no stroke


def test_a_thick_one_stays_whole_when_its_halves_look_as_whole_as_it():
    """A bar 10 pixels wide: the classifier reads a 1 in it and in each half
    alike, and the check even finds the halves more whole (0.95 against
    0.6). Splitting it down the middle runs along the stroke: the DP keeps
    it one digit."""
    height = 40
    strokes = numpy.zeros((50, 40))
    strokes[5:45, 15:25] = 1.0
    cuts = [0, 15, 20, 25, 40]
    spans = {(1, 2): 0.95, (2, 3): 0.95, (1, 3): 0.6}
    pieces, probs, wholes = [Piece(0, 1, None, None), Piece(3, 4, None, None)], [], []
    for (i, j), whole in spans.items():
        pieces.append(Piece(i, j, numpy.ones((2, 2)), (cuts[i], 5, cuts[j], 45)))
        p = numpy.full(10, 0.01 / 9)
        p[1] = 0.99
        probs.append(p)
        wholes.append(whole)
    chosen = best_cuts(Components.of(strokes), cuts, pieces, numpy.array(probs), height,
                       numpy.array(wholes))
    assert [(piece.start, piece.stop) for piece, _ in chosen] == [(1, 3)]


def test_longest_runs_per_column():
    mask = numpy.array([[1, 0, 1], [1, 1, 0], [0, 1, 1], [1, 1, 1]], dtype=bool)
    assert reading.longest_runs(mask).tolist() == [2, 3, 2]
    assert reading.longest_runs(numpy.zeros((0, 2), dtype=bool)).tolist() == [0, 0]


def two_with_a_tail():
    """Strokes of a 2 with a long flat tail (as MNIST writes some) and a digit
    after it, and their components."""
    strokes = numpy.zeros((60, 120))
    strokes[10:50, 10:35] = 1.0          # the 2's body
    strokes[46:50, 35:52] = 1.0          # its flat tail, thin
    strokes[10:50, 70:100] = 1.0         # the next digit
    return strokes, Components.of(strokes)


def test_the_box_of_a_digit_holds_the_ink_no_piece_holds():
    """Cuts at 36 and 44 leave the tail's columns 36-52 out of every piece
    (in each, a sliver of the 2): the 2's box still reaches to the tail's end."""
    strokes, components = two_with_a_tail()
    cuts = [0, 36, 44, 60, 120]
    pieces = [Piece(i, i + 1, None, None) for i in range(4)]
    chosen = []
    for piece in pieces:
        found = reading._piece(strokes, components, cuts[piece.start], cuts[piece.stop], 42)
        if found is not None:
            chosen.append((Piece(piece.start, piece.stop, *found), None))
    assert [piece.box for piece, _ in chosen] == [(10, 10, 36, 50), (70, 10, 100, 50)]
    assert reading.digit_boxes(components, cuts, chosen, 42) == [(10, 10, 52, 50),
                                                                  (70, 10, 100, 50)]


def test_every_components_ink_is_in_some_box_whatever_the_cuts():
    strokes, components = two_with_a_tail()
    rng = numpy.random.default_rng(0)
    for _ in range(100):
        inner = sorted(set(rng.choice(numpy.arange(1, 120), size=rng.integers(1, 6),
                                      replace=False).tolist()))
        cuts = [0, *inner, 120]
        chosen = []
        for i in range(len(cuts) - 1):
            found = reading._piece(strokes, components, cuts[i], cuts[i + 1], 42)
            if found is not None:
                chosen.append((Piece(i, i + 1, *found), None))
        boxes = reading.digit_boxes(components, cuts, chosen, 42)
        inside = numpy.zeros(strokes.shape, dtype=bool)
        for x0, y0, x1, y1 in boxes:
            inside[y0:y1, x0:x1] = True
        assert inside[strokes > 0].all(), inner


def test_no_mnist_digit_is_wider_than_widest(mnist):
    """WIDEST, beyond which a piece is taken for more than one digit, is
    beyond 99.5% of each digit's MNIST training examples (ink >= 0.25)."""
    (X, labels), _, _ = mnist
    inked = X.reshape(-1, 28, 28) >= 0.25

    def extent(occupied):
        return occupied.shape[1] - numpy.argmax(occupied[:, ::-1], axis=1) \
            - numpy.argmax(occupied, axis=1)

    aspects = extent(inked.any(axis=1)) / extent(inked.any(axis=2))
    widest = max(numpy.percentile(aspects[labels == d], 99.5) for d in range(10))  # 2s, 5s
    assert widest <= reading.WIDEST <= widest + 0.1
    assert reading.width_prior(reading.WIDEST) == 0 > reading.width_prior(2 * reading.WIDEST)


def test_the_dynamic_programme_weighs_widths_against_confidence():
    """A classifier surer of one '0' twice as wide as tall than of the two
    pieces ('1' and '7') it is made of -- by enough to outweigh the bonus of
    one more digit: its width decides for the two."""
    strokes = numpy.zeros((40, 70))
    strokes[5:35, 2:12] = strokes[5:35, 16:62] = strokes[18:21, 12:16] = 1.0
    cuts = [0, 14, 64]
    probs = {(0, 1): (1, 0.6), (1, 2): (7, 0.6), (0, 2): (0, 0.98)}
    assert 2 * numpy.log(0.6) + reading.DIGIT_BONUS[0] < numpy.log(0.98)
    pieces, rows = [], []
    for (i, j), (digit, p) in probs.items():
        pieces.append(Piece(i, j, numpy.ones((2, 2)), (cuts[i] + 2, 5, cuts[j], 35)))
        row = numpy.full(10, (1 - p) / 9)
        row[digit] = p
        rows.append(row)
    chosen = best_cuts(Components.of(strokes), cuts, pieces, numpy.array(rows), height=30)
    assert [int(numpy.argmax(p)) for _, p in chosen] == [1, 7]


# ------------------------------------------------------------ reading
@pytest.mark.slow
@pytest.mark.parametrize("length", [1, 5, 12])
def test_numbers_with_gaps_are_read_with_their_boxes(trained_model, check, known, length):
    rng = numpy.random.default_rng(length + 1)
    picture, truth, boxes = number(known, rng, length)
    found = read_number(trained_model[0], picture, check)
    assert found.digits == truth
    assert len(found.probabilities) == len(found.boxes) == length
    assert all(0 < p <= 1 for p in found.probabilities)
    for box, true in zip(found.boxes, boxes):
        assert close(box, true, within=3), (box, true)


@pytest.mark.slow
def test_boxes_are_in_the_pictures_pixels_at_any_scale(trained_model, check, known, tmp_path):
    rng = numpy.random.default_rng(7)
    picture, truth, boxes = number(known, rng, 4)
    image = Image.fromarray(numpy.uint8(numpy.round(picture * 255)))
    large = image.resize((image.width * 7, image.height * 7), Image.BILINEAR)  # over 1024 px
    large.save(tmp_path / "number.png")
    found = read_number(trained_model[0], tmp_path / "number.png", check)
    assert found.digits == truth
    for box, true in zip(found.boxes, boxes):
        assert close(box, [7 * v for v in true], within=7 * 3), (box, true)


@pytest.mark.slow
def test_touching_digits_are_cut(trained_model, check, known):
    """Numbers of four digits touching or overlapping by up to 3 MNIST
    pixels: at least half the digits are read (left whole, a number of four
    touching digits would give one, three errors at least: 18 in all). This
    is the weak spot: see the README's figures."""
    rng = numpy.random.default_rng(3)
    errors = 0
    for _ in range(6):
        picture, truth, _ = number(known, rng, 4, TOUCHING)
        errors += edit_distance(truth, read_number(trained_model[0], picture, check).digits)
    assert errors <= 12, errors


@pytest.mark.slow
@pytest.mark.parametrize("style", [PHOTO, Style(invert=True, grain=0.05, scale=1.5)],
                         ids=["uneven light and grain", "light on dark, grainy"])
def test_a_photo_of_a_number(trained_model, check, known, style):
    rng = numpy.random.default_rng(11)
    right = 0
    for _ in range(4):
        picture, truth, _ = number(known, rng, 6, style)
        right += read_number(trained_model[0], picture, check).digits == truth
    assert right >= 3


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("make, message", [
    (lambda p: None, "image file not found"),
    (lambda p: p.write_text("12345, not a picture"), "not an image file Pillow can read"),
    (lambda p: Image.new("L", (300, 100), 255).save(p, format="PNG"), "blank"),
    (lambda p: Image.new("L", (300, 100), 40).save(p, format="PNG"), "blank"),
])
def test_bad_files_are_one_line_errors(trained_model, tmp_path, make, message):
    path = tmp_path / "number.png"
    make(path)
    with pytest.raises(ImageError, match=message) as info:
        read_number(trained_model[0], path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


@pytest.mark.parametrize("array, message", [
    (numpy.zeros((0, 10)), "empty"),
    (numpy.ones((40, 80)), "blank"),
    (numpy.where(numpy.eye(40, 80) > 0, numpy.nan, 1.0), "NaN or infinite"),
    (numpy.full((40, 80), 3.0), r"\[0, 1\]"),
    (numpy.ones((4, 40, 80)), "2-D"),
])
def test_bad_arrays_are_one_line_errors(trained_model, array, message):
    with pytest.raises(ImageError, match=message):
        read_number(trained_model[0], array)


def test_non_finite_float_image_is_refused(trained_model, tmp_path):
    picture = numpy.ones((40, 80), dtype=numpy.float32)
    picture[10:30, 20:30] = numpy.inf
    with pytest.raises(ImageError, match="NaN or infinite"):
        read_number(trained_model[0], Image.fromarray(picture, mode="F"))


def test_a_model_for_other_inputs_is_refused():
    with pytest.raises(ValueError, match="784 inputs"):
        read_number(Network([100, 10], backend="numpy"), numpy.ones((30, 30)))


# ------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def number_files(known, tmp_path_factory):
    """Two numbers as PNG files (dark on light; light on dark) and their digits."""
    directory = tmp_path_factory.mktemp("numbers")
    rng = numpy.random.default_rng(5)
    files = []
    for name, style in (("dark.png", GAPS), ("light.png", Style(invert=True))):
        picture, truth, boxes = number(known, rng, 4, style)
        Image.fromarray(numpy.uint8(numpy.round(picture * 255))).save(directory / name)
        files.append((str(directory / name), truth, boxes))
    return files


@pytest.mark.slow
def test_cli_prints_each_number(trained_model, number_files, check_cache):
    rc, out, err = run("read", str(trained_model[1]), *(f for f, _, _ in number_files))
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 2
    for line, (path, truth, _) in zip(lines, number_files):
        match = LINE.match(line)
        assert match, line
        assert match["name"] == path and match["digits"] == truth
        assert len(match["probs"].split()) == len(truth)


@pytest.mark.slow
def test_cli_json_one_object_per_image(trained_model, number_files, check_cache):
    rc, out, _ = run("read", str(trained_model[1]), *(f for f, _, _ in number_files), "--json")
    assert rc == 0
    for line, (path, truth, boxes) in zip(out.splitlines(), number_files):
        found = json.loads(line)
        assert found["file"] == path and found["digits"] == truth
        assert len(found["probabilities"]) == len(found["boxes"]) == len(truth)
        assert all(close(box, true, within=3) for box, true in zip(found["boxes"], boxes))


@pytest.mark.slow
def test_cli_show_draws_what_it_read(trained_model, number_files, tmp_path, monkeypatch,
                                     check_cache):
    pytest.importorskip("matplotlib")
    path, truth, _ = number_files[0]
    out_file = tmp_path / "read.png"
    rc, out, err = run("read", str(trained_model[1]), path, "--show", str(out_file))
    assert rc == 0 and err == "" and truth in out
    with Image.open(out_file) as drawn:
        assert drawn.format == "PNG" and drawn.width > 200
    monkeypatch.chdir(tmp_path)  # --show alone: IMAGE-read.png here, for each image
    rc, _, _ = run("read", str(trained_model[1]), *(f for f, _, _ in number_files), "--show")
    assert rc == 0 and (tmp_path / "dark-read.png").is_file()
    assert (tmp_path / "light-read.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("case, message, status", [
    ("missing image", "image file not found", 1),
    ("blank image", "no number found", 1),
    ("text file", "not an image file", 1),
    ("missing model", "model file not found", 1),
    ("wrong model", "do not fit digit images", 1),
    ("show dir missing", "does not exist", 1),
    ("show file, two images", "--show FILE draws one image", 2),
    ("show over the image", "IMAGE", 1),
])
def test_cli_errors_are_one_line(trained_model, number_files, tmp_path, case, message, status,
                                 check_cache):
    model, images, extra = str(trained_model[1]), [number_files[0][0]], []
    if case == "missing image":
        images.append(str(tmp_path / "nope.png"))
    elif case == "blank image":
        Image.new("L", (300, 100), 255).save(tmp_path / "blank.png")
        images.append(str(tmp_path / "blank.png"))
    elif case == "text file":
        (tmp_path / "notes.png").write_text("a shopping list")
        images.append(str(tmp_path / "notes.png"))
    elif case == "missing model":
        model = str(tmp_path / "nope.npz")
    elif case == "wrong model":
        Network([784, 5, 3], backend="numpy").save(tmp_path / "other.npz")
        model = str(tmp_path / "other.npz")
    elif case == "show dir missing":
        extra = ["--show", str(tmp_path / "no" / "read.png")]
    elif case == "show over the image":
        extra = ["--show", images[0]]
    else:
        images.append(number_files[1][0])
        extra = ["--show", str(tmp_path / "read.png")]
    rc, out, err = run("read", model, *images, *extra)
    assert rc == status and out == ""  # nothing printed for the good image either
    assert err.count("\n") == 1 and message in err


# -------------------------------------------------------- a convolutional model
@pytest.fixture(scope="module")
def conv_trained(reading_conv_model):
    """(net, saved model path): a small conv-pool layer into softmax, one
    epoch on 3,000 examples (conftest.py)."""
    return reading_conv_model


@pytest.mark.slow
def test_cli_reads_with_a_conv_model(conv_trained, check, mnist, tmp_path, check_cache):
    """`read` takes a ConvNetwork's model file as `predict` does, and reads
    with it what read_number reads with the network itself."""
    _, _, (X, labels) = mnist
    net, path = conv_trained
    outputs = numpy.asarray(net.feedforward(X[:1000]))
    right = (numpy.argmax(outputs, axis=1) == labels[:1000]) & (outputs.max(axis=1) > 0.9)
    picture, truth, boxes = number((X[:1000][right], labels[:1000][right]),
                                   numpy.random.default_rng(4), 5)
    Image.fromarray(numpy.uint8(numpy.round(picture * 255))).save(tmp_path / "number.png")
    rc, out, err = run("read", str(path), str(tmp_path / "number.png"), "--json")
    assert rc == 0 and err == ""
    found = json.loads(out)
    assert found["digits"] == truth == read_number(net, tmp_path / "number.png", check).digits
    assert all(close(box, true, within=3) for box, true in zip(found["boxes"], boxes))


# ------------------------------------------------------ the whole-digit check
def test_the_checks_second_view_keeps_the_lines_scale(mnist):
    """At the line's scale a digit as tall as the line looks as MNIST-like
    as ever; a part of it keeps its size and a row of three is shrunk only
    to fit, where the MNIST-like view blows all up to 20 pixels."""
    from nn_gpu.reading.images import mnist_field
    from nn_gpu.reading.reader import check_input

    _, (X, _), _ = mnist
    def columns(field):
        return numpy.flatnonzero(field.reshape(28, 28).max(axis=0) > 0.1).size
    def rows(field):
        return numpy.flatnonzero(field.reshape(28, 28).max(axis=1) > 0.1).size

    one = X[0].reshape(28, 28).astype(numpy.float64)  # a 7: taller than wide
    height = numpy.flatnonzero(one.any(axis=1)).size
    both = check_input(one, height, Image)
    assert both.shape == (2 * 784,) and numpy.array_equal(both[:784], both[784:])
    top = one[:height // 2 + 4]  # the 7's bar: as MNIST 20 pixels wide, to scale its own size
    top = top[top.any(axis=1)][:, top.any(axis=0)]
    as_mnist, to_scale = mnist_field(top, "top", Image), mnist_field(top, "top", Image, height)
    assert columns(as_mnist) >= 19
    assert abs(columns(to_scale) - top.shape[1] * 20 / height) <= 2
    assert abs(rows(to_scale) - top.shape[0] * 20 / height) <= 2
    pair = numpy.hstack([one, one, one])
    pair = pair[:, pair.any(axis=0)]
    assert columns(mnist_field(pair, "pair", Image, height)) >= 26
    assert rows(mnist_field(pair, "pair", Image, height)) < 19  # shrunk to fit


def test_a_piece_is_whole_when_its_edges_are_the_best_cuts_around_one_digit():
    """Digits A [0, 20), B [16, 36) overlapping A by 4 columns, C [40, 55):
    the best cuts around B are the middle of its overlap with A (18) and its
    own end (36); a piece keeping A's strokes, half of B, or A and B is not
    whole; one 3.5 columns off (0.175 heights) is neither."""
    from nn_gpu.reading.whole_digit import digit_edges, whole_verdict

    boxes = [(0, 0, 20, 20), (16, 0, 36, 20), (40, 0, 55, 20)]
    lefts, rights = digit_edges(boxes)
    assert list(lefts) == [0, 18, 40] and list(rights) == [18, 36, 55]
    verdict = lambda x0, x1: whole_verdict((x0, 0, x1, 20), boxes, 20)
    assert verdict(18, 36) == verdict(0, 18) == verdict(40, 55) == verdict(17, 37) == 1
    assert verdict(13, 36) == 0          # B with the end of A's strokes
    assert verdict(18, 28) == 0          # half of B
    assert verdict(0, 36) == 0           # A and B
    assert verdict(40, 51.5) is None     # near C's cut, not clearly off


def test_pieces_are_judged_by_the_digits_they_cover(mnist):
    """The check's examples, from candidate pieces of composed numbers: some
    whole digits, most merges or fragments."""
    from nn_gpu.reading.whole_digit import pieces_and_verdicts

    (X, _), _, _ = mnist
    inputs, verdicts = pieces_and_verdicts(X[:200], numpy.random.default_rng(0), count=4)
    assert inputs.shape == (len(verdicts), 2 * 784) and set(verdicts) == {0, 1}
    assert 0.05 < verdicts.mean() < 0.5  # most candidates are not a digit


@pytest.mark.slow
def test_the_check_tells_whole_digits_from_pairs_and_fragments(check, mnist):
    """On the reader's pieces of numbers made of validation digits, which it
    never saw, it ranks whole digits above pairs and fragments (what the cut
    search needs of it), even trained on 32 numbers only."""
    from nn_gpu.model.metrics import probabilities
    from nn_gpu.reading.whole_digit import pieces_and_verdicts

    _, (X, _), _ = mnist
    inputs, verdicts = pieces_and_verdicts(X, numpy.random.default_rng(1), count=8)
    wholeness = probabilities(check, inputs)[:, 1]
    whole, broken = wholeness[verdicts == 1], wholeness[verdicts == 0]
    ranked_above = (whole[:, None] > broken[None, :]).mean()  # the area under the ROC curve
    assert ranked_above > 0.75  # 0.5: chance; ~0.86 here; the full check: ~0.97


@pytest.mark.slow
def test_cli_trains_the_check_once_and_reads_without_mnist(trained_model, number_files, tmp_path,
                                                          monkeypatch):
    """First `read`: says it trains the check, keeps it in the cache; the
    second is silent; without MNIST it says so and reads with the model alone."""
    from nn_gpu.reading import whole_digit

    monkeypatch.setattr(whole_digit, "NUMBERS", 4)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("NN_GPU_DATA", str(mnist_dir()))
    path, truth, _ = number_files[0]
    rc, out, err = run("read", str(trained_model[1]), path)
    assert rc == 0 and truth in out and "training the whole-digit check" in err
    assert list((tmp_path / "cache" / "nn_gpu").glob(f"whole-digit-v{whole_digit.VERSION}-*.npz"))
    rc, out, err = run("read", str(trained_model[1]), path)
    assert rc == 0 and truth in out and err == ""
    rc, out, err = run("read", str(trained_model[1]), path, "--data", str(tmp_path / "nowhere"))
    assert rc == 0 and truth in out and "no MNIST" in err and err.count("\n") == 1
    rc, out, err = run("read", str(trained_model[1]), path, "--no-check")
    assert rc == 0 and truth in out and err == ""
