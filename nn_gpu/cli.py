"""The ``nn-gpu`` command line: train, evaluate, download, info, bench.

Every mistake a user can make ends in one line on stderr, never a traceback:
usage errors (bad flags or numbers) exit with status 2, errors found while
running (missing data, unreadable model, unwritable output) with status 1,
Ctrl-C during training with 130. Arguments are checked before any data is
loaded, so a typo never costs a 30-epoch run.
"""

import argparse
import json
import math
import os
import platform
import sys
from pathlib import Path

import numpy

from . import __version__
from .backends import BACKEND_NAMES, cupy_status, get_backend
from .costs import COSTS
from .errors import NNGpuError
from .fileio import atomic_write
from .mnist import DATA_ENV_VAR, FILES, load_mnist, resolve_data_dir
from .network import DTYPES, INITS, METHODS, Network

PROG = "nn-gpu"
MNIST_INPUTS, MNIST_OUTPUTS = 784, 10
MNIST_TRAINING_SIZE = 50_000


class CliError(NNGpuError):
    """A problem with the command line found after parsing (e.g. an output path)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr, not the usage block."""

    def error(self, message):
        message = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# ---------------------------------------------------------- argument types
def positive_int(text):
    """An int >= 1 (layer sizes, epochs, batch size)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text):
    """A finite float > 0 (the learning rate)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def training_size(text):
    """How many of MNIST's 50,000 training examples to use."""
    value = positive_int(text)
    if value > MNIST_TRAINING_SIZE:
        raise argparse.ArgumentTypeError(
            f"must be at most {MNIST_TRAINING_SIZE} (the MNIST training set), got {value}")
    return value


# ---------------------------------------------------------------- helpers
def percent(correct, total):
    return f"{100 * correct / total:.2f}%"


def check_output_path(path, flag):
    """Fail now, not after training, if ``path`` can never be written."""
    if path is None:
        return
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        raise CliError(f"{flag} {path}: directory {parent} does not exist")
    if path.is_dir():
        raise CliError(f"{flag} {path}: is a directory")
    if not os.access(parent, os.W_OK):
        raise CliError(f"{flag} {path}: directory {parent} is not writable")


def write_json(path, document):
    """Replace ``path`` atomically, so a crash or Ctrl-C keeps the last good copy."""
    with atomic_write(path, "w") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")


def check_mnist_sizes(sizes, what, parser=None):
    """MNIST needs 784 inputs and 10 outputs; say so before anything runs."""
    if len(sizes) >= 2 and sizes[0] == MNIST_INPUTS and sizes[-1] == MNIST_OUTPUTS:
        return
    message = (f"{what} {list(sizes)} do not fit MNIST: the first layer must be "
               f"{MNIST_INPUTS} (28x28 pixels) and the last {MNIST_OUTPUTS} (digits)")
    if parser is not None:
        parser.error(message)
    raise CliError(message)


# ------------------------------------------------------------- subcommands
def cmd_train(args):
    """Train a network on MNIST, printing one line per epoch as the book does.

    The first figure of each epoch line is the test-set accuracy, as in
    Nielsen's network.py; the history file is rewritten after every epoch so
    an interrupted run keeps what it had.
    """
    if len(args.sizes) < 2:
        args.parser.error("--sizes needs at least two layers (input and output)")
    check_mnist_sizes(args.sizes, "--sizes", args.parser)
    limit = args.train_size or MNIST_TRAINING_SIZE
    if args.batch_size > limit:
        args.parser.error(f"--batch-size {args.batch_size} is larger than the "
                          f"training set ({limit} examples)")
    check_output_path(args.history, "--history")
    check_output_path(args.save, "--save")
    backend = get_backend(args.backend)
    say = (lambda *_: None) if args.quiet else (lambda line: print(line, flush=True))

    history = {"config": {
        "sizes": args.sizes, "epochs": args.epochs, "batch_size": args.batch_size,
        "eta": args.eta, "cost": args.cost, "backend": backend.name, "dtype": args.dtype,
        "seed": args.seed, "init": args.init, "method": args.method,
        "train_size": args.train_size, "data": str(resolve_data_dir(args.data)),
    }, "epochs": []}
    try:
        training, validation, test = load_mnist(args.data)
        if args.train_size is not None:
            training = (training[0][:args.train_size], training[1][:args.train_size])
        net = Network(args.sizes, cost=args.cost, backend=backend, dtype=args.dtype,
                      seed=args.seed, init=args.init)
        if args.history:
            write_json(args.history, history)
        say(f"Training {net.sizes} ({args.cost} cost, {args.method}, {args.dtype}) "
            f"on {backend.name}: {backend.reason}")

        def after_epoch(record):
            say(f"Epoch {record['epoch']}: {record['test_correct']} / {record['test_total']}  "
                f"(validation {record['validation_correct']} / {record['validation_total']}, "
                f"train cost {record['train_cost']:.4f}, {record['seconds']:.2f} s)")
            entry = {key: record[key] for key in ("epoch", "validation_accuracy",
                                                  "test_accuracy", "train_cost", "seconds")}
            if args.history:  # written before counted, so Ctrl-C reports what the file holds
                write_json(args.history, {**history, "epochs": history["epochs"] + [entry]})
            history["epochs"].append(entry)

        records = net.sgd(training, args.epochs, args.batch_size, args.eta, test_data=test,
                          validation_data=validation, method=args.method,
                          monitor_training_cost=True, callback=after_epoch)
    except KeyboardInterrupt:
        kept = f"history kept in {args.history}" if args.history else "no --history file given"
        print(f"Interrupted after epoch {len(history['epochs'])}; {kept}",
              file=sys.stderr, flush=True)
        return 130

    if args.save:
        net.save(args.save)
        say(f"Model saved to {args.save}")
    best = max(records, key=lambda r: r["test_accuracy"])  # first of equals: earliest
    print(f"Best test accuracy: {percent(best['test_correct'], best['test_total'])} "
          f"(epoch {best['epoch']})", flush=True)
    return 0


def cmd_evaluate(args):
    """Score a saved model on the MNIST test (or validation) set."""
    net = Network.load(args.model, backend=args.backend)
    check_mnist_sizes(net.sizes, f"{args.model}: model layer sizes")
    _, validation, test = load_mnist(args.data)
    data = test if args.split == "test" else validation
    correct, total = net.evaluate(data), len(data[1])
    print(f"{args.split} accuracy: {correct} / {total} ({percent(correct, total)})")
    return 0


def cmd_download(args):
    """Fetch and verify the four MNIST files, so `train` works offline afterwards."""
    from .download import download_mnist  # urllib etc. only when needed

    dest = download_mnist(resolve_data_dir(args.data))
    print(f"MNIST files are in {dest}")
    return 0


def blas_description():
    """Which BLAS numpy calls (the CPU backend's speed depends on it)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (install threadpoolctl to find out)"
    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(blas) or "unknown"


def cmd_info(args):
    """Print what a bug report needs: versions, backends, BLAS and data location."""
    import numba
    import scipy

    usable, reason = cupy_status()
    print(f"nn_gpu {__version__}")
    print(f"python {platform.python_version()} ({sys.executable})")
    print(f"numpy {numpy.__version__}")
    print(f"scipy {scipy.__version__}")
    print(f"numba {numba.__version__}")
    print(f"BLAS: {blas_description()}")
    print(f"CuPy usable: {'yes' if usable else 'no'}: {reason}")
    try:
        auto = get_backend("auto")
        print(f"backend 'auto' picks: {auto.name} ({auto.describe()})")
    except NNGpuError as exc:
        print(f"backend 'auto' fails: {exc}")
    data_dir = resolve_data_dir(args.data)
    source = "--data" if args.data else (DATA_ENV_VAR if os.environ.get(DATA_ENV_VAR)
                                         else "per-user default")
    missing = [name for name in FILES.values() if not (data_dir / name).is_file()]
    state = "all 4 MNIST files present" if not missing else (
        f"missing {', '.join(missing)}; run `{PROG} download`")
    print(f"data dir: {data_dir} (from {source}): {state}")
    return 0


# ------------------------------------------------------------------ parser
def build_parser():
    parser = ArgumentParser(
        prog=PROG, description="Nielsen's MNIST networks, trained by mini-batch SGD "
                               "on NumPy or CuPy.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    data_help = (f"MNIST directory (default: ${DATA_ENV_VAR}, else "
                 "~/.local/share/nn_gpu/mnist)")

    train = commands.add_parser(
        "train", help="train a network on MNIST",
        description="Train on MNIST. The defaults reproduce chapter 1 of the book: "
                    "[784, 30, 10], 30 epochs, mini-batches of 10, eta 3.0, quadratic cost.")
    train.add_argument("--data", metavar="DIR", help=data_help)
    train.add_argument("--sizes", type=positive_int, nargs="+", default=[784, 30, 10],
                       metavar="N", help="layer widths, 784 first and 10 last (default: 784 30 10)")
    train.add_argument("--epochs", type=positive_int, default=30, metavar="N", help="default: 30")
    train.add_argument("--batch-size", type=positive_int, default=10, metavar="N",
                       help="mini-batch size (default: 10)")
    train.add_argument("--eta", type=positive_float, default=3.0,
                       help="learning rate (default: 3.0)")
    train.add_argument("--cost", choices=list(COSTS), default="quadratic")
    train.add_argument("--backend", choices=BACKEND_NAMES, default="auto")
    train.add_argument("--dtype", choices=DTYPES, default="float32")
    train.add_argument("--seed", type=int, default=None, help="fix initial weights and shuffles")
    train.add_argument("--init", choices=INITS, default="normal",
                       help="normal: N(0,1) weights as in the book; scaled: N(0,1/n_in)")
    train.add_argument("--method", choices=METHODS, default="batched",
                       help="batched: matrix core; per_example: the book's loop")
    train.add_argument("--train-size", type=training_size, metavar="N",
                       help="use only the first N training examples (1..50000)")
    train.add_argument("--history", metavar="FILE", help="write per-epoch JSON history here")
    train.add_argument("--save", metavar="FILE", help="save the trained model here")
    train.add_argument("--quiet", action="store_true", help="print only the final line")
    train.set_defaults(func=cmd_train, parser=train)

    evaluate = commands.add_parser("evaluate", help="score a saved model on MNIST",
                                   description="Score a model written by `train --save`.")
    evaluate.add_argument("model", metavar="MODEL", help="model file from `train --save`")
    evaluate.add_argument("--data", metavar="DIR", help=data_help)
    evaluate.add_argument("--backend", choices=BACKEND_NAMES, default="auto")
    evaluate.add_argument("--split", choices=("test", "validation"), default="test")
    evaluate.set_defaults(func=cmd_evaluate, parser=evaluate)

    download = commands.add_parser("download", help="download and verify MNIST",
                                   description="Download the four MNIST files.")
    download.add_argument("--data", metavar="DIR", help=data_help)
    download.set_defaults(func=cmd_download, parser=download)

    info = commands.add_parser("info", help="show versions, backends and data location",
                               description="Show what a bug report needs.")
    info.add_argument("--data", metavar="DIR", help=data_help)
    info.set_defaults(func=cmd_info, parser=info)

    from .benchmark import add_bench_parser  # here, not at the top: benchmark imports cli
    add_bench_parser(commands)
    return parser


def main(argv=None):
    """Run the command line; return the exit status (0 ok, 1 error, 2 usage, 130 Ctrl-C)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        return args.func(args)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except NNGpuError as exc:
        return fail(exc)
    except OSError as exc:  # writing --history / --save, or reading a data dir
        where = f"{exc.filename}: " if exc.filename else ""
        return fail(f"{where}{exc.strerror or exc}")


def fail(message):
    message = " ".join(str(message).split())
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return 1
