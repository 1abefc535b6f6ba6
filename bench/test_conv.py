"""A chapter-6 network (``$NN_GPU_CONV_BENCH_PRESET``, default ch6-conv1:
20 5x5 filters, 2x2 max-pooling, 100 sigmoid, softmax), trained for a fixed
number of examples: nn_gpu's batched conv layers next to PyTorch
(``torch.nn.Conv2d``, ``MaxPool2d``, ``Linear``, autograd, ``optim.SGD``:
:class:`nn_gpu.bench.conv_peers.TorchConvEpoch`) on the same network, float32,
same threads, the preset's η and λ, with the GEMM FLOP floor.

    NN_GPU_DATA=../shared/data/mnist python -m pytest bench/test_conv.py --benchmark-only
    NN_GPU_CONV_BENCH_PRESET=ch6-conv2 NN_GPU_DATA=... python -m pytest bench/test_conv.py ...

Each case trains on the first ``$NN_GPU_CONV_BENCH_EXAMPLES`` training
images (default 5,000, a tenth of an epoch, to keep this to minutes on a
2-core CPU; set 50000 for whole epochs) in shuffled mini-batches: 1 warm-up
round, 3 timed. ``extra_info`` holds the GEMM FLOPs (``flops``), the GEMM
rate at the step's shapes and the floor they imply (``floor_seconds``), the
rate timed with the benchmark's own timer: on a shared machine run with
``--benchmark-timer time.process_time`` and one BLAS thread
(``OPENBLAS_NUM_THREADS=1``) to count CPU seconds, not the neighbours' load.
The PyTorch cases are skipped where torch is not installed. (``nn-gpu bench
--conv PRESET --peers`` takes the same measurement from the command line.)
"""

import os

import pytest

from nn_gpu.bench.conv_flops import conv_epoch_flops, conv_step_gemms, sparse_from
from nn_gpu.bench.timing import environment, floor_of, measure_gemm_rate
from nn_gpu.presets.convnet import build, get_conv_preset

PRESET = os.environ.get("NN_GPU_CONV_BENCH_PRESET", "ch6-conv1")
ETA, L2 = (get_conv_preset(PRESET)["options"][key] for key in ("eta", "l2"))
BATCH_SIZES = [10, 100]
SEED = 0


@pytest.fixture
def timer(request):
    """The clock pytest-benchmark times with (--benchmark-timer)."""
    from pytest_benchmark.utils import load_timer

    return load_timer(str(request.config.getoption("benchmark_timer"))).target


@pytest.fixture(scope="module")
def examples(mnist_training):
    n = int(os.environ.get("NN_GPU_CONV_BENCH_EXAMPLES", "5000"))
    X, labels = mnist_training
    return X[:n], labels[:n]


def describe(benchmark, backend, median_of, timer, layers, mini_batch_size, n, who):
    """Group, FLOPs and floor of one case (the floor from ``backend``'s best
    GEMM rate at the products nn_gpu's epoch does on it, never above the
    fastest round: :func:`nn_gpu.bench.timing.floor_of`)."""
    sparse = sparse_from(backend)
    flops = conv_epoch_flops(layers, mini_batch_size, n, sparse)
    rate = measure_gemm_rate(backend, conv_step_gemms(layers, mini_batch_size, sparse),
                             clock=timer)
    benchmark.group = f"{PRESET} mb{mini_batch_size} ({n} examples)"
    benchmark.extra_info.update({"who": who, "preset": PRESET, "mini_batch_size": mini_batch_size,
                                 "examples": n, "flops": flops, "gemm_flops_per_second": rate,
                                 "floor_seconds": flops / rate})
    seconds = median_of(benchmark)
    if seconds:
        floor, clipped = floor_of(flops, rate, list(benchmark.stats.stats.data))
        benchmark.extra_info.update({"examples_per_second": n / seconds, "floor_seconds": floor,
                                     "floor_clipped": clipped, "x_floor": seconds / floor})


@pytest.mark.parametrize("mini_batch_size", BATCH_SIZES)
def test_nn_gpu_conv(benchmark, backend, examples, median_of, timer, mini_batch_size):
    net = build(PRESET, backend=backend, seed=SEED)
    run = net.epoch_runner(examples, mini_batch_size, ETA, l2=L2)
    benchmark.extra_info.update(environment(backend))
    benchmark.pedantic(run, rounds=3, warmup_rounds=1, iterations=1)
    describe(benchmark, backend, median_of, timer, net.layers, mini_batch_size, len(examples[1]),
             f"nn_gpu {backend.name}")


@pytest.mark.parametrize("mini_batch_size", BATCH_SIZES)
def test_torch_conv(benchmark, examples, median_of, timer, mini_batch_size):
    torch = pytest.importorskip("torch")
    from threadpoolctl import threadpool_info

    from nn_gpu.backends import get_backend
    from nn_gpu.bench.conv_peers import TorchConvEpoch

    threads = max([i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
                  or [1])
    previous = torch.get_num_threads()
    layers = build(PRESET, backend="numpy").layers
    run = TorchConvEpoch(layers, *examples, mini_batch_size, ETA, L2, threads, seed=SEED)
    try:
        benchmark.pedantic(run, rounds=3, warmup_rounds=1, iterations=1)
    finally:
        torch.set_num_threads(previous)
    benchmark.extra_info.update({"backend": run.description, "torch_threads": threads})
    describe(benchmark, get_backend("numpy"), median_of, timer, layers, mini_batch_size,
             len(examples[1]), "PyTorch CPU")
