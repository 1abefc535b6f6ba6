"""The compiled epoch of another version against this one, in one process.

On a shared machine two runs minutes apart differ by up to 25%, more than a
small change to the epoch is worth. This loads another version's
``nn_gpu/backends/cpu/epoch.py`` (e.g. exported with ``git show
REV:nn_gpu/backends/cpu/epoch.py > /tmp/before.py``) as a second module next
to this tree's and times the two epochs in turn, same network, same
shuffles, one BLAS thread. The other file's relative imports resolve to this
tree's modules: it suits changes confined to cpu_epoch.py and to modules
only this tree adds.

    NN_GPU_DATA=... python bench/epoch_ab.py /tmp/before.py [--repeats 11] [--cpu-time]
"""

import argparse
import importlib.util
import os
import statistics
import sys
import time

from nn_gpu import Network
from nn_gpu.backends import NumpyBackend
from nn_gpu.bench.timing import time_interleaved
from nn_gpu.data.mnist import load_mnist


def load_epoch_module(path):
    """``path`` as the module nn_gpu.backends.cpu.epoch_before."""
    spec = importlib.util.spec_from_file_location("nn_gpu.backends.cpu.epoch_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class OtherEpochBackend(NumpyBackend):
    """The NumPy backend with another version's compiled epoch."""

    def __init__(self, module):
        super().__init__(threads=1)
        self.module = module

    def compiled_epoch(self, plan):
        return self.module.CompiledEpoch(plan, plan.error_form == "quadratic", self.threads,
                                         self.small_gemm)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="another version's nn_gpu/backends/cpu/epoch.py")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the process's CPU time, not the wall clock")
    args = parser.parse_args()
    if not os.path.isfile(args.before):
        sys.exit(f"epoch_ab: no such file: {args.before}")
    before = load_epoch_module(args.before)
    clock = time.process_time if args.cpu_time else time.perf_counter
    training, _, _ = load_mnist(os.environ.get("NN_GPU_DATA"))
    print(f"{'network':<14}{'batch':>6}{'before s':>10}{'this s':>9}{'this/before':>13}")
    for sizes in ([784, 30, 10], [784, 100, 10]):
        for batch_size in args.batch_sizes:
            runners = {name: Network(sizes, backend=backend, seed=0)
                       .epoch_runner(training, batch_size, 3.0)
                       for name, backend in (("before", OtherEpochBackend(before)),
                                             ("this", NumpyBackend(threads=1)))}
            m = {k: statistics.median(v)
                 for k, v in time_interleaved(runners, args.repeats, clock).items()}
            print(f"{'-'.join(map(str, sizes)):<14}{batch_size:>6}{m['before']:>10.3f}"
                  f"{m['this']:>9.3f}{m['this'] / m['before']:>12.2f}x", flush=True)
    print(f"medians of {args.repeats}, in turn, one BLAS thread, "
          f"{'CPU' if args.cpu_time else 'wall'} time; 50,000 images, float32")


if __name__ == "__main__":
    main()
