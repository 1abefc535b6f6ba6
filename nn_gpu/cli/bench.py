"""``nn-gpu bench``: time training epochs per method and mini-batch size, next
to the floor the BLAS's GEMM rate sets (the model: :mod:`nn_gpu.benchmark`);
``--busy`` times the CPU epoch with cores kept busy by other processes
(:mod:`nn_gpu.busy`), ``--peers`` next to PyTorch and JAX (:mod:`nn_gpu.peers`)."""

import contextlib
import sys

from ..backends import get_backend
from ..benchmark import environment, run_benchmark
from ..busy import busy_benchmark, format_busy_table
from ..fileio import check_outputs, write_json
from ..mnist import PIXELS, NUM_CLASSES, TRAINING_SIZE, load_mnist, resolve_data_dir
from ..network import check_buildable
from ..options import METHODS
from ..plots import plot_bench, require_matplotlib
from ..peers import compare_peers, format_peer_table
from .common import (CliError, add_backend, add_data, add_dtype, add_threads, apply_threads,
                     check_batch_fits, check_mnist_sizes, positive_int, training_size)

BENCH_FORMAT = "nn_gpu.bench"
BENCH_VERSION = 1
DEFAULT_SIZES = [PIXELS, 30, NUM_CLASSES]
DEFAULT_BATCH_SIZES = [1, 10, 32, 100, 1000]
DEFAULT_METHODS = ["batched", "per_example"]


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


# ------------------------------------------------------------ the command
def blas_thread_limit(threads):
    """A context that limits the host BLAS to ``threads`` threads (None: leave it)."""
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        raise CliError("--blas-threads needs threadpoolctl: pip install threadpoolctl") from None
    return threadpool_limits(limits=threads, user_api="blas")


def cmd_bench(args):
    """Time training epochs per method and mini-batch size; print the table."""
    parser = args.parser
    if len(args.sizes) < 2:
        parser.error("--sizes needs at least two layers (input and output)")
    check_mnist_sizes(args.sizes, "--sizes", parser)
    for batch_size in args.batch_sizes:
        check_batch_fits(parser, "--batch-sizes", batch_size, args.train_size)
    batch_sizes = sorted(set(args.batch_sizes))
    methods = list(dict.fromkeys(args.methods))
    check_buildable(args.sizes)
    check_outputs([("--json", args.json), ("--plot", args.plot)])
    if args.plot:
        require_matplotlib()
    backend = apply_threads(get_backend(args.backend), args.threads, parser)
    if (args.busy or args.peers) and backend.name != "numpy":
        parser.error("--busy and --peers time the CPU epoch: use --backend numpy (or auto "
                     "without a GPU)")
    if args.busy and (args.peers or args.threads):
        parser.error("--busy compares thread settings itself: drop --peers and --threads")
    if (args.busy or args.peers) and (args.dtype != "float32" or args.plot):
        parser.error("--busy and --peers measure float32 epochs and draw no plot")
    progress = (lambda line: print(f"  {line}", file=sys.stderr, flush=True))

    config = {"sizes": args.sizes, "batch_sizes": batch_sizes, "methods": methods,
              "dtype": args.dtype, "repeats": args.repeats, "train_size": args.train_size,
              "backend": backend.name, "blas_threads": args.blas_threads,
              "threads": args.threads, "busy": args.busy, "peers": args.peers,
              "data": str(resolve_data_dir(args.data))}
    try:
        training, _, _ = load_mnist(args.data)
        training = (training[0][:args.train_size], training[1][:args.train_size])
        if args.busy or args.peers:
            with blas_thread_limit(args.blas_threads):
                return cpu_comparison(args, training, batch_sizes, config, environment(backend),
                                      progress)
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
        write_json(args.json, {"format": BENCH_FORMAT, "version": BENCH_VERSION,
                                   "config": config, "environment": env, "results": results})
        print(f"Results written to {args.json}")
    if args.plot:
        plot_bench(results, args.plot, f"{env['backend']}, {args.dtype}, sizes {args.sizes}, "
                                      f"{args.train_size} examples/epoch\nBLAS {env['blas']}")
        print(f"Plot written to {args.plot}")
    return 0


def cpu_comparison(args, training, batch_sizes, config, env, progress):
    """``--busy N`` or ``--peers``: print (and save) that comparison's table."""
    print(header_line(env, config), file=sys.stderr, flush=True)
    if args.busy:
        results = busy_benchmark(training, [args.sizes], batch_sizes, args.repeats, args.busy,
                                 progress=progress)
        lines = format_busy_table(results)
        lines.append(f"{args.busy} core(s) kept busy by a spinning process; median of "
                     f"{args.repeats} epochs each, taken in turn; chosen: BLAS threads chosen "
                     "per product (the default); 1 thread / all threads: forced")
        missing = {}
    else:
        results, missing = compare_peers(training, args.sizes, batch_sizes, args.threads,
                                         args.repeats, progress=progress)
        lines = format_peer_table(results)
        lines += [f"{name}: skipped, {why}" for name, why in missing.items()]
    print(header_line(env, config))
    print("\n".join(lines))
    if args.json:
        write_json(args.json, {"format": BENCH_FORMAT, "version": BENCH_VERSION,
                               "config": config, "environment": env, "results": results,
                               "skipped": missing})
        print(f"Results written to {args.json}")
    return 0


def add_parser(commands):
    """Register ``bench`` on the subparsers object of ``nn-gpu``'s parser."""
    bench = commands.add_parser(
        "bench", help="time training epochs against the BLAS's GEMM rate",
        description="Time one SGD epoch on MNIST per method and mini-batch size, and "
                    "compare it with the floor set by the GEMM rate of the BLAS in use.")
    add_data(bench)
    add_backend(bench)
    bench.add_argument("--sizes", type=positive_int, nargs="+", default=list(DEFAULT_SIZES),
                       metavar="N", help="layer widths, 784 first and 10 last (default: 784 30 10)")
    bench.add_argument("--batch-sizes", type=positive_int, nargs="+",
                       default=list(DEFAULT_BATCH_SIZES), metavar="N",
                       help="mini-batch sizes (default: 1 10 32 100 1000)")
    bench.add_argument("--methods", choices=METHODS, nargs="+", default=list(DEFAULT_METHODS),
                       metavar="METHOD", help="batched and/or per_example (default: both)")
    add_dtype(bench)
    bench.add_argument("--repeats", type=positive_int, default=3, metavar="N",
                       help="timed epochs per batched measurement, median reported "
                            "(default: 3; per_example always runs 1)")
    bench.add_argument("--train-size", type=training_size, default=TRAINING_SIZE,
                       metavar="N", help="examples per epoch, the first N of the training "
                                         "set (default: 50000)")
    bench.add_argument("--blas-threads", type=positive_int, metavar="N",
                       help="limit the CPU BLAS to N threads while measuring "
                            "(default: leave the BLAS's own setting)")
    add_threads(bench)
    bench.add_argument("--busy", type=positive_int, nargs="?", const=1, metavar="N",
                       help="instead: time the CPU epoch with N cores (default 1) kept busy "
                            "by spinning processes, with the BLAS threads chosen per product, "
                            "forced to one and forced to all")
    bench.add_argument("--peers", action="store_true",
                       help="instead: time the same epoch in PyTorch and JAX where they are "
                            "installed, next to nn_gpu's, each in turn")
    bench.add_argument("--json", metavar="FILE", help="write the results as JSON here")
    bench.add_argument("--plot", metavar="FILE.png",
                       help="plot epoch seconds against mini-batch size (needs matplotlib)")
    bench.set_defaults(func=cmd_bench, parser=bench)
    return bench
