"""Which device trains a given network faster: a launch-count and FLOP model.

These are ESTIMATES, not measurements: no GPU run has checked them yet
(``docs/performance.md``, "GPU: not measured yet"). The first device run's table of
``scripts/gpu_check.sh`` is what should replace the model's constants, which
live in :mod:`.measured` with the rest of the backends' tuned numbers.

Per SGD step of a network with one FLOP count F (2·(multiply-adds) of the
forward pass, backprop and the weight update: 3 GEMMs' worth per layer):

* CPU (the compiled Numba epoch): CPU_STEP_S + F / CPU_FLOPS, fitted to the
  2-core Skylake-X figures of ``docs/log.md`` (2026-11-25: 12 µs per step
  at mini-batch 1, 0.1 s per epoch of [784, 30, 10] from mini-batch 10 on;
  the 2-vCPU EPYC of ``docs/performance.md`` takes 0.13-0.17 s);
* GPU, cuBLAS path: host-bound at small mini-batches, each of its
  kernel launches costing ~LAUNCH_S of Python and driver time, so
  max(launches · LAUNCH_S, F / GPU_GEMM_FLOPS);
* GPU, fused epoch over ``blocks`` thread blocks (1 by default):
  FUSED_STEP_S (its ~7 barriers, one of them grid-wide, and memory
  latencies) + F / (blocks · BLOCK_FLOPS).
"""

from . import measured


def step_flops(sizes, batch_size):
    """FLOPs of one step: forward, backprop and update are 3 GEMMs per layer."""
    weights = sum(n_in * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:]))
    return 3 * 2 * weights * batch_size


def launches_per_step(layers, momentum=False):
    """Kernel launches of one cuBLAS-path step (CupyBackend): per layer a
    forward GEMM and bias+activation kernel, a weight and a bias GEMM (and a
    momentum kernel and bias add); the output error; per hidden layer a
    backprop GEMM and f' kernel."""
    per_layer = 4 + (2 if momentum else 0)
    return layers * per_layer + 1 + 2 * (layers - 1)


def epoch_seconds(sizes, batch_size, train_size=50_000, fused=True, momentum=False, blocks=1):
    """{path: estimated seconds per epoch} for "cpu", "cublas" and, if
    ``fused``, "fused" (over ``blocks`` blocks)."""
    steps = -(-train_size // batch_size)
    flops = step_flops(sizes, batch_size)
    layers = len(sizes) - 1
    estimates = {
        "cpu": steps * (measured.CPU_STEP_S + flops / measured.CPU_FLOPS),
        "cublas": steps * max(launches_per_step(layers, momentum) * measured.LAUNCH_S,
                              flops / measured.GPU_GEMM_FLOPS),
    }
    if fused:
        estimates["fused"] = steps * (measured.FUSED_STEP_S
                                      + flops / (blocks * measured.BLOCK_FLOPS))
    return estimates
