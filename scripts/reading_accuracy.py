"""How well `nn-gpu read` reads numbers composed from MNIST *test* digits.

    python scripts/reading_accuracy.py ch3-l2.npz best-mlp.npz --count 100

For each model: its accuracy on the 10,000 single test digits, then for each
style of number (see nn_gpu.data.composed: digits with gaps; touching or
overlapping by up to 3 MNIST pixels; a photo with uneven light and grain;
light ink on dark paper) the digit accuracy (1 - edit distance / length) and
the share of whole numbers read right, over --count numbers of 1-12 digits
drawn with --seed, read with the whole-digit check (trained once from the
training digits and cached; --no-check: the model alone). Prints Markdown
table rows (the README's table).
"""

import argparse
import os
import sys

import numpy

from nn_gpu.analysis.ensemble import load_model
from nn_gpu.data.composed import GAPS, PHOTO, TOUCHING, Style, reading_accuracy
from nn_gpu.data.mnist import load_mnist, resolve_data_dir
from nn_gpu.reading.reader import read_number
from nn_gpu.reading.whole_digit import default_check

STYLES = {"gaps": GAPS, "touching": TOUCHING, "photo": PHOTO,
          "light on dark": Style(invert=True, grain=0.03)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", metavar="MODEL")
    parser.add_argument("--count", type=int, default=100, help="numbers per style")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--styles", nargs="+", choices=list(STYLES), default=list(STYLES))
    parser.add_argument("--data", default=os.environ.get("NN_GPU_DATA"))
    parser.add_argument("--no-check", action="store_true", help="without the whole-digit check")
    args = parser.parse_args(argv)
    check = None if args.no_check else default_check(args.data, say=print)
    _, _, (X, labels) = load_mnist(resolve_data_dir(args.data))
    print("| model | single test digits | " + " | ".join(
        f"{style}: digits / whole numbers" for style in args.styles) + " |")
    print("|---|---|" + "---|" * len(args.styles))
    for path in args.models:
        net = load_model(path, backend="numpy")
        single = net.evaluate((X, labels)) / len(labels)
        cells = []
        for style in args.styles:
            rng = numpy.random.default_rng(args.seed)
            digits, whole, _ = reading_accuracy(lambda p: read_number(net, p, check).digits,
                                                X, labels, rng, args.count, STYLES[style])
            cells.append(f"{100 * digits:.1f}% / {100 * whole:.0f}%")
        print(f"| {os.path.basename(path)} | {100 * single:.2f}% | " + " | ".join(cells) + " |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
