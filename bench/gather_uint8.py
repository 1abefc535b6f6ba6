"""The uint8 gather, measured: the compiled epoch reading MNIST's pixel codes
(uint8, converted in the gather) against the same epoch reading the float32
inputs, timed in turn, same network, same shuffles, one BLAS thread.

    NN_GPU_DATA=... python bench/gather_uint8.py [--repeats 5] [--cpu-time]
"""

import argparse
import os
import statistics
import time

from nn_gpu import Network
from nn_gpu.backends import NumpyBackend
from nn_gpu.benchmark import time_interleaved
from nn_gpu.mnist import load_mnist


class FloatGatherBackend(NumpyBackend):
    """The compiled epoch with the pixel codes turned off."""

    def compiled_epoch(self, plan):
        epoch = super().compiled_epoch(plan)
        epoch.inputs = lambda X: X
        return epoch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the process's CPU time, not the wall clock")
    args = parser.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter
    training, _, _ = load_mnist(os.environ.get("NN_GPU_DATA"))
    print(f"{'network':<14}{'batch':>6}{'uint8 s':>9}{'float32 s':>11}{'float/uint8':>13}")
    for sizes in ([784, 30, 10], [784, 100, 10]):
        for batch_size in (10, 100, 1000):
            runners = {name: Network(sizes, backend=backend(threads=1), seed=0)
                       .epoch_runner(training, batch_size, 3.0)
                       for name, backend in (("uint8", NumpyBackend),
                                             ("float32", FloatGatherBackend))}
            m = {k: statistics.median(v)
                 for k, v in time_interleaved(runners, args.repeats, clock).items()}
            print(f"{'-'.join(map(str, sizes)):<14}{batch_size:>6}{m['uint8']:>9.3f}"
                  f"{m['float32']:>11.3f}{m['float32'] / m['uint8']:>12.2f}x", flush=True)


if __name__ == "__main__":
    main()
