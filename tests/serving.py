"""Helpers of the tests of ``nn-gpu serve``: the command as a process,
headless Chromium driven by Selenium, and pen strokes traced from MNIST
digits.

Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them)
are started as this machine needs: headless, no sandbox (root), no GPU, no
network of its own (no background requests, QUIC, sync or component
updates), and a fresh profile in a temporary directory. Where they or
Selenium are missing, :func:`browser_unavailable` says why; the tests skip
with that reason, or fail where ``NN_GPU_REQUIRE_BROWSER=1`` (CI).
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter

import numpy
from conftest import REPO_ROOT, mnist_dir

URL_LINE = re.compile(r"Reading with (.+) at (http://127\.0\.0\.1:(\d+)/) \(Ctrl-C to stop\)\n")


def serve_command(model, cwd, cache_home, *extra):
    """`nn-gpu serve MODEL --port 0` started as a process in ``cwd`` (its
    temporary directory too), finding the whole-digit check in
    ``cache_home``: (process, port or None, the first line it printed),
    once it has printed that line (its URL, where it started)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT),
                                                         os.environ.get("PYTHONPATH", "")]),
           "XDG_CACHE_HOME": str(cache_home), "NN_GPU_DATA": str(mnist_dir()),
           "TMPDIR": str(cwd), "PYTHONFAULTHANDLER": "1"}
    with ctrl_c_reaches_children():
        process = subprocess.Popen([sys.executable, "-m", "nn_gpu", "serve", str(model),
                                    "--port", "0", *extra], cwd=cwd, env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = process.stdout.readline()
    match = URL_LINE.fullmatch(line)
    return process, (int(match[3]) if match else None), line


@contextlib.contextmanager
def ctrl_c_reaches_children():
    """SIGINT at its default in the processes started inside, as in a
    terminal. Where the test run itself ignores SIGINT (a background job of
    a non-interactive shell), its children would inherit that, and Python
    then installs no KeyboardInterrupt handler: Ctrl-C sent to them would do
    nothing, which is the shell's choice, not the command's."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.SIG_IGN):
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def stop(process, signum, timeout=60):
    """Send ``signum`` (Ctrl-C's SIGINT, a service manager's SIGTERM) to a
    served process and wait for it to end: (stdout, stderr). One that does
    not end in ``timeout`` seconds fails the test with its signal masks
    (pending, blocked, ignored, caught: /proc/PID/status) and every thread's
    stack (faulthandler, switched on by :func:`serve_command`, prints them on
    SIGABRT), so a stop that hangs says where."""
    process.send_signal(signum)
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            with open(f"/proc/{process.pid}/status") as status:
                sig = " ".join(line.strip() for line in status
                               if line.startswith(("Sig", "ShdPnd")))
        except OSError:
            sig = "(no /proc)"
        process.send_signal(signal.SIGABRT)
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        raise AssertionError(f"nn-gpu serve did not stop within {timeout} s of "
                             f"{signal.Signals(signum).name}; {sig}; its threads:\n{err}") from None


def confident_digits(net, test, count, sure):
    """The first ``count`` (images, labels) of ``test`` that ``net`` reads
    right on their own with an output above ``sure``: what is tested is then
    the reading of numbers, not the network."""
    X, labels = test[0][:count], test[1][:count]
    outputs = numpy.asarray(net.feedforward(X))
    right = (numpy.argmax(outputs, axis=1) == labels) & (outputs.max(axis=1) > sure)
    return X[right], labels[right]


WAIT = 60  # seconds for a reading to show on the page (a busy machine)
CHROMIUM = ("chromium", "chromium-browser")
DRIVER = "chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1")


def chromium_paths():
    """(browser, driver) executables on PATH, or None for each one missing."""
    browser = next(filter(None, map(shutil.which, CHROMIUM)), None)
    return browser, shutil.which(DRIVER)


def browser_unavailable():
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import selenium  # noqa: F401
    except ImportError as exc:
        return f"Selenium is not installed ({exc}): pip install -e '.[test]'"
    browser, driver = chromium_paths()
    if browser is None or driver is None:
        missing = " and ".join(name for name, path in (("chromium", browser),
                                                       ("chromedriver", driver)) if not path)
        return (f"{missing} not found on PATH: apt-get install chromium chromium-driver "
                "(Debian's packages)")
    return None


def start_chromium(profile, width=1100, height=1000):
    """A Selenium WebDriver on headless Chromium, with its profile in ``profile``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    environment = {**os.environ, "SE_AVOID_STATS": "true"}
    return webdriver.Chrome(options=options, service=Service(driver, env=environment))


def draw(driver, canvas_id, strokes, pointer="mouse"):
    """Pointer actions writing ``strokes`` (canvas pixels) on the canvas,
    with a ``pointer`` "mouse", "pen" or "touch" (a finger)."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    canvas = driver.find_element("id", canvas_id)
    left, top, width, bits = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return [r.left, r.top, r.width, arguments[0].width];", canvas)
    kind = {"mouse": interaction.POINTER_MOUSE, "pen": interaction.POINTER_PEN,
            "touch": interaction.POINTER_TOUCH}[pointer]
    actions = ActionBuilder(driver, mouse=PointerInput(kind, pointer), duration=0)
    for stroke in strokes:
        points = [(round(left + x * width / bits), round(top + y * width / bits))
                  for x, y in stroke]
        actions.pointer_action.move_to_location(*points[0])
        actions.pointer_action.pointer_down()
        for point in points[1:]:
            actions.pointer_action.move_to_location(*point)
        actions.pointer_action.pointer_up()
    actions.perform()


def settled(driver, panel):
    """The panel's state once the answer to its latest strokes shows."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT, poll_frequency=0.05).until(
        lambda d: d.find_element("id", panel).get_attribute("data-state")
        in ("done", "error", "empty"))
    return driver.find_element("id", panel).get_attribute("data-state")


# --------------------------------------------------------------- the strokes
def thin(ink):
    """Zhang and Suen's thinning of a boolean image: its strokes one pixel wide."""
    image = ink.copy()
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            padded = numpy.pad(image, 1)
            p2, p3, p4 = padded[:-2, 1:-1], padded[:-2, 2:], padded[1:-1, 2:]
            p5, p6, p7 = padded[2:, 2:], padded[2:, 1:-1], padded[2:, :-2]
            p8, p9 = padded[1:-1, :-2], padded[:-2, :-2]
            ring = [p2, p3, p4, p5, p6, p7, p8, p9, p2]
            count = sum(n.astype(int) for n in ring[:8])
            turns = sum((~a & b).astype(int) for a, b in zip(ring, ring[1:]))
            if step == 0:
                keep = (p2 & p4 & p6) | (p4 & p6 & p8)
            else:
                keep = (p2 & p4 & p8) | (p2 & p6 & p8)
            remove = image & (count >= 2) & (count <= 6) & (turns == 1) & ~keep
            if remove.any():
                image &= ~remove
                changed = True
    return image


def _links(points):
    """The skeleton's links: 8-neighbours, less the diagonals that two
    straight links already join (the corners of a staircase)."""
    links = set()
    for r, c in points:
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
            q = (r + dr, c + dc)
            if q not in points:
                continue
            if dr and dc and ((r + dr, c) in points or (r, c + dc) in points):
                continue
            links.add(frozenset(((r, c), q)))
    return links


def strokes_of_digit(image, threshold=0.35, zoom=3, step=3):
    """A 28x28 digit (784 values in [0, 1]) as pen strokes: lists of (row,
    column) points, in MNIST pixels, along its skeleton (traced ``zoom``
    times finer, smoothed, every ``step``-th point kept), each stroke walked
    from a loose end where there is one, as a hand would."""
    from scipy import ndimage

    fine = ndimage.zoom(numpy.asarray(image, dtype=float).reshape(28, 28), zoom, order=1)
    skeleton = thin(fine > threshold)
    points = set(zip(*(axis.tolist() for axis in numpy.nonzero(skeleton))))
    links = _links(points)
    paths = [[p] for p in sorted(points) if not any(p in link for link in links)]
    while links:
        degree = Counter(p for link in links for p in link)
        odd = sorted(p for p, d in degree.items() if d % 2)
        path = [odd[0] if odd else min(degree)]
        while True:
            here = path[-1]
            ahead = sorted(q for link in links if here in link for q in link if q != here)
            if not ahead:
                break
            links.discard(frozenset((here, ahead[0])))
            path.append(ahead[0])
        paths.append(path)
    return [_smooth(path, step) / zoom for path in paths if len(path) > 1 or len(paths) == 1]


def _smooth(path, step):
    """A path's points averaged over a few neighbours, every ``step``-th kept (and its ends)."""
    points = numpy.asarray(path, dtype=float)
    if len(points) > 4:
        kernel = numpy.ones(5) / 5
        padded = numpy.pad(points, ((2, 2), (0, 0)), mode="edge")
        points = numpy.stack([numpy.convolve(padded[:, k], kernel, mode="valid")
                              for k in (0, 1)], axis=1)
        points[[0, -1]] = numpy.asarray(path, dtype=float)[[0, -1]]
    keep = sorted({*range(0, len(points), step), len(points) - 1})
    return points[keep]


def number_strokes(digits, scale, left, top, gap):
    """Strokes of several 28x28 ``digits`` side by side, in canvas pixels:
    each digit ``scale`` canvas pixels per MNIST pixel, from ``left`` and
    ``top``, the next one ``gap`` pixels after the last one's ink."""
    strokes, x = [], left
    for digit in digits:
        shape = strokes_of_digit(digit)
        columns = [c for stroke in shape for _, c in stroke]
        shift = x - min(columns) * scale
        strokes += [[(shift + c * scale, top + r * scale) for r, c in stroke.tolist()]
                    for stroke in shape]
        x = shift + max(columns) * scale + gap
    return strokes
