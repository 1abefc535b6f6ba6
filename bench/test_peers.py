"""Optional: the same epoch written with other tools, for scale. Each peer is
skipped where it cannot run (PyTorch, JAX: not installed; they are never
dependencies of nn_gpu). The peers are in :mod:`nn_gpu.bench.peers`; Nielsen's own
``network.py`` runs here, from the checkout ``$NN_GPU_NIELSEN`` names.

Cases land in the same groups as ``test_epoch``'s, so the summary table puts
them next to nn_gpu's batched and per-example epochs. Every peer gets as many
threads as SciPy's BLAS has (what the compiled epoch may use).

    pip install jax torch      # either or both
    NN_GPU_NIELSEN=.../neural-networks-and-deep-learning/src/network.py \\
        python -m pytest bench/test_peers.py --benchmark-only
"""

import os
import random
import warnings

import numpy
import pytest

from nn_gpu.backends.cpu.threads import configured_threads
from nn_gpu.bench import peers
from nn_gpu.bench.timing import ETA, SEED, epoch_flops, group_name

SMALL, WIDE = [784, 30, 10], [784, 100, 10]
NIELSEN_ENV_VAR = "NN_GPU_NIELSEN"
CASES = [pytest.param(peer, sizes, mb, id=f"{peer.replace(' ', '-')}-{'x'.join(map(str, sizes))}-mb{mb}")
         for peer in peers.PEERS for sizes in (SMALL, WIDE) for mb in (10, 100, 1000)
         if not (peer == "torch autograd" and mb != 10)]


def record(benchmark, median_of, method, sizes, mini_batch_size, threads, train_size, run):
    benchmark.group = group_name(sizes, mini_batch_size)
    benchmark.extra_info.update({"method": method, "threads": threads, "dtype": "float32",
                                 "sizes": sizes, "mini_batch_size": mini_batch_size,
                                 "train_size": train_size,
                                 "epoch_flops": epoch_flops(sizes, mini_batch_size, train_size)})
    benchmark.pedantic(run, rounds=3, warmup_rounds=1, iterations=1)
    seconds = median_of(benchmark)
    if seconds:
        benchmark.extra_info["examples_per_second"] = train_size / seconds


@pytest.mark.parametrize("peer, sizes, mini_batch_size", CASES)
def test_peer(benchmark, mnist_training, median_of, peer, sizes, mini_batch_size):
    X, labels = mnist_training
    threads = configured_threads()
    try:
        run = peers.make(peer, X, labels, sizes, mini_batch_size, ETA, threads, SEED)
    except peers.PeerUnavailable as exc:
        pytest.skip(str(exc))
    record(benchmark, median_of, peer, sizes, mini_batch_size, threads, len(labels), run)


def nielsen_network(path):
    """The module namespace of Nielsen's Python 2 network.py, converted to
    Python 3 in memory (lib2to3); nothing of it is stored."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from lib2to3 import refactor
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    tool = refactor.RefactoringTool(refactor.get_fixers_from_package("lib2to3.fixes"))
    module = {"__name__": "nielsen_network"}
    exec(compile(str(tool.refactor_string(source + "\n", path)), path, "exec"), module)
    return module


def test_nielsen_network_py(benchmark, mnist_training, median_of):
    """Nielsen's network.py at mini-batch 10, [784, 30, 10]: its update_mini_batch
    on its own (x, y) column-vector pairs (float64), our loop doing what its
    SGD does per epoch (shuffle, slice) without the print. One timed epoch."""
    path = os.environ.get(NIELSEN_ENV_VAR)
    if not path or not os.path.isfile(path):
        pytest.skip(f"set ${NIELSEN_ENV_VAR} to Nielsen's src/network.py")
    X, labels = mnist_training
    numpy.random.seed(SEED)
    random.seed(SEED)
    net = nielsen_network(path)["Network"](SMALL)
    data = list(zip(X.astype(numpy.float64)[:, :, None], numpy.eye(10)[labels][:, :, None]))

    def epoch():
        random.shuffle(data)
        for start in range(0, len(data), 10):
            net.update_mini_batch(data[start:start + 10], ETA)

    benchmark.group = group_name(SMALL, 10)
    benchmark.extra_info.update({"method": "Nielsen's network.py", "dtype": "float64",
                                 "sizes": SMALL, "mini_batch_size": 10})
    benchmark.pedantic(epoch, rounds=1, warmup_rounds=0, iterations=1)
