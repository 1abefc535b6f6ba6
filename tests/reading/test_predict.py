"""`nn-gpu predict` and nn_gpu.reading.images: a user's own digit images, made MNIST-like.

Real MNIST test digits are drawn the way a user would have them -- black ink
on white paper, four times larger, somewhere off the centre of a 200x140
picture, saved as PNG (and JPEG, RGBA, 16-bit, palette, inverted) -- and
must come back as (nearly) the original 28x28 image, and be read correctly
by the suite's small trained network (conftest's ``trained_model``: about 95%
on the test set). The CLI runs in-process through conftest's ``run``.
"""

import io
import re
import sys

import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

Image = pytest.importorskip("PIL.Image",
                            reason="Pillow is not installed: pip install 'nn_gpu[image]'")

from conftest import run  # noqa: E402
from fuzzing import memory_cap, mutate  # noqa: E402

from nn_gpu import Network  # noqa: E402
from nn_gpu.model.metrics import classify, probabilities  # noqa: E402
from nn_gpu.reading.images import ImageError, check_model, to_mnist  # noqa: E402
from nn_gpu.version import install_hint  # noqa: E402


def predict_images(net, images):
    """(label, probabilities) of each image, as `nn-gpu predict` reads them."""
    check_model(net)
    return classify(net, numpy.stack([to_mnist(image) for image in images])) if images else []

#: ``NAME: 7 (0.913)  0:0.0012 1:0.0003 ... 9:0.0150``
RESULT = re.compile(r"^(?P<name>.+): (?P<label>\d) \((?P<p>[01]\.\d{3})\)  "
                    r"(?P<probs>(\d:[01]\.\d{4} ?){10})$")


# ---------------------------------------------------------------- helpers
def render(x, size=(200, 140), scale=4, at=(30, 10)):
    """An MNIST image as a user's picture: black ink on white, ``scale``
    times larger (bilinear), pasted at ``at`` on a white ``size`` canvas."""
    ink = numpy.asarray(x, dtype=numpy.float64).reshape(28, 28)
    digit = Image.fromarray(numpy.uint8(numpy.round(255 * (1 - ink))))
    digit = digit.resize((28 * scale, 28 * scale), Image.BILINEAR)
    canvas = Image.new("L", size, 255)
    canvas.paste(digit, at)
    return canvas


def correlation(a, b):
    return numpy.corrcoef(numpy.ravel(a), numpy.ravel(b))[0, 1]


def best_correlation(converted, original):
    """The correlation, allowing a shift of one pixel either way (MNIST's
    own centring moves digits by whole pixels)."""
    image = converted.reshape(28, 28)
    return max(correlation(numpy.roll(image, (dr, dc), axis=(0, 1)), original)
               for dr in (-1, 0, 1) for dc in (-1, 0, 1))


def parse(line):
    match = RESULT.match(line)
    assert match, line
    probs = [float(item.split(":")[1]) for item in match["probs"].split()]
    return match["name"], int(match["label"]), float(match["p"]), probs


# --------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def digits(mnist):
    """The first test image of each digit 0-9: (images (10, 784), labels)."""
    _, _, (X, labels) = mnist
    rows = [int(numpy.flatnonzero(labels == d)[0]) for d in range(10)]
    return X[rows], labels[rows]


@pytest.fixture(scope="module")
def pngs(digits, tmp_path_factory):
    """The ten digits as PNG files, each at a different place in its picture."""
    directory = tmp_path_factory.mktemp("digits")
    paths = []
    for d, x in enumerate(digits[0]):
        path = directory / f"digit-{d}.png"
        render(x, at=(20 + 7 * d, 4 + 2 * d)).save(path)
        paths.append(path)
    return paths


# ------------------------------------------------------------- to_mnist
def test_user_pictures_become_the_original_mnist_images(digits, pngs):
    images, _ = digits
    plain = []
    for path, original in zip(pngs, images):
        x = to_mnist(path)
        assert x.shape == (784,) and x.dtype == numpy.float32
        assert 0 <= x.min() and x.max() <= 1 and x.max() > 0.9
        # a centre of mass can round to the neighbouring pixel: up to one pixel off
        assert best_correlation(x, original) > 0.93, path.name
        plain.append(correlation(x, original))
    assert numpy.median(plain) > 0.9 and numpy.mean(plain) > 0.85, numpy.round(plain, 3)


def test_a_photo_with_uneven_light_and_grain(digits, trained_model):
    """Grey paper darkening by a third across the page, grainy, grey ink."""
    rng = numpy.random.default_rng(0)
    net, _ = trained_model
    for x, digit in zip(*digits):
        ink = numpy.asarray(render(x, size=(300, 220), at=(70, 50)), dtype=numpy.float64) / 255
        height, width = ink.shape
        paper = (235 - 80 * numpy.linspace(0, 1, width)[None, :]
                 - 20 * numpy.linspace(0, 1, height)[:, None] ** 2)
        photo = paper * (0.25 + 0.75 * ink) + rng.normal(0, 6, ink.shape)
        picture = Image.fromarray(numpy.uint8(numpy.clip(photo, 0, 255))).convert("RGB")
        converted, clean = to_mnist(picture), to_mnist(render(x))
        assert best_correlation(converted, x) > 0.9, digit
        assert correlation(converted, clean) > 0.9, digit
        assert numpy.argmax(probabilities(net, converted[None])) == \
            numpy.argmax(probabilities(net, clean[None])), digit


def test_the_digit_is_20_pixels_and_centred_by_its_mass(tmp_path):
    # a dark ellipse 300 wide and 120 tall, far off the centre of a light grey photo
    picture = Image.new("L", (900, 700), 230)
    from PIL import ImageDraw
    ImageDraw.Draw(picture).ellipse((500, 80, 800, 200), fill=20)
    x = to_mnist(picture).reshape(28, 28)
    rows, cols = numpy.flatnonzero(x.any(axis=1)), numpy.flatnonzero(x.any(axis=0))
    assert cols[-1] - cols[0] + 1 == 20  # the longer side
    assert 7 <= rows[-1] - rows[0] + 1 <= 9  # 120/300 of it
    mass = x.sum()
    com = ((x.sum(axis=1) * numpy.arange(28)).sum() / mass,
           (x.sum(axis=0) * numpy.arange(28)).sum() / mass)
    assert numpy.allclose(com, 14, atol=0.5)
    assert x.max() == pytest.approx(1, abs=0.05) and x[0].sum() == 0  # ink 1, paper 0


@pytest.mark.parametrize("variant", ["RGB png", "RGBA on transparent", "JPEG", "16-bit png",
                                     "palette gif", "white on black", "huge", "tiny",
                                     "phone photo, EXIF rotated", "PIL image"])
def test_every_format_gives_the_same_input(digits, tmp_path, variant):
    x = digits[0][3]
    picture = render(x)
    reference = to_mnist(picture)
    path = tmp_path / "digit.png"
    if variant == "RGB png":
        picture.convert("RGB").save(path)
    elif variant == "RGBA on transparent":  # black ink, no paper at all
        ink = Image.fromarray(255 - numpy.asarray(picture))
        Image.merge("RGBA", [Image.new("L", picture.size, 0)] * 3 + [ink]).save(path)
    elif variant == "JPEG":
        path = tmp_path / "digit.jpg"
        picture.convert("RGB").save(path, quality=85)
    elif variant == "16-bit png":
        Image.fromarray(numpy.asarray(picture, dtype=numpy.uint16) * 257).save(path)
        with Image.open(path) as saved:
            assert saved.mode.startswith("I")
    elif variant == "palette gif":
        path = tmp_path / "digit.gif"
        picture.convert("P").save(path)
    elif variant == "white on black":
        Image.fromarray(255 - numpy.asarray(picture)).save(path)
    elif variant == "huge":
        picture.resize((4000, 2800), Image.BILINEAR).save(path)
    elif variant == "phone photo, EXIF rotated":  # stored on its side, EXIF says turn it
        path = tmp_path / "digit.jpg"
        exif = Image.Exif()
        exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
        picture.transpose(Image.Transpose.ROTATE_90).convert("RGB").save(
            path, quality=90, exif=exif)
    elif variant == "tiny":
        render(x, size=(40, 30), scale=1, at=(5, 1)).save(path)
    else:
        path = picture
    assert correlation(to_mnist(path), reference) > (0.9 if variant == "tiny" else 0.97)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow: "Corrupt EXIF data" and such
@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), kind=st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]))
def test_damaged_image_files_are_one_line_errors(tmp_path, data, kind):
    """Fuzzing: any damage to an image file gives an input or an ImageError,
    never a traceback (and never gigabytes for a header that lies)."""
    buffer = io.BytesIO()
    picture = render(numpy.eye(28).ravel(), size=(60, 40), scale=1, at=(16, 6))
    picture.save(buffer, format=kind)
    path = tmp_path / "digit"
    path.write_bytes(mutate(buffer.getvalue(), data.draw))
    try:
        with memory_cap():
            x = to_mnist(path)
    except ImageError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
    else:
        assert x.shape == (784,) and x.dtype == numpy.float32
        assert numpy.isfinite(x).all() and 0 <= x.min() and x.max() <= 1


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "image file not found"),
    (lambda p: p.write_text("12345, not a picture"), "not an image file Pillow can read"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: Image.new("L", (200, 140), 255).save(p, format="PNG"), "blank"),
    (lambda p: Image.new("RGB", (50, 50), (0, 0, 0)).save(p, format="PNG"), "blank"),
    (lambda p: Image.new("L", (50, 50), 128).save(p, format="PNG"), "blank"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40), "image"),
])
def test_bad_images_are_one_line_errors(tmp_path, make, message):
    path = tmp_path / "digit.png"
    make(path)
    with pytest.raises(ImageError, match=message) as info:
        to_mnist(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_a_truncated_image_is_an_error(digits, tmp_path):
    path = tmp_path / "digit.png"
    render(digits[0][0]).save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageError, match=re.escape(str(path))):
        to_mnist(path)


def test_without_pillow_the_error_says_how_to_install_it(monkeypatch, tmp_path, trained_model):
    monkeypatch.setitem(sys.modules, "PIL", None)  # `from PIL import ...` now fails
    with pytest.raises(ImageError, match=re.escape(install_hint("image"))):
        to_mnist(tmp_path / "digit.png")
    rc, out, err = run("predict", str(trained_model[1]), str(tmp_path / "digit.png"))
    assert rc == 1 and out == ""
    assert err.startswith("nn-gpu: error: reading images needs Pillow") and err.count("\n") == 1


# ------------------------------------------------------------ predicting
def test_a_small_trained_network_reads_the_pictures(trained_model, digits, pngs):
    net, _ = trained_model
    results = predict_images(net, pngs)
    assert len(results) == 10
    for label, probs in results:
        assert isinstance(label, int) and probs.shape == (10,)
        assert probs.sum() == pytest.approx(1) and (probs >= 0).all()
        assert label == int(numpy.argmax(probs))
    predicted = [label for label, _ in results]
    assert sum(p == d for p, d in zip(predicted, range(10))) >= 8, predicted
    # and it reads them as it reads the MNIST originals
    originals = numpy.argmax(net.backend.to_host(net.feedforward(digits[0])), axis=1)
    assert sum(p == o for p, o in zip(predicted, originals)) >= 9


def test_probabilities_are_normalised_sigmoid_or_plain_softmax(digits):
    X = digits[0][:3]
    sigmoid = Network([784, 10], cost="cross_entropy", backend="numpy", seed=0)
    a = numpy.asarray(sigmoid.feedforward(X), dtype=numpy.float64)
    assert numpy.allclose(probabilities(sigmoid, X), a / a.sum(axis=1, keepdims=True))
    softmax = Network([784, 10], cost="log_likelihood", backend="numpy", seed=0)
    a = numpy.asarray(softmax.feedforward(X), dtype=numpy.float64)
    assert numpy.allclose(probabilities(softmax, X), a)
    assert numpy.allclose(probabilities(softmax, X).sum(axis=1), 1)


def test_a_model_for_other_inputs_is_refused(pngs):
    with pytest.raises(ValueError, match="784 inputs"):
        predict_images(Network([100, 10], backend="numpy"), pngs[:1])
    assert predict_images(Network([784, 10], backend="numpy"), []) == []


# -------------------------------------------------------------- the CLI
def test_cli_prints_the_digit_and_ten_probabilities(trained_model, pngs):
    rc, out, err = run("predict", str(trained_model[1]), *map(str, pngs))
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 10
    right = 0
    for line, path, digit in zip(lines, pngs, range(10)):
        name, label, p, probs = parse(line)
        assert name == str(path)
        assert len(probs) == 10 and sum(probs) == pytest.approx(1, abs=1e-3)
        assert label == int(numpy.argmax(probs)) and p == pytest.approx(probs[label], abs=1e-3)
        right += label == digit
    assert right >= 8


def test_cli_show_draws_what_the_network_sees(trained_model, pngs):
    rc, out, _ = run("predict", str(trained_model[1]), str(pngs[1]), "--show")
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 29
    assert all(re.fullmatch(r"  \|.{28}\|", line) for line in lines[1:])
    assert any("@" in line for line in lines[1:])


@pytest.mark.parametrize("case, message", [
    ("missing image", "image file not found"),
    ("blank image", "no digit found"),
    ("text file", "not an image file"),
    ("missing model", "model file not found"),
    ("wrong model", "do not fit digit images"),
])
def test_cli_errors_are_one_line(trained_model, pngs, tmp_path, case, message):
    model, images = str(trained_model[1]), [str(pngs[0])]
    if case == "missing image":
        images.append(str(tmp_path / "nope.png"))
    elif case == "blank image":
        Image.new("L", (30, 30), 255).save(tmp_path / "blank.png")
        images.append(str(tmp_path / "blank.png"))
    elif case == "text file":
        (tmp_path / "notes.png").write_text("a shopping list")
        images.append(str(tmp_path / "notes.png"))
    elif case == "missing model":
        model = str(tmp_path / "nope.npz")
    else:
        Network([784, 5, 3], backend="numpy").save(tmp_path / "other.npz")
        model = str(tmp_path / "other.npz")
    rc, out, err = run("predict", model, *images)
    assert rc == 1 and out == ""  # nothing printed for the good image either
    assert err.startswith("nn-gpu: error: ") and err.count("\n") == 1
    assert message in err


def test_cli_usage_errors():
    rc, _, err = run("predict")
    assert rc == 2 and "nn-gpu predict: error:" in err
    rc, out, _ = run("predict", "--help")
    assert rc == 0 and "Pillow" in out
