"""One epoch as a notebook user trains it, measured: ``net.sgd(training, 1,
...)`` called once per epoch (train, look, train one more) against one epoch
of a single many-epoch ``sgd`` call, same network, same data, side by side.
What one call costs beyond its epoch is the preparation a call repeats.

    NN_GPU_DATA=... python bench/api_epoch.py [--batch-sizes 10 100 1000] [--epochs 6]
        [--cpu-time] [--tuples] [--evaluate]

``--tuples`` passes plain ``(X, labels)`` tuples instead of the data sets
``load_mnist`` returns; ``--evaluate`` also scores the validation set after
every epoch (``validation_data``), as ``nn-gpu train`` does.
"""

import argparse
import os
import statistics
import time

from nn_gpu import Network
from nn_gpu.data.mnist import load_mnist

SIZES = [784, 30, 10]


def per_call(training, batch_size, epochs, clock, **scoring):
    """Seconds of each of ``epochs`` one-epoch ``sgd`` calls (after one untimed)."""
    net = Network(SIZES, backend="numpy", seed=0)
    net.sgd(training, 1, batch_size, 3.0, **scoring)
    seconds = []
    for _ in range(epochs):
        started = clock()
        net.sgd(training, 1, batch_size, 3.0, **scoring)
        seconds.append(clock() - started)
    return seconds


def in_one_call(training, batch_size, epochs, clock, **scoring):
    """Seconds of each epoch of one ``epochs``-epoch ``sgd`` call (after one untimed call)."""
    net = Network(SIZES, backend="numpy", seed=0)
    net.sgd(training, 1, batch_size, 3.0, **scoring)
    marks = [clock()]
    net.sgd(training, epochs, batch_size, 3.0, callback=lambda record: marks.append(clock()),
            **scoring)
    return [after - before for before, after in zip(marks, marks[1:])]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternate the two ways this many times")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the process's CPU time, not the wall clock")
    parser.add_argument("--tuples", action="store_true",
                        help="plain (X, labels) tuples instead of load_mnist's data sets")
    parser.add_argument("--evaluate", action="store_true",
                        help="score the validation set after every epoch")
    args = parser.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter
    training, validation, _ = load_mnist(os.environ.get("NN_GPU_DATA"))
    if args.tuples:
        training, validation = tuple(training), tuple(validation)
    scoring = {"validation_data": validation} if args.evaluate else {}
    print(f"{SIZES}, {'CPU' if args.cpu_time else 'wall'} seconds per epoch, medians "
          f"({'tuples' if args.tuples else 'data sets'}"
          f"{', validation scored' if args.evaluate else ''})")
    print(f"{'batch':>6}{'one call per epoch':>20}{'inside one call':>17}{'ratio':>8}")
    for batch_size in args.batch_sizes:
        calls, inside = [], []
        for _ in range(args.rounds):
            calls += per_call(training, batch_size, args.epochs, clock, **scoring)
            inside += in_one_call(training, batch_size, args.epochs, clock, **scoring)
        a, b = statistics.median(calls), statistics.median(inside)
        print(f"{batch_size:>6}{a:>20.4f}{b:>17.4f}{a / b:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
