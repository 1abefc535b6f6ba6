"""The issue's ratios in one run: nn_gpu's batched epoch against its per-example
method, Nielsen's network.py, PyTorch and JAX, each epoch timed in turn.

    NN_GPU_DATA=... [NN_GPU_NIELSEN=.../src/network.py] \\
        python bench/peers_side_by_side.py [--threads 1] [--repeats 3]

Nielsen's network.py and the per-example method run at mini-batch 10 on
[784, 30, 10] only (they take seconds per epoch); everything else at
mini-batch 10, 100 and 1000 on [784, 30, 10] and [784, 100, 10].
"""

import argparse
import os
import random
import sys
import time

import numpy

from nn_gpu import Network
from nn_gpu.bench.peers import PeerUnavailable, compare_peers, format_peer_table
from nn_gpu.data.mnist import load_mnist

sys.path.insert(0, os.path.dirname(__file__))
from test_peers import NIELSEN_ENV_VAR, nielsen_network  # noqa: E402

ETA, SEED = 3.0, 0


def nielsen(training, sizes):
    def make(batch_size):
        path = os.environ.get(NIELSEN_ENV_VAR)
        if not path:
            raise PeerUnavailable(f"set ${NIELSEN_ENV_VAR}")
        X, labels = training
        numpy.random.seed(SEED)
        random.seed(SEED)
        net = nielsen_network(path)["Network"](sizes)
        data = list(zip(X.astype(numpy.float64)[:, :, None],
                        numpy.eye(sizes[-1])[labels][:, :, None]))

        def epoch():
            random.shuffle(data)
            for start in range(0, len(data), batch_size):
                net.update_mini_batch(data[start:start + batch_size], ETA)
        return epoch
    return make


def per_example(training, sizes):
    return lambda batch_size: Network(sizes, backend="numpy", seed=SEED).epoch_runner(
        training, batch_size, ETA, "per_example")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--networks", default="784,30,10 784,100,10")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time by the process's CPU time, not the wall clock")
    parser.add_argument("--slow", action="store_true",
                        help="also Nielsen's network.py and the per-example method (mb 10, 784-30-10)")
    args = parser.parse_args()
    training, _, _ = load_mnist(os.environ.get("NN_GPU_DATA"))
    clock = time.process_time if args.cpu_time else time.perf_counter
    say = lambda line: print(f"  {line}", file=sys.stderr, flush=True)  # noqa: E731
    for text in args.networks.split():
        sizes = [int(n) for n in text.split(",")]
        slow = args.slow and sizes == [784, 30, 10]
        for batch_size in args.batch_sizes:
            extra = ({"per_example": per_example(training, sizes),
                      "nielsen": nielsen(training, sizes)} if slow and batch_size == 10 else {})
            rows, missing = compare_peers(training, sizes, [batch_size], args.threads,
                                          args.repeats, ETA, SEED, extra, clock, say)
            print(f"# {sizes}, mini-batch {batch_size}, threads {args.threads or 'chosen'}, "
                  f"{'CPU' if args.cpu_time else 'wall'} time")
            print("\n".join(format_peer_table(rows)), flush=True)
            for name, why in missing.items():
                print(f"# {name} skipped: {why}")


if __name__ == "__main__":
    main()
