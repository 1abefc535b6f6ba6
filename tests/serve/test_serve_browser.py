"""`nn-gpu serve`'s page in a real browser: headless Chromium writes on
its canvases with pointer actions -- strokes traced from MNIST test digits,
side by side -- and what the page shows must be what `nn-gpu read --json`
(or `nn-gpu predict`) answers for the very image the canvas holds.

Marked ``browser``: skipped with the reason where Chromium, its driver or
Selenium is missing; failed instead under ``NN_GPU_REQUIRE_BROWSER=1`` (CI).
"""

import base64
import io
import json
import math
import os
import re
import signal

import numpy
import pytest

Image = pytest.importorskip("PIL.Image",
                            reason="Pillow is not installed: pip install 'nn_gpu[image]'")


from conftest import mnist_dir, run  # noqa: E402
from serving import (WAIT, browser_unavailable, confident_digits, draw,  # noqa: E402
                     number_strokes, serve_command, settled, start_chromium, stop)

REQUIRED = os.environ.get("NN_GPU_REQUIRE_BROWSER") == "1"
MISSING = browser_unavailable()
pytestmark = [pytest.mark.browser, pytest.mark.slow,  # (skipped before any model is trained)
              pytest.mark.skipif(bool(MISSING) and not REQUIRED, reason=str(MISSING))]

# ----------------------------------------------------------------- fixtures
def unavailable(reason):
    if REQUIRED:
        pytest.fail(f"NN_GPU_REQUIRE_BROWSER=1, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """A WebDriver on headless Chromium, for the whole module."""
    if MISSING:
        unavailable(MISSING)
    from selenium.common.exceptions import WebDriverException

    try:
        driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    except WebDriverException as exc:
        unavailable(f"Chromium does not start: {' '.join(str(exc).split())[:300]}")
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def served(chromium, trained_model, reading_check, tmp_path_factory):
    """The URL of `nn-gpu serve` run as a process with the small model."""
    work = tmp_path_factory.mktemp("serve-work")
    process, port, line = serve_command(trained_model[1], work, reading_check[1])
    if port is None:
        process.kill()
        pytest.fail(f"nn-gpu serve printed {line!r}; stderr: {process.communicate()[1]}")
    yield f"http://127.0.0.1:{port}/"
    _, err = stop(process, signal.SIGTERM)  # (as a service manager stops it)
    assert process.returncode == 0 and err == "nn-gpu serve: stopped\n"


@pytest.fixture
def page(chromium, served):
    """The page, freshly loaded."""
    chromium.get(served)
    return chromium


@pytest.fixture(scope="module")
def drawable(mnist, trained_model):
    """Test digits the small network reads right, surely, on their own: (images, labels)."""
    return confident_digits(trained_model[0], mnist[2], 1000, 0.97)


# ------------------------------------------------------------------ helpers
def canvas_png(driver, canvas_id):
    """The PNG the page sends for a canvas (its pixels, as toBlob encodes them)."""
    url = driver.execute_script(
        "return document.getElementById(arguments[0]).toDataURL('image/png')", canvas_id)
    return base64.b64decode(url.split(",", 1)[1])


def output_of(monkeypatch, cwd, *argv):
    """What `nn-gpu ARGV` prints, run in ``cwd``; it must succeed."""
    monkeypatch.chdir(cwd)
    status, out, err = run(*argv)
    assert status == 0, err
    return out


def read_json(model, picture, tmp_path, monkeypatch, cache_home):
    """What `nn-gpu read MODEL canvas.png --json` prints for the PNG bytes."""
    (tmp_path / "canvas.png").write_bytes(picture)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    monkeypatch.setenv("NN_GPU_DATA", str(mnist_dir()))
    return json.loads(output_of(monkeypatch, tmp_path, "read", model, "canvas.png", "--json"))


def percent(p):
    """The page's percentage of a probability (its app.js)."""
    if p > 0.99:
        return f"{math.floor(p * 1000) / 10:.1f}%"
    return f"{math.floor(100 * p + 0.5)}%"


def text(driver, element_id):
    return driver.find_element("id", element_id).text


def shown_reading(driver):
    """The page's reading: the JSON it shows, checked against the digits,
    the cards of each digit and the boxes drawn over the strokes."""
    shown = json.loads(driver.find_element("id", "number-json").get_attribute("textContent"))
    assert text(driver, "number-digits") == shown["digits"]
    cards = driver.find_elements("css selector", "#number-pieces .piece")
    assert [card.find_element("class name", "digit").text for card in cards] == \
        list(shown["digits"])
    for card, p in zip(cards, shown["probabilities"]):
        assert card.find_element("class name", "chance").text == percent(p)
    drawn = driver.execute_script(
        "const c = document.getElementById('number-boxes').getContext('2d');"
        "return arguments[0].map(b => c.getImageData(b[0] - 4, (b[1] + b[3]) >> 1, 1, 1)"
        ".data[3]);", shown["boxes"])
    assert all(alpha > 0 for alpha in drawn)  # each box's left edge is drawn
    return shown


# -------------------------------------------------------------------- tests
def test_the_page_reads_a_written_number_as_read_json_does(page, drawable, trained_model,
                                                           reading_check, tmp_path,
                                                           monkeypatch):
    """Four MNIST test digits written side by side: the page shows the
    digits, their probabilities and boxes that `read --json` prints for the
    canvas's image -- and those are the digits written."""
    rng = numpy.random.default_rng(11)
    rows = rng.choice(len(drawable[0]), size=4, replace=False)
    truth = "".join(str(d) for d in drawable[1][rows])
    assert page.find_element("id", "number").get_attribute("data-state") == "empty"
    draw(page, "number-ink", number_strokes(drawable[0][rows], 8, 60, 45, 40))
    assert settled(page, "number") == "done"
    shown = shown_reading(page)
    printed = read_json(trained_model[1], canvas_png(page, "number-ink"), tmp_path, monkeypatch,
                        reading_check[1])
    assert shown == printed
    assert shown["digits"] == truth
    assert re.fullmatch(r"Model .*model\.npz: fully connected, layers 784 → 60 → 10; "
                        r"whole-digit check on", text(page, "model"))


def test_undo_and_clear_with_a_pen(page, drawable, trained_model, reading_check, tmp_path,
                                   monkeypatch):
    rng = numpy.random.default_rng(12)
    rows = rng.choice(len(drawable[0]), size=2, replace=False)
    first = number_strokes(drawable[0][rows[:1]], 8, 60, 45, 40)
    both = number_strokes(drawable[0][rows], 8, 60, 45, 40)
    draw(page, "number-ink", both, pointer="pen")
    assert settled(page, "number") == "done"
    assert shown_reading(page)["digits"] == "".join(str(d) for d in drawable[1][rows])

    for _ in range(len(both) - len(first)):  # the second digit's strokes, last first
        page.find_element("id", "number-undo").click()
    assert settled(page, "number") == "done"
    shown = shown_reading(page)
    assert shown == read_json(trained_model[1], canvas_png(page, "number-ink"), tmp_path,
                              monkeypatch, reading_check[1])
    assert shown["digits"] == str(drawable[1][rows[0]])

    page.find_element("id", "number-clear").click()
    assert settled(page, "number") == "empty"
    assert text(page, "number-digits") == "–" and text(page, "number-status") == \
        "Write a number above."
    assert page.find_elements("css selector", "#number-pieces .piece") == []
    with Image.open(io.BytesIO(canvas_png(page, "number-ink"))) as cleared:
        assert cleared.convert("L").getextrema() == (255, 255)  # white, no ink left
    assert page.execute_script(
        "const c = document.getElementById('number-boxes');"
        "return c.getContext('2d').getImageData(0, 0, c.width, c.height).data"
        ".every(v => v === 0)")  # no box left either


def test_one_digit_written_with_a_finger_shows_the_ten_outputs(
        page, drawable, trained_model, served, tmp_path, monkeypatch):
    """The second tab: the bars are the output layer's activations, as
    /api/digit answers for the canvas's image, and the answer `predict` gives."""
    import urllib.request

    page.find_element("id", "tab-digit").click()
    assert page.find_element("id", "digit").is_displayed()
    assert not page.find_element("id", "number").is_displayed()
    digit = drawable[0][5]
    draw(page, "digit-ink", number_strokes([digit], 8, 40, 28, 0), pointer="touch")
    assert settled(page, "digit") == "done"

    picture = canvas_png(page, "digit-ink")
    request = urllib.request.Request(served + "api/digit?file=digit.png", data=picture,
                                     headers={"Content-Type": "image/png"})
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        expected = json.loads(response.read())
    bars = page.find_elements("css selector", "#digit-bars .bar")
    assert [float(bar.get_attribute("data-activation")) for bar in bars] == \
        expected["activations"]
    assert [bar.find_element("class name", "name").text for bar in bars] == \
        [str(d) for d in range(10)]
    winners = [i for i, bar in enumerate(bars) if "winner" in bar.get_attribute("class")]
    assert winners == [expected["digit"]] == [int(numpy.argmax(expected["activations"]))]
    assert text(page, "digit-answer") == str(expected["digit"]) == str(drawable[1][5])
    heights = [bar.find_element("class name", "fill").size["height"] for bar in bars]
    assert numpy.argmax(heights) == expected["digit"]

    (tmp_path / "digit.png").write_bytes(picture)
    out = output_of(monkeypatch, tmp_path, "predict", trained_model[1], "digit.png")
    assert out.startswith(f"digit.png: {expected['digit']} ")
    assert [float(pair.split(":")[1]) for pair in out.split("  ")[1].split()] == \
        expected["probabilities"]

    page.find_element("id", "digit-undo").click()  # (one stroke of several)
    assert settled(page, "digit") in ("done", "error")
    page.find_element("id", "digit-clear").click()
    assert settled(page, "digit") == "empty" and text(page, "digit-answer") == "–"
    assert all(float(bar.get_attribute("data-activation")) == 0
               for bar in page.find_elements("css selector", "#digit-bars .bar"))
