"""``nn-gpu bench``: time training epochs per method and mini-batch size, next
to the floor the BLAS's GEMM rate sets (the model: :mod:`nn_gpu.bench.timing`);
``--busy`` times the CPU epoch with cores kept busy by other processes
(:mod:`nn_gpu.bench.busy`), ``--peers`` next to PyTorch and JAX (:mod:`nn_gpu.bench.peers`);
``--conv PRESET`` or ``--layers FILE`` times a chapter-6 network's epoch
instead (:mod:`nn_gpu.bench.conv`), with ``--peers`` next to PyTorch's."""

import contextlib
import sys
import time

from ..analysis.plots import plot_bench, require_matplotlib
from ..backends import get_backend
from ..bench.busy import busy_benchmark, format_busy_table
from ..bench.conv import (
    clipped_note,
    conv_benchmark,
    disturbance_line,
    floor_cell,
    format_conv_table,
)
from ..bench.disturbance import Watch
from ..bench.peers import compare_peers, format_peer_table
from ..bench.timing import environment, plural, run_benchmark
from ..convnet.layers import layer_from_spec
from ..data.mnist import (
    NUM_CLASSES,
    PIXELS,
    TRAINING_SIZE,
    load_mnist,
    resolve_data_dir,
)
from ..io.fileio import check_outputs, write_json
from ..model.network import check_buildable
from ..options import METHODS
from ..presets.convnet import CONV_DEFAULTS, CONV_PRESETS, read_layers
from .common import (
    CliError,
    add_backend,
    add_data,
    add_dtype,
    add_threads,
    apply_threads,
    check_batch_fits,
    check_mnist_sizes,
    positive_int,
    training_size,
)

BENCH_FORMAT = "nn_gpu.bench"
BENCH_VERSION = 1
DEFAULT_SIZES = [PIXELS, 30, NUM_CLASSES]
DEFAULT_BATCH_SIZES = [1, 10, 32, 100, 1000]
DEFAULT_METHODS = ["batched", "per_example"]
#: A conv epoch is ~50 times an MLP's: 5,000 examples keep --conv to a minute or two.
CONV_TRAIN_SIZE = 5000
CONV_BATCH_SIZES = [10, 100]


def header_line(env, config):
    network = f"conv {config['conv']}" if "conv" in config else f"sizes {config['sizes']}"
    return (f"nn-gpu bench: {env['backend']}; BLAS {env['blas']}; {config['dtype']}; "
            f"{network}; train size {config['train_size']}; {env['date']}")


def write_results(path, config, env, results, **extra):
    """``--json``: the run's configuration, environment and results (and ``extra``)."""
    write_json(path, {"format": BENCH_FORMAT, "version": BENCH_VERSION, "config": config,
                      "environment": env, "results": results, **extra})
    print(f"Results written to {path}")


def first_examples(data, n):
    """The first ``n`` MNIST training examples (X, labels) from ``--data``."""
    X, labels = load_mnist(data)[0]
    return X[:n], labels[:n]


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
            floor_cell(r),
        ])
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]

    def line(cells):
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                         for i, (cell, w) in enumerate(zip(cells, widths))).rstrip()

    lines = [line(columns)] + [line(row) for row in rows]
    lines.append(disturbance_line(results))
    notes = []
    if any(r["method"] != "per_example" for r in results):
        notes.append(f"batched: median of {plural(repeats, 'epoch')} after 1 warm-up epoch")
    if any(r["method"] == "per_example" for r in results):
        notes.append("* per_example: a single epoch, no warm-up (it is slow)")
    lines.append("s/epoch: " + "; ".join(notes))
    lines.append("speed-up: per_example s/epoch / batched s/epoch at the same mini-batch; "
                 "floor s: the epoch's GEMM FLOPs (batched algorithm) / the best GEMM rate "
                 "at their shapes sampled between the epochs; x floor: s/epoch / floor s")
    return lines + clipped_note(results)


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
    if args.conv or args.layers:
        return cmd_bench_conv(args)
    backend, batch_sizes, methods = check_mlp_args(args)
    config = {"sizes": args.sizes, "batch_sizes": batch_sizes, "methods": methods,
              "dtype": args.dtype, "repeats": args.repeats, "train_size": args.train_size,
              "backend": backend.name, "blas_threads": args.blas_threads,
              "threads": args.threads, "busy": args.busy, "peers": args.peers,
              "data": str(resolve_data_dir(args.data))}
    try:
        training = first_examples(args.data, args.train_size)
        if args.busy or args.peers:
            with blas_thread_limit(args.blas_threads):
                return cpu_comparison(args, training, batch_sizes, config, environment(backend))
        with blas_thread_limit(args.blas_threads):
            env = environment(backend)
            header = header_line(env, config)
            print(header, file=sys.stderr, flush=True)
            results = run_benchmark(training, args.sizes, batch_sizes, methods, backend,
                                    args.dtype, args.repeats, show_progress,
                                    one_thread=1 in (args.threads, args.blas_threads))
    except KeyboardInterrupt:
        return interrupted()
    print(header)
    for line in format_table(results, args.repeats):
        print(line)
    write_outputs(args, config, env, results, f"sizes {args.sizes}", args.train_size)
    return 0


def check_mlp_args(args):
    """Fill in the defaults of an MLP benchmark and check its arguments
    (a usage error for each bad one); returns (backend, batch sizes, methods)."""
    parser = args.parser
    if args.cpu_time:
        parser.error("--cpu-time applies to --conv and --layers (the conv epoch) only")
    args.sizes = args.sizes or list(DEFAULT_SIZES)
    args.methods = args.methods or list(DEFAULT_METHODS)
    args.batch_sizes = args.batch_sizes or list(DEFAULT_BATCH_SIZES)
    args.train_size = args.train_size or TRAINING_SIZE
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
    return backend, batch_sizes, methods


def interrupted():
    """Ctrl-C during a benchmark: say that nothing was written; the exit status."""
    print("Interrupted; no results written", file=sys.stderr, flush=True)
    return 130


def write_outputs(args, config, env, results, network, train_size, **extra):
    """``--json`` (with ``extra``) and ``--plot`` of a finished benchmark;
    ``network`` names it in the plot's title."""
    if args.json:
        write_results(args.json, config, env, results, **extra)
    if args.plot:
        plot_bench(results, args.plot, f"{env['backend']}, {args.dtype}, {network}, "
                                      f"{train_size} examples/epoch\nBLAS {env['blas']}")
        print(f"Plot written to {args.plot}")


def show_progress(line):
    """One line of a benchmark's progress, on stderr (stdout stays the table)."""
    print(f"  {line}", file=sys.stderr, flush=True)


def cpu_comparison(args, training, batch_sizes, config, env):
    """``--busy N`` or ``--peers``: print (and save) that comparison's table."""
    print(header_line(env, config), file=sys.stderr, flush=True)
    if args.busy:
        results = busy_benchmark(training, [args.sizes], batch_sizes, args.repeats, args.busy,
                                 progress=show_progress)
        lines = format_busy_table(results)
        lines.append(f"{plural(args.busy, 'core')} kept busy by "
                     f"{'a spinning process' if args.busy == 1 else 'spinning processes'}; "
                     f"median of {plural(args.repeats, 'epoch')} each, taken in turn; chosen: "
                     "BLAS threads chosen per product (the default); 1 thread / all threads: "
                     "forced")
        missing = {}
    else:
        with Watch() as watch:
            results, missing = compare_peers(training, args.sizes, batch_sizes, args.threads,
                                             args.repeats, progress=show_progress)
        lines = format_peer_table(results) + [watch.report({}, args.threads == 1).line()]
        lines += [f"{name}: skipped, {why}" for name, why in missing.items()]
    print(header_line(env, config))
    print("\n".join(lines))
    if args.json:
        write_results(args.json, config, env, results, skipped=missing)
    return 0


def cmd_bench_conv(args):
    """``--conv PRESET`` / ``--layers FILE``: time that network's epoch per
    mini-batch size (with ``--peers``, PyTorch's too); print the table."""
    backend, train_size, batch_sizes = check_conv_args(args)
    name, layers, options = conv_network(args)
    threads = args.threads or args.blas_threads  # ours and PyTorch's alike
    config = {"conv": name, "layers": [layer.spec() for layer in layers],
              "batch_sizes": batch_sizes, "eta": options["eta"], "l2": options["l2"],
              "dtype": args.dtype, "repeats": args.repeats, "train_size": train_size,
              "backend": backend.name, "threads": threads, "peers": args.peers,
              "cpu_time": args.cpu_time, "data": str(resolve_data_dir(args.data))}
    try:
        training = first_examples(args.data, train_size)
        with blas_thread_limit(threads):
            env = environment(backend)
            header = header_line(env, config)
            print(header, file=sys.stderr, flush=True)
            results, skipped = conv_benchmark(
                training, layers, batch_sizes, backend, options["eta"], options["l2"],
                args.dtype, args.repeats, threads, args.peers,
                clock=time.process_time if args.cpu_time else time.perf_counter,
                progress=show_progress)
    except KeyboardInterrupt:
        return interrupted()
    print(header)
    print("\n".join(format_conv_table(results, args.repeats)))
    if args.cpu_time:
        print("s/epoch, PyTorch s and the GEMM rate: CPU seconds of this process (all its "
              "threads), not wall time")
    for peer, why in skipped.items():
        print(f"{peer}: skipped, {why}")
    write_outputs(args, config, env, results, f"conv {name}", train_size, skipped=skipped)
    return 0


def check_conv_args(args):
    """Check the arguments of a conv benchmark (a usage error for each bad
    one); returns (backend, train size, batch sizes)."""
    parser = args.parser
    refused = [flag for flag, given in (("--sizes", args.sizes), ("--busy", args.busy),
                                        ("--methods per_example",
                                         "per_example" in (args.methods or [])))
               if given]
    if refused:
        parser.error(f"{refused[0]} does not apply to a convolutional network (--conv or "
                     "--layers fixes the layers; its epoch is the batched method)")
    train_size = args.train_size or CONV_TRAIN_SIZE
    batch_sizes = sorted(set(args.batch_sizes or CONV_BATCH_SIZES))
    for batch_size in batch_sizes:
        check_batch_fits(parser, "--batch-sizes", batch_size, train_size)
    check_outputs([("--json", args.json), ("--plot", args.plot)])
    if args.peers and (args.dtype != "float32" or args.plot):
        parser.error("--peers measures float32 epochs and draws no plot")
    if args.plot:
        require_matplotlib()
    backend = apply_threads(get_backend(args.backend), args.threads, parser)
    if args.cpu_time and backend.name != "numpy":
        parser.error("--cpu-time counts the CPU seconds of the CPU epoch: use --backend numpy")
    return backend, train_size, batch_sizes


def conv_network(args):
    """(name, layers, options) of ``--layers FILE`` (the conv defaults) or
    ``--conv PRESET``."""
    if args.layers:
        return args.layers, read_layers(args.layers), CONV_DEFAULTS
    preset = CONV_PRESETS[args.conv]
    return args.conv, [layer_from_spec(spec) for spec in preset["layers"]], preset["options"]


def add_parser(commands):
    """Register ``bench`` on the subparsers object of ``nn-gpu``'s parser."""
    bench = commands.add_parser(
        "bench", help="time training epochs against the BLAS's GEMM rate",
        description="Time one SGD epoch on MNIST per method and mini-batch size, and "
                    "compare it with the floor set by the GEMM rate of the BLAS in use.")
    add_data(bench)
    add_backend(bench)
    bench.add_argument("--sizes", type=positive_int, nargs="+", metavar="N",
                       help="layer widths, 784 first and 10 last (default: 784 30 10)")
    conv = bench.add_mutually_exclusive_group()
    conv.add_argument("--conv", choices=CONV_PRESETS, metavar="PRESET",
                      help="instead: time the epoch of this chapter-6 preset's conv network "
                           f"({', '.join(CONV_PRESETS)}) on its eta and l2")
    conv.add_argument("--layers", metavar="FILE",
                      help="instead: time the epoch of the conv network in this JSON file of "
                           "layers (as `train --layers` reads)")
    bench.add_argument("--batch-sizes", type=positive_int, nargs="+", metavar="N",
                       help="mini-batch sizes (default: 1 10 32 100 1000; 10 100 with --conv)")
    bench.add_argument("--methods", choices=METHODS, nargs="+", metavar="METHOD",
                       help="batched and/or per_example (default: both; --conv: batched)")
    add_dtype(bench)
    bench.add_argument("--repeats", type=positive_int, default=3, metavar="N",
                       help="timed epochs per batched measurement, median reported "
                            "(default: 3; per_example always runs 1)")
    bench.add_argument("--train-size", type=training_size, metavar="N",
                       help="examples per epoch, the first N of the training set (default: "
                            f"{TRAINING_SIZE}; {CONV_TRAIN_SIZE} with --conv)")
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
                            "installed, next to nn_gpu's, each in turn (with --conv: PyTorch "
                            "on the backend's device, CUDA for cupy)")
    bench.add_argument("--cpu-time", action="store_true",
                       help="with --conv on the CPU: count the CPU seconds of this process "
                            "(all its threads) instead of wall time, which other processes on "
                            "a shared machine inflate less (give --threads 1)")
    bench.add_argument("--json", metavar="FILE", help="write the results as JSON here")
    bench.add_argument("--plot", metavar="FILE.png",
                       help="plot epoch seconds against mini-batch size (needs matplotlib)")
    bench.set_defaults(func=cmd_bench, parser=bench)
    return bench
