"""Optional GPU benchmarks: nn_gpu's fused epoch and cuBLAS path beside
PyTorch CUDA (eager, and the step in a CUDA graph) and JAX (the epoch one
``lax.scan``), each skipped with its reason where it cannot run (no GPU, no
PyTorch or JAX). The epochs are those of bench/gpu_peers.py on synthetic data
of MNIST's shapes; scripts/gpu_check.sh prints the same comparison as one table.

    python -m pytest bench/test_gpu_peers.py --benchmark-only
"""

import gpu_peers
import pytest

from nn_gpu.bench.timing import epoch_flops, group_name

TRAIN_SIZE = 50_000
GPU_PEERS = [peer for peer in gpu_peers.PEERS if peer != "nn_gpu_cpu"]


@pytest.fixture(scope="module")
def data():
    return {}


@pytest.mark.gpu
@pytest.mark.parametrize("batch", [10, 100, 1000])
@pytest.mark.parametrize("sizes", [[784, 30, 10], [784, 100, 10]], ids=["30", "100"])
@pytest.mark.parametrize("peer", GPU_PEERS)
def test_gpu_epoch(benchmark, median_of, data, peer, sizes, batch):
    key = tuple(sizes)
    if key not in data:
        data.clear()
        data[key] = gpu_peers.synthetic_data(TRAIN_SIZE, sizes)
    try:
        gpu_peers.check(peer)
        run = gpu_peers.make(peer, sizes, batch, *data[key])
    except gpu_peers.Unavailable as exc:
        pytest.skip(str(exc))
    benchmark.group = group_name(sizes, batch)
    benchmark.extra_info.update({"method": peer, "sizes": sizes, "mini_batch_size": batch,
                                 "dtype": "float32", "train_size": TRAIN_SIZE,
                                 "epoch_flops": epoch_flops(sizes, batch, TRAIN_SIZE)})
    benchmark.pedantic(run, rounds=3, warmup_rounds=1, iterations=1)
    seconds = median_of(benchmark)
    if seconds:
        benchmark.extra_info["examples_per_second"] = TRAIN_SIZE / seconds
