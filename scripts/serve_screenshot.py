"""The screenshot of `nn-gpu serve`'s page in the docs: a number written
with MNIST test digits (traced into pen strokes) and what a model reads.

    python scripts/serve_screenshot.py ch3-l2.npz --out docs/images/serve.png

Serves MODEL on a free loopback port (with the whole-digit check, trained
once from MNIST and cached, as `nn-gpu serve` does), writes --number with
MNIST test digits of those labels (drawn with --seed) on the page in
headless Chromium, waits for the reading and saves the page as a PNG.
Needs what the browser tests need: Debian's chromium and chromium-driver,
and Selenium (the test extra).
"""

import argparse
import sys
import tempfile
import threading
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from serving import browser_unavailable, draw, number_strokes, settled, start_chromium  # noqa: E402,E501

from nn_gpu.analysis.ensemble import load_model  # noqa: E402
from nn_gpu.data.mnist import load_mnist  # noqa: E402
from nn_gpu.serve import Reader, Server  # noqa: E402
from nn_gpu.reading.whole_digit import default_check  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--out", default="docs/images/serve.png")
    parser.add_argument("--number", default="31415",
                        help="the digits to write (each a test digit of that label)")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--data", help="MNIST directory (default: $NN_GPU_DATA)")
    args = parser.parse_args()
    missing = browser_unavailable()
    if missing:
        sys.exit(f"serve_screenshot: {missing}")

    net = load_model(args.model, backend="numpy")
    server = Server("127.0.0.1", 0, Reader(net, default_check(args.data, say=print),
                                           Path(args.model).name))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _, _, (X, labels) = load_mnist(args.data)
    rng = numpy.random.default_rng(args.seed)
    rows = [rng.choice(numpy.flatnonzero(labels == int(d))) for d in args.number]
    print("writing", "".join(str(d) for d in labels[rows]))

    profile = tempfile.TemporaryDirectory(prefix="nn_gpu_screenshot_")
    driver = start_chromium(profile.name, width=1100, height=880)
    try:
        driver.get(server.url)
        draw(driver, "number-ink", number_strokes(X[rows], 8, 70, 50, 34))
        print("state", settled(driver, "number"),
              driver.find_element("id", "number-digits").text)
        driver.save_screenshot(args.out)
        print("saved", args.out)
    finally:
        driver.quit()
        server.shutdown()
        profile.cleanup()


if __name__ == "__main__":
    main()
