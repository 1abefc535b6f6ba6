"""How fast one conv epoch is (``nn-gpu bench --conv``): nn_gpu's epoch per
mini-batch size, next to the floor its GEMMs set (:mod:`.conv_flops`: the
products the epoch does, at the best GEMM rate sampled between the epochs,
never above the fastest epoch, as :mod:`nn_gpu.bench.timing` does for the
MLP) and, with ``peers``, next to the same network in PyTorch on the same
device (:mod:`.conv_peers`), with what disturbed the measurement
(:mod:`.disturbance`)."""

import contextlib
import statistics
import time

from ..backends.cpu.threads import configured_threads
from ..convnet.network import ConvNetwork
from .conv_flops import conv_epoch_flops, conv_step_gemms, sparse_from
from .conv_peers import TorchConvEpoch
from .disturbance import Watch, worst
from .peers import PeerUnavailable, cpus_limited_to
from .timing import GemmRate, floor_of, plural, time_interleaved

PEER = "PyTorch"
SEED = 0


def conv_benchmark(training, layers, batch_sizes, backend, eta, l2=0.0, dtype="float32",
                   repeats=3, threads=None, peers=False, clock=time.perf_counter,
                   progress=None):
    """One row per mini-batch size: the median of ``repeats`` nn_gpu epochs
    over ``training`` (X, labels) after one warm-up, the epoch's GEMM FLOPs,
    rate (sampled before each round, timed by ``clock``, the best sample)
    and floor (:func:`~nn_gpu.bench.timing.floor_of`), and the
    ``disturbance`` its measurement saw; with ``peers``, PyTorch's epoch on
    the backend's device (CUDA for cupy; else ``threads`` CPU threads,
    default the BLAS's count, and on the CPU both sides run on that many
    cores, as :func:`~nn_gpu.bench.peers.compare_peers`'s), the two taken in
    turn. Returns (rows, {peer: why it did not run})."""
    say = progress or (lambda line: None)
    n = len(training[1])
    device = "cuda" if backend.name == "cupy" else "cpu"
    peer_threads = None if device == "cuda" else threads or configured_threads()
    cores = contextlib.nullcontext() if device == "cuda" else cpus_limited_to(peer_threads)
    with cores:
        rows, skipped = [], {}
        for batch_size in batch_sizes:
            sparse = sparse_from(backend)
            flops = conv_epoch_flops(layers, batch_size, n, sparse)
            with Watch() as watch:
                say(f"GEMM rate at mini-batch {batch_size} ...")
                rate = GemmRate(backend, conv_step_gemms(layers, batch_size, sparse), dtype,
                                clock=clock)
                net = ConvNetwork(layers, backend=backend, dtype=dtype, seed=SEED)
                runners = {"nn_gpu": net.epoch_runner(training, batch_size, eta, l2=l2)}
                if peers:
                    try:
                        runners[PEER] = TorchConvEpoch(layers, *training, batch_size, eta, l2,
                                                       peer_threads, device, SEED, dtype)
                    except PeerUnavailable as exc:
                        skipped[PEER] = str(exc)
                say(f"mini-batch {batch_size}: {', '.join(runners)} ...")
                seconds = time_interleaved(runners, repeats, clock, between=rate.sample)
            median = statistics.median(seconds["nn_gpu"])
            floor, clipped = floor_of(flops, rate.best, seconds["nn_gpu"])
            row = {"backend": backend.name, "method": "batched", "batch_size": batch_size,
                   "repeats": repeats, "warmup": 1, "seconds": seconds["nn_gpu"],
                   "median_seconds": median, "examples_per_second": n / median,
                   "epoch_flops": flops, "gemm_flops_per_second": rate.best,
                   "gemm_rate_samples": rate.rates, "floor_seconds": floor,
                   "floor_clipped": clipped, "times_floor": median / floor,
                   "disturbance": watch.report(seconds, peer_threads == 1).as_dict()}
            if PEER in runners:
                peer_median = statistics.median(seconds[PEER])
                row.update({"peer": runners[PEER].description, "peer_device": device,
                            "peer_threads": peer_threads, "peer_seconds": seconds[PEER],
                            "peer_median_seconds": peer_median,
                            "peer_times_nn_gpu": peer_median / median})
            rows.append(row)
    return rows, skipped


def floor_cell(row):
    """The "x floor" cell: the ratio, marked "!" where the floor was clipped."""
    return f"{row['times_floor']:.1f}{'!' if row.get('floor_clipped') else ''}"


def clipped_note(rows):
    """The note under a table with a clipped floor (none without one), each
    mini-batch size named once (the MLP table has a row per method)."""
    clipped = sorted({r["batch_size"] for r in rows if r.get("floor_clipped")})
    if not clipped:
        return []
    sizes = ", ".join(map(str, clipped))
    return [(f"! mini-batch {sizes}: an epoch ran faster than its GEMMs at the "
             "best rate sampled (the GEMM samples were slowed, or the epoch does less than "
             "counted); the floor is set to the fastest epoch")]


def disturbance_line(rows):
    """One line: whether the rest of the machine disturbed any row's measurement."""
    return worst(r["disturbance"] for r in rows if r.get("disturbance")).line()


def format_conv_table(rows, repeats):
    """The rows of :func:`conv_benchmark` as aligned text lines (as ``nn-gpu
    bench``'s table, with PyTorch's columns where it ran)."""
    peer = any("peer" in r for r in rows)
    columns = ["batch", "s/epoch", "examples/s", "GEMM GFLOP/s", "floor s", "x floor"]
    columns += [f"{PEER} s", f"{PEER}/nn_gpu"] if peer else []
    table = []
    for r in rows:
        cells = [str(r["batch_size"]), f"{r['median_seconds']:.3f}",
                 f"{r['examples_per_second']:,.0f}", f"{r['gemm_flops_per_second'] / 1e9:.1f}",
                 f"{r['floor_seconds']:.3f}", floor_cell(r)]
        if peer:
            cells += ([f"{r['peer_median_seconds']:.3f}", f"{r['peer_times_nn_gpu']:.2f}x"]
                      if "peer" in r else ["-", "-"])
        table.append(cells)
    widths = [max(len(c), *(len(cells[i]) for cells in table)) for i, c in enumerate(columns)]

    def line(cells):
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [line(columns)] + [line(cells) for cells in table]
    lines.append(disturbance_line(rows))
    in_turn = f", taken in turn with {PEER}'s" if peer else ""
    lines.append(f"s/epoch: median of {plural(repeats, 'epoch')} after 1 warm-up epoch"
                 f"{in_turn}; floor s: the epoch's GEMM FLOPs (im2col; backprop from the "
                 "pooled units where it runs so) / the best GEMM rate at their shapes sampled "
                 "between the epochs; x floor: s/epoch / floor s")
    lines += clipped_note(rows)
    if peer:
        lines.append(f"{PEER}: {next(r['peer'] for r in rows if 'peer' in r)}; the same "
                     f"network, initial parameters, η and λ; {PEER}/nn_gpu: its s/epoch / ours")
    return lines
