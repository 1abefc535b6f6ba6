"""The compiled epoch's gather, measured: the same epoch reading MNIST's pixel
codes (uint8, converted in the gather) or the float32 inputs, each with and
without prefetching the next rows (``CompiledEpoch.prefetch_rows``), timed in turn,
same network, same shuffles, one BLAS thread.

    NN_GPU_DATA=... python bench/gather.py [--repeats 5] [--cpu-time] [--batch-sizes 10 100]
"""

import argparse
import os
import statistics
import time

from nn_gpu import Network
from nn_gpu.backends import NumpyBackend
from nn_gpu.bench.timing import time_interleaved
from nn_gpu.data.mnist import load_mnist

#: Label -> (read the pixel codes?, prefetch?); the first is the default epoch.
VARIANTS = {"uint8+prefetch": (True, True), "uint8": (True, False),
            "float32+prefetch": (False, True), "float32": (False, False)}


class GatherBackend(NumpyBackend):
    """The compiled epoch with its pixel codes and its prefetching switched."""

    def __init__(self, codes, prefetch):
        super().__init__(threads=1)
        self.codes, self.prefetch = codes, prefetch

    def compiled_epoch(self, plan):
        epoch = super().compiled_epoch(plan)
        if not self.codes:
            epoch.inputs = lambda X: X
        if not self.prefetch:
            epoch.prefetch_rows = 0
        return epoch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the process's CPU time, not the wall clock")
    args = parser.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter
    training, _, _ = load_mnist(os.environ.get("NN_GPU_DATA"))
    print(f"{'network':<14}{'batch':>6}" + "".join(f"{label:>18}" for label in VARIANTS)
          + "  (s per epoch, medians)")
    for sizes in ([784, 30, 10], [784, 100, 10]):
        for batch_size in args.batch_sizes:
            runners = {label: Network(sizes, backend=GatherBackend(*switches), seed=0)
                       .epoch_runner(training, batch_size, 3.0)
                       for label, switches in VARIANTS.items()}
            seconds = time_interleaved(runners, args.repeats, clock)
            print(f"{'-'.join(map(str, sizes)):<14}{batch_size:>6}"
                  + "".join(f"{statistics.median(seconds[label]):>18.3f}" for label in VARIANTS),
                  flush=True)


if __name__ == "__main__":
    main()
