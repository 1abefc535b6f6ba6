"""Chapter 6's conv nets next to PyTorch CPU at both thread settings, in one run.

For each preset and mini-batch size, one epoch over the first
``--train-size`` MNIST images (default 5,000), float32, the preset's η and
λ, the same network and initial parameters on both sides
(:class:`nn_gpu.bench.conv_peers.TorchConvEpoch`). Each round times, in turn:

* ``nn_gpu`` and ``PyTorch`` at their default threads (nn_gpu: the conv
  layers' second thread offered a share while other processes leave a core
  spare, :func:`nn_gpu.convnet.kernels.helped`; PyTorch:
  ``torch.get_num_threads()`` as it starts) -- compared by wall time;
* both on one thread and one CPU (``NumpyBackend(threads=1)``,
  ``torch.set_num_threads(1)``, the process's affinity cut to one CPU for
  the epoch) -- compared by the process's CPU time.

Every epoch's wall and CPU seconds are kept; the ratios are PyTorch's
median over nn_gpu's, with the range of the per-round ratios. One warm-up
round first. ``--busy N`` keeps N cores busy with spinning processes
(:func:`nn_gpu.bench.busy.competing_processes`) for the whole run, and adds
nn_gpu's one-thread wall time, so that "default threads" can be held to
"one thread" where a core is taken. Each (preset, mini-batch) ends with the
one-line judgement of :mod:`nn_gpu.bench.disturbance`.

    NN_GPU_DATA=../shared/data/mnist python bench/conv_side_by_side.py \\
        [--presets ch6-conv1 ch6-conv2 ch6-relu] [--batch-sizes 10 100] [--repeats 3] [--busy 1]
"""

import argparse
import contextlib
import os
import statistics
import sys
import time

from nn_gpu.backends import NumpyBackend
from nn_gpu.bench.busy import competing_processes
from nn_gpu.bench.conv_peers import TorchConvEpoch
from nn_gpu.bench.disturbance import Watch
from nn_gpu.bench.peers import cpus_limited_to
from nn_gpu.bench.timing import plural
from nn_gpu.data.mnist import load_mnist
from nn_gpu.presets.convnet import build, get_conv_preset

SEED = 0


def torch_default_threads():
    """PyTorch's thread count as it started (read once: the one-thread
    runners set it to 1 for their epochs)."""
    import torch

    if not hasattr(torch_default_threads, "count"):
        torch_default_threads.count = torch.get_num_threads()
    return torch_default_threads.count


def runners(preset, training, batch_size, peers=True):
    """(label -> (function training one epoch, one thread?), PyTorch's
    default threads); PyTorch's epochs too with ``peers`` (without, PyTorch
    is neither imported nor built: the default threads are None)."""
    options = get_conv_preset(preset)["options"]
    eta, l2 = options["eta"], options["l2"]
    default = torch_default_threads() if peers else None
    made = {}
    for label, threads in (("default", None), ("1 thread", 1)):
        net = build(preset, backend=NumpyBackend(threads=threads), seed=SEED)
        made[f"nn_gpu {label}"] = (net.epoch_runner(training, batch_size, eta, l2=l2),
                                   threads == 1)
        if peers:
            made[f"PyTorch {label}"] = (torch_epoch(net.layers, training, batch_size, eta, l2,
                                                    threads or default), threads == 1)
    return made, default


def torch_epoch(layers, training, batch_size, eta, l2, threads):
    """A function training one PyTorch epoch of ``layers`` on ``threads`` threads."""
    import torch

    run = TorchConvEpoch(layers, *training, batch_size, eta, l2, threads, seed=SEED)

    def epoch():
        torch.set_num_threads(threads)
        run()

    return epoch


def timed(run, one_cpu):
    """(wall, CPU) seconds of one call, on one CPU where asked."""
    with cpus_limited_to(1) if one_cpu else contextlib.nullcontext():
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        return time.perf_counter() - wall, time.process_time() - cpu


def ratio(theirs, ours):
    """'median x (lowest-highest per round)'."""
    rounds = [t / o for t, o in zip(theirs, ours)]
    return (f"{statistics.median(theirs) / statistics.median(ours):.2f}x "
            f"({min(rounds):.2f}-{max(rounds):.2f})")


def measure(preset, training, batch_size, repeats, peers=True):
    made, default = runners(preset, training, batch_size, peers)
    seconds = {label: ([], []) for label in made}
    with Watch() as watch:
        for round_ in range(repeats + 1):
            for label, (run, one) in made.items():
                wall, cpu = timed(run, one)
                if round_:
                    seconds[label][0].append(wall)
                    seconds[label][1].append(cpu)
    wall = {label: s[0] for label, s in seconds.items()}
    cpu = {label: s[1] for label, s in seconds.items()}
    return wall, cpu, default, watch.report(wall, one_thread=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["ch6-conv1", "ch6-conv2", "ch6-relu"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=5000)
    parser.add_argument("--busy", type=int, default=0, help="cores kept busy by spinners")
    parser.add_argument("--without-pytorch", action="store_true",
                        help="nn_gpu's two settings only (the busy-machine check)")
    args = parser.parse_args()
    (X, labels), _, _ = load_mnist(os.environ.get("NN_GPU_DATA"))
    training = (X[:args.train_size], labels[:args.train_size])
    median = statistics.median
    if not args.without_pytorch:
        torch_default_threads()
    print(f"# {args.train_size} images, median of {plural(args.repeats, 'round')} after 1 "
          f"warm-up, {plural(args.busy, 'core')} kept busy; default threads: wall s, one "
          "thread: CPU s")
    print("| preset | mb | nn_gpu s | PyTorch s | PyTorch/nn_gpu | nn_gpu 1-thread CPU s | "
          "PyTorch 1-thread CPU s | PyTorch/nn_gpu, 1 thread | nn_gpu 1-thread wall s |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    with competing_processes(args.busy) if args.busy else contextlib.nullcontext():
        for preset in args.presets:
            for batch_size in args.batch_sizes:
                wall, cpu, default, disturbance = measure(preset, training, batch_size,
                                                          args.repeats, not args.without_pytorch)
                if args.without_pytorch:
                    print(f"| {preset} | {batch_size} | {median(wall['nn_gpu default']):.3f} | "
                          f"- | - | {median(cpu['nn_gpu 1 thread']):.3f} | - | - | "
                          f"{median(wall['nn_gpu 1 thread']):.3f} |")
                    print(f"<!-- {disturbance.line()} -->", flush=True)
                    continue
                print(f"| {preset} | {batch_size} | {median(wall['nn_gpu default']):.3f} | "
                      f"{median(wall['PyTorch default']):.3f} | "
                      f"{ratio(wall['PyTorch default'], wall['nn_gpu default'])} | "
                      f"{median(cpu['nn_gpu 1 thread']):.3f} | "
                      f"{median(cpu['PyTorch 1 thread']):.3f} | "
                      f"{ratio(cpu['PyTorch 1 thread'], cpu['nn_gpu 1 thread'])} | "
                      f"{median(wall['nn_gpu 1 thread']):.3f} |", flush=True)
                print(f"<!-- {preset} mb {batch_size}: PyTorch default "
                      f"{plural(default, 'thread')}; "
                      f"{disturbance.line()} -->", flush=True)
    print(f"# {sys.argv[0]} done", flush=True)


if __name__ == "__main__":
    main()
