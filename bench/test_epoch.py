"""One SGD epoch over the 50,000 MNIST training examples, timed whole.

Each case times ``Network.epoch_runner(...)()``: shuffle, every mini-batch
step, and a device synchronisation, exactly what ``train`` runs per epoch.

What runs (chosen to keep ``pytest bench --benchmark-only`` to a few minutes
on a 2-core CPU):

* batched, float32: [784, 30, 10] and [784, 100, 10] at mini-batch 1, 10,
  32, 100, 1000 -- 1 warm-up epoch + 3 timed;
* batched, float64: both networks at mini-batch 10 and 100 -- 1 + 3;
* per_example (the book's loop, ~2 s an epoch on a CPU), float32:
  [784, 30, 10] at mini-batch 1, 10, 32, 100, 1000 -- 1 timed epoch, no
  warm-up (it has no first-epoch costs and is slow).

Each runs on every backend (CuPy skipped without a GPU). Cases are grouped by
network and mini-batch size, so ``--benchmark-compare`` and the summary table
put the methods and dtypes side by side.
"""

import pytest

from nn_gpu import Network
from nn_gpu.bench.timing import ETA, SEED, environment, epoch_flops, group_name

SMALL, WIDE = [784, 30, 10], [784, 100, 10]
BATCH_SIZES = [1, 10, 32, 100, 1000]
BATCHED_ROUNDS = 3
PER_EXAMPLE_ROUNDS = 1


def case(method, sizes, mini_batch_size, dtype="float32"):
    return pytest.param(method, sizes, mini_batch_size, dtype,
                        id=f"{method}-{'x'.join(map(str, sizes))}-mb{mini_batch_size}-{dtype}")


CASES = (
    [case("batched", sizes, mb) for sizes in (SMALL, WIDE) for mb in BATCH_SIZES]
    + [case("batched", sizes, mb, "float64") for sizes in (SMALL, WIDE) for mb in (10, 100)]
    + [case("per_example", SMALL, mb) for mb in BATCH_SIZES]
)


@pytest.mark.parametrize("method, sizes, mini_batch_size, dtype", CASES)
def test_epoch(benchmark, backend, mnist_training, median_of, method, sizes, mini_batch_size,
               dtype):
    train_size = len(mnist_training[1])
    net = Network(sizes, backend=backend, dtype=dtype, seed=SEED)
    run_epoch = net.epoch_runner(mnist_training, mini_batch_size, ETA, method)
    flops = epoch_flops(sizes, mini_batch_size, train_size)
    benchmark.group = group_name(sizes, mini_batch_size)
    benchmark.extra_info.update(environment(backend), dtype=dtype)
    benchmark.extra_info.update({"method": method, "sizes": sizes,
                                 "mini_batch_size": mini_batch_size,
                                 "train_size": train_size, "epoch_flops": flops})
    if method == "per_example":
        benchmark.pedantic(run_epoch, rounds=PER_EXAMPLE_ROUNDS, warmup_rounds=0, iterations=1)
    else:
        benchmark.pedantic(run_epoch, rounds=BATCHED_ROUNDS, warmup_rounds=1, iterations=1)
    seconds = median_of(benchmark)
    if seconds:
        benchmark.extra_info["examples_per_second"] = train_size / seconds
        benchmark.extra_info["achieved_gflops"] = flops / seconds / 1e9
