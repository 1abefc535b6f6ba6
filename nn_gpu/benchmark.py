"""``nn-gpu bench``: how fast one training epoch is, and how far from the BLAS.

For each method (``batched``, ``per_example``) and mini-batch size it times
whole SGD epochs on MNIST through :meth:`Network.epoch_runner` (the same code
``train`` runs, synchronised with the device), and puts the time next to a
floor: the FLOPs of the batched algorithm's GEMMs in one epoch divided by the
GEMM rate the backend's BLAS reaches at exactly those matrix shapes. The ratio
says how much of an epoch is arithmetic and how much is everything else
(Python, elementwise passes, gathers, launch latency).

The FLOP counting and GEMM timing here are plain functions, shared with the
pytest-benchmark suites in ``bench/``. Nothing here imports pytest; matplotlib
(``--plot``) is imported only when asked for.

    nn-gpu bench                                  # ~1-3 minutes on a laptop CPU
    nn-gpu bench --batch-sizes 10 100 --methods batched --json bench.json
    python -m nn_gpu.benchmark --plot epochs.png  # the same, before cli.py knows `bench`
"""

import contextlib
import datetime
import math
import platform
import statistics
import sys
import time
from dataclasses import dataclass

import numpy

from . import __version__
from . import cli, plots  # cli.py imports this module inside build_parser(), not at its top
from .backends import BACKEND_NAMES, get_backend
from .fileio import atomic_write
from .mnist import DATA_ENV_VAR, load_mnist, resolve_data_dir
from .network import DTYPES, METHODS, Network

BENCH_FORMAT = "nn_gpu.bench"
BENCH_VERSION = 1
DEFAULT_SIZES = [784, 30, 10]
DEFAULT_BATCH_SIZES = [1, 10, 32, 100, 1000]
DEFAULT_METHODS = ["batched", "per_example"]
ETA = 3.0  # the book's learning rate; the time of an epoch does not depend on it
SEED = 0
GEMM_SAMPLES = 3  # GEMM timings are cheap: always the median of three


# ------------------------------------------------------------- FLOP counting
@dataclass(frozen=True)
class Gemm:
    """One matrix product C (M x N) = A (M x K) @ B (K x N) of a training step.

    ``layout`` says how the core stores the operands: ``"N"`` as written,
    ``"T"`` as the transpose of a stored (K x M) or (N x K) array, e.g.
    ``"NT"`` is ``a_in @ w.T`` with ``w`` of shape (n_out, n_in).
    """

    name: str
    M: int
    K: int
    N: int
    layout: str = "NN"

    @property
    def flops(self):
        return 2 * self.M * self.K * self.N


def step_gemms(sizes, m):
    """The GEMMs of one batched SGD step on ``m`` rows, for layer widths ``sizes``.

    Per layer l (n_in -> n_out): the forward product (m, n_in) @ (n_in, n_out)
    and the weight gradient (n_out, m) @ (m, n_in); for every layer after the
    first, the error backpropagated into it, (m, n_out) @ (n_out, n_in).
    """
    layers = list(zip(sizes[:-1], sizes[1:]))
    gemms = [Gemm(f"forward {l + 1}", m, n_in, n_out, "NT")
             for l, (n_in, n_out) in enumerate(layers)]
    gemms += [Gemm(f"backprop {l + 1}", m, n_out, n_in, "NN")
              for l, (n_in, n_out) in reversed(list(enumerate(layers))) if l > 0]
    gemms += [Gemm(f"weight gradient {l + 1}", n_out, m, n_in, "TN")
              for l, (n_in, n_out) in enumerate(layers)]
    return gemms


def step_flops(sizes, m):
    """FLOPs of one batched SGD step on ``m`` rows: its GEMMs, 2*M*K*N each
    (the elementwise work is O(m * sum(sizes)) and not counted)."""
    return sum(g.flops for g in step_gemms(sizes, m))


def epoch_flops(sizes, mini_batch_size, train_size):
    """FLOPs of one batched epoch over ``train_size`` examples in mini-batches
    of ``mini_batch_size`` (the last one possibly smaller, as in training)."""
    full, rest = divmod(train_size, mini_batch_size)
    return full * step_flops(sizes, mini_batch_size) + (step_flops(sizes, rest) if rest else 0)


# ---------------------------------------------------------------- GEMM rate
def gemm_workload(backend, gemms, dtype="float32", seed=SEED):
    """``(run, flops)``: ``run(times=1)`` computes every product in ``gemms``
    ``times`` times into preallocated outputs, then synchronises the device;
    ``flops`` is the work of one pass over ``gemms``."""
    xp = backend.xp
    rng = numpy.random.default_rng(seed)

    def operand(rows, cols, transposed):
        shape = (cols, rows) if transposed else (rows, cols)
        array = backend.asarray(rng.random(shape), dtype)
        return array.T if transposed else array

    products = []
    for g in gemms:
        a = operand(g.M, g.K, g.layout[0] == "T")
        b = operand(g.K, g.N, g.layout[1] == "T")
        products.append((a, b, backend.empty((g.M, g.N), dtype)))
    matmul = xp.matmul

    def run(times=1):
        for _ in range(times):
            for a, b, out in products:
                matmul(a, b, out=out)
        backend.synchronize()

    return run, sum(g.flops for g in gemms)


def measure_gemm_rate(backend, gemms, dtype="float32", samples=GEMM_SAMPLES, min_seconds=0.02):
    """Median FLOP/s over ``samples`` timings of the products in ``gemms``,
    each timing repeating them often enough to last ``min_seconds``."""
    run, flops = gemm_workload(backend, gemms, dtype)
    run()  # warm-up: first-call costs, device kernels
    times = 1
    while True:
        started = time.perf_counter()
        run(times)
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds or times >= 1 << 20:
            break
        times *= 2 if elapsed <= 0 else max(2, min(16, math.ceil(min_seconds / elapsed)))
    seconds = [elapsed]
    for _ in range(samples - 1):
        started = time.perf_counter()
        run(times)
        seconds.append(time.perf_counter() - started)
    return flops * times / statistics.median(seconds)


# ------------------------------------------------------------- epoch timing
def time_epochs(run_epoch, repeats, warmup=1, clock=time.perf_counter):
    """Seconds of each of ``repeats`` calls of ``run_epoch`` after ``warmup``
    untimed ones, by ``clock`` (wall time; ``time.process_time``: the CPU time
    of the process, all threads, which a machine shared with other processes
    inflates less)."""
    for _ in range(warmup):
        run_epoch()
    seconds = []
    for _ in range(repeats):
        started = clock()
        run_epoch()
        seconds.append(clock() - started)
    return seconds


def time_interleaved(runners, repeats, clock=time.perf_counter):
    """label -> seconds (by ``clock``) of ``repeats`` calls of each runner,
    after one warm-up call each, taken in turn (one of each, then again), so
    that a change in the machine's load hits every runner alike."""
    for run in runners.values():
        run()
    seconds = {label: [] for label in runners}
    for _ in range(repeats):
        for label, run in runners.items():
            seconds[label] += time_epochs(run, 1, 0, clock)
    return seconds


def run_benchmark(training, sizes, batch_sizes, methods, backend, dtype="float32", repeats=3,
                  progress=None):
    """Measure every (mini-batch size, method); return one result dict per pair.

    ``training`` is ``(X, labels)``. ``batched`` is timed ``repeats`` times
    after a warm-up epoch; ``per_example`` once, without warm-up (it is slow
    and has no first-epoch costs). ``progress(line)`` hears what is measured.
    """
    say = progress or (lambda line: None)
    train_size = len(training[1])
    results = []
    for batch_size in batch_sizes:
        flops = epoch_flops(sizes, batch_size, train_size)
        say(f"GEMM rate at mini-batch {batch_size} ...")
        rate = measure_gemm_rate(backend, step_gemms(sizes, batch_size), dtype)
        floor = flops / rate
        per_example_seconds = None
        for method in sorted(methods, key=lambda m: m != "per_example"):
            say(f"{method}, mini-batch {batch_size} ...")
            net = Network(sizes, backend=backend, dtype=dtype, seed=SEED)
            run_epoch = net.epoch_runner(training, batch_size, ETA, method)
            slow = method == "per_example"
            count, warmup = (1, 0) if slow else (repeats, 1)
            seconds = time_epochs(run_epoch, count, warmup)
            median = statistics.median(seconds)
            if slow:
                per_example_seconds = median
            results.append({
                "backend": backend.name, "method": method, "batch_size": batch_size,
                "repeats": count, "warmup": warmup,
                "seconds": seconds, "median_seconds": median,
                "examples_per_second": train_size / median,
                "speedup_vs_per_example": None, "epoch_flops": flops,
                "gemm_flops_per_second": rate, "floor_seconds": floor,
                "times_floor": median / floor,
            })
        if per_example_seconds is not None:
            for result in results:
                if result["batch_size"] == batch_size and result["method"] != "per_example":
                    result["speedup_vs_per_example"] = per_example_seconds / result["median_seconds"]
    order = {m: i for i, m in enumerate(methods)}
    return sorted(results, key=lambda r: (r["batch_size"], order[r["method"]]))


# ---------------------------------------------------------------- reporting
def environment(backend):
    return {
        "nn_gpu": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
        "backend": backend.describe(), "blas": cli.blas_description(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def group_name(sizes, mini_batch_size):
    """The pytest-benchmark group of an epoch at this network and mini-batch
    size; the padding sorts the groups by size (1, 10, 32, 100, 1000)."""
    return f"{'-'.join(map(str, sizes))} mb={mini_batch_size:>4}"


def header_line(env, config):
    return (f"nn-gpu bench: {env['backend']}; BLAS {env['blas']}; {config['dtype']}; "
            f"sizes {config['sizes']}; train size {config['train_size']}; {env['date']}")


def format_table(results, repeats):
    """The results as aligned text lines (without the header line)."""
    columns = ["method", "batch", "s/epoch", "examples/s", "speed-up", "GEMM GFLOP/s",
               "floor s", "x floor"]
    rows = []
    for r in results:
        marker = "*" if r["method"] == "per_example" else " "
        speedup = r["speedup_vs_per_example"]
        rows.append([
            r["method"], str(r["batch_size"]), f"{r['median_seconds']:.3f}{marker}",
            f"{r['examples_per_second']:,.0f}",
            "-" if speedup is None else f"{speedup:.1f}x",
            f"{r['gemm_flops_per_second'] / 1e9:.1f}", f"{r['floor_seconds']:.3f}",
            f"{r['times_floor']:.1f}",
        ])
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]

    def line(cells):
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [line(columns)] + [line(row) for row in rows]
    notes = []
    if any(r["method"] != "per_example" for r in results):
        notes.append(f"batched: median of {repeats} epoch{'s' if repeats != 1 else ''} "
                     "after 1 warm-up epoch")
    if any(r["method"] == "per_example" for r in results):
        notes.append("* per_example: a single epoch, no warm-up (it is slow)")
    lines.append("s/epoch: " + "; ".join(notes))
    lines.append("speed-up: per_example s/epoch / batched s/epoch at the same mini-batch; "
                 "floor s: the epoch's GEMM FLOPs (batched algorithm) / the GEMM rate at "
                 "its shapes; x floor: s/epoch / floor s")
    return lines


def save_plot(path, results, title):
    """Epoch seconds against mini-batch size, log-log, one line per method,
    plus the GEMM floor; written atomically as PNG."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator

    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.add_subplot()
    batch_sizes = sorted({r["batch_size"] for r in results})
    for method, style in (("per_example", "s-"), ("batched", "o-")):
        points = sorted((r["batch_size"], r["median_seconds"], r["backend"])
                        for r in results if r["method"] == method)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], style,
                    label=f"{method} ({points[0][2]})")
    floors = {r["batch_size"]: r["floor_seconds"] for r in results}
    ax.plot(batch_sizes, [floors[b] for b in batch_sizes], "k--", linewidth=1,
            label="GEMM floor (epoch FLOPs / GEMM rate)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(batch_sizes, [str(b) for b in batch_sizes])
    ax.set_xticks([], minor=True)
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_locator(LogLocator(subs=(2, 5)))
    ax.yaxis.set_minor_formatter(plain)
    ax.set_xlabel("mini-batch size")
    ax.set_ylabel("seconds per epoch")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)


# ------------------------------------------------------------ the command
def blas_thread_limit(threads):
    """A context that limits the host BLAS to ``threads`` threads (None: leave it)."""
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise cli.CliError("--blas-threads needs threadpoolctl: pip install threadpoolctl") from None
    return threadpool_limits(limits=threads, user_api="blas")


def cmd_bench(args):
    """Time training epochs per method and mini-batch size; print the table."""
    parser = args.parser
    if len(args.sizes) < 2:
        parser.error("--sizes needs at least two layers (input and output)")
    cli.check_mnist_sizes(args.sizes, "--sizes", parser)
    too_big = [b for b in args.batch_sizes if b > args.train_size]
    if too_big:
        parser.error(f"--batch-sizes {too_big[0]} is larger than the training set "
                     f"({args.train_size} examples)")
    batch_sizes = sorted(set(args.batch_sizes))
    methods = list(dict.fromkeys(args.methods))
    cli.check_output_path(args.json, "--json")
    cli.check_output_path(args.plot, "--plot")
    if args.plot:
        plots.require_matplotlib()
    backend = get_backend(args.backend)
    progress = (lambda line: print(f"  {line}", file=sys.stderr, flush=True))

    config = {"sizes": args.sizes, "batch_sizes": batch_sizes, "methods": methods,
              "dtype": args.dtype, "repeats": args.repeats, "train_size": args.train_size,
              "backend": backend.name, "blas_threads": args.blas_threads,
              "data": str(resolve_data_dir(args.data))}
    try:
        training, _, _ = load_mnist(args.data)
        training = (training[0][:args.train_size], training[1][:args.train_size])
        with blas_thread_limit(args.blas_threads):
            env = environment(backend)
            header = header_line(env, config)
            print(header, file=sys.stderr, flush=True)
            results = run_benchmark(training, args.sizes, batch_sizes, methods, backend,
                                    args.dtype, args.repeats, progress)
    except KeyboardInterrupt:
        print("Interrupted; no results written", file=sys.stderr, flush=True)
        return 130
    print(header)
    for line in format_table(results, args.repeats):
        print(line)
    if args.json:
        cli.write_json(args.json, {"format": BENCH_FORMAT, "version": BENCH_VERSION,
                                   "config": config, "environment": env, "results": results})
        print(f"Results written to {args.json}")
    if args.plot:
        save_plot(args.plot, results, f"{env['backend']}, {args.dtype}, sizes {args.sizes}, "
                                      f"{args.train_size} examples/epoch\nBLAS {env['blas']}")
        print(f"Plot written to {args.plot}")
    return 0


def add_bench_parser(commands):
    """Register ``bench`` on the subparsers object of ``nn-gpu``'s parser."""
    bench = commands.add_parser(
        "bench", help="time training epochs against the BLAS's GEMM rate",
        description="Time one SGD epoch on MNIST per method and mini-batch size, and "
                    "compare it with the floor set by the GEMM rate of the BLAS in use.")
    bench.add_argument("--data", metavar="DIR",
                       help=f"MNIST directory (default: ${DATA_ENV_VAR}, else "
                            "~/.local/share/nn_gpu/mnist)")
    bench.add_argument("--backend", choices=BACKEND_NAMES, default="auto")
    bench.add_argument("--sizes", type=cli.positive_int, nargs="+", default=list(DEFAULT_SIZES),
                       metavar="N", help="layer widths, 784 first and 10 last (default: 784 30 10)")
    bench.add_argument("--batch-sizes", type=cli.positive_int, nargs="+",
                       default=list(DEFAULT_BATCH_SIZES), metavar="N",
                       help="mini-batch sizes (default: 1 10 32 100 1000)")
    bench.add_argument("--methods", choices=METHODS, nargs="+", default=list(DEFAULT_METHODS),
                       metavar="METHOD", help="batched and/or per_example (default: both)")
    bench.add_argument("--dtype", choices=DTYPES, default="float32")
    bench.add_argument("--repeats", type=cli.positive_int, default=3, metavar="N",
                       help="timed epochs per batched measurement, median reported "
                            "(default: 3; per_example always runs 1)")
    bench.add_argument("--train-size", type=cli.training_size, default=cli.MNIST_TRAINING_SIZE,
                       metavar="N", help="examples per epoch, the first N of the training "
                                         "set (default: 50000)")
    bench.add_argument("--blas-threads", type=cli.positive_int, metavar="N",
                       help="limit the CPU BLAS to N threads while measuring "
                            "(default: leave the BLAS's own setting)")
    bench.add_argument("--json", metavar="FILE", help="write the results as JSON here")
    bench.add_argument("--plot", metavar="FILE.png",
                       help="plot epoch seconds against mini-batch size (needs matplotlib)")
    bench.set_defaults(func=cmd_bench, parser=bench)
    return bench


def main(argv=None):
    """``nn-gpu bench`` on its own: ``argv`` holds the arguments after ``bench``
    (exit status as ``nn-gpu``)."""
    return cli.main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
