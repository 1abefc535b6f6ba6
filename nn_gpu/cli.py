"""The ``nn-gpu`` command line: train, evaluate, presets, download, info, bench.

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
import signal
import sys
from pathlib import Path

import numpy

from . import __version__, presets, resume
from .backends import BACKEND_NAMES, cupy_status, get_backend
from .checkpoint import Checkpoint
from .costs import COSTS
from .errors import NNGpuError
from .fileio import atomic_write, check_outputs
from .expand import COPIES, expanded_training_set
from .mnist import DATA_ENV_VAR, FILES, load_mnist, resolve_data_dir
from .network import ACTIVATIONS, DTYPES, INITS, METHODS, Network, check_buildable

PROG = "nn-gpu"
MNIST_INPUTS, MNIST_OUTPUTS = 784, 10
MNIST_TRAINING_SIZE = 50_000
DATA_HELP = f"MNIST directory (default: ${DATA_ENV_VAR}, else ~/.local/share/nn_gpu/mnist)"
#: --monitor choice -> the Network.sgd flag it turns on ("evaluation-accuracy",
#: the validation and test accuracies, is always measured: the epoch line,
#: the eta schedule and early stopping need it).
MONITORS = {"training-cost": "monitor_training_cost",
            "training-accuracy": "monitor_training_accuracy",
            "evaluation-cost": "monitor_evaluation_cost",
            "evaluation-accuracy": None}


class CliError(NNGpuError):
    """A problem with the command line found after parsing (e.g. an output path)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr, not the usage block."""

    def error(self, message):
        message = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# ---------------------------------------------------------- argument types
def int_from(low, what):
    """An argument type: an int >= ``low``, ``what`` naming it in errors."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


positive_int = int_from(1, "a positive integer")  # layer sizes, epochs, batch size
seed = int_from(0, "a whole number >= 0")  # NumPy's generators take no other


def real_in(low, high, low_open=False):
    """An argument type: a float in the interval from ``low`` (excluded if
    ``low_open``) to ``high`` (always excluded, so inf means finite)."""
    bounds = f"{'(' if low_open else '['}{low:g}, {high:g})"

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (low < value if low_open else low <= value) or not value < high:
            raise argparse.ArgumentTypeError(f"must be a number in {bounds}, got {text}")
        return value
    return parse


positive_float = real_in(0, math.inf, low_open=True)  # eta
non_negative_float = real_in(0, math.inf)              # the λ of L2 and L1
unit_interval = real_in(0, 1)                          # momentum, dropout


def patience(text):
    """A number of epochs >= 1, or "off" (0) to cancel a preset's."""
    if text.strip().lower() == "off":
        return 0
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (or 'off')") from None


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


def check_output_path(path, flag, inputs=()):
    """Fail now, not after training, if ``path`` can never be written or is
    one of the ``inputs`` ((label, path) pairs; see :func:`fileio.check_outputs`)."""
    check_outputs([(flag, path)], inputs)


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
def expand_cache_dir():
    """Where the expanded training set is cached: $XDG_CACHE_HOME/nn_gpu, else
    ~/.cache/nn_gpu (created if needed; None if it cannot be), never the data dir."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    path = Path(base).expanduser() / "nn_gpu"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # the cache is optional: expand in memory
    return path


def training_subset(training, expand, train_size=None):
    """The first ``train_size`` training examples (all if None), expanded
    when ``expand``: each image then 4 copies shifted by a pixel.

    Rows 5i..5i+4 of the expanded set come from image i, so its first 5n rows
    are the expansion of the first n images: one cache file (of all 50,000)
    serves every ``train_size``."""
    if expand:
        training = expanded_training_set(training, cache_dir=expand_cache_dir())
        if train_size is not None:
            return tuple(array[:train_size * COPIES].copy() for array in training)
        return training
    if train_size is not None:
        return training[0][:train_size], training[1][:train_size]
    return training


def sgd_settings(options):
    """The ``Network.sgd`` keywords that resolved `train` options set
    (besides epochs, mini-batch size and eta)."""
    return {key: options[key]
            for key in ("l2", "l1", "momentum", "dropout", "eta_schedule", "early_stopping")}


def resolve_train_options(args):
    """The run's hyper-parameters: explicit options > the preset's > built-in,
    checked before any data is loaded."""
    parser = args.parser
    options = presets.resolve(vars(args), args.preset)
    for key in ("eta_schedule", "early_stopping"):
        options[key] = options[key] or None  # "off" (0) -> None
    sizes = options["sizes"]
    if len(sizes) < 2:
        parser.error("--sizes needs at least two layers (input and output)")
    check_mnist_sizes(sizes, "--sizes", parser)
    examples = (args.train_size or MNIST_TRAINING_SIZE) * (COPIES if options["expand"] else 1)
    if options["batch_size"] > examples:
        parser.error(f"--batch-size {options['batch_size']} is larger than the "
                     f"training set ({examples} examples)")
    if args.method == "per_example":
        extras = [f"--{key.replace('_', '-')}" for key in ("l2", "l1", "momentum", "dropout")
                  if options[key]]
        if options["activation"] != "sigmoid" or options["cost"] == "log_likelihood" or extras:
            parser.error("--method per_example is the book's chapter-1 loop: sigmoid "
                         "neurons, quadratic or cross_entropy cost, and none of --l2, --l1, "
                         "--momentum, --dropout; use --method batched")
    return options, examples


def describe_run(args, options, examples, backend):
    """The header line: what is trained, how, and where."""
    parts = [f"{options['cost']} cost", options["activation"], f"{options['init']} init",
             f"eta {options['eta']:g}", f"mini-batch {options['batch_size']}"]
    parts += [f"{name} {options[key]:g}" for key, name in
              (("l2", "l2"), ("l1", "l1"), ("momentum", "momentum"), ("dropout", "dropout"))
              if options[key]]
    parts += [f"{name} {options[key]}" for key, name in
              (("eta_schedule", "eta schedule"), ("early_stopping", "early stopping"))
              if options[key]]
    parts.append(f"{examples} {'expanded ' if options['expand'] else ''}examples")
    parts += [args.method, args.dtype]
    preset = f"preset {args.preset}: " if args.preset else ""
    return (f"Training {options['sizes']} ({preset}{', '.join(parts)}) "
            f"on {backend.name}: {backend.reason}")


def epoch_line(record, eta_schedule, eta0):
    """Chapter 1's line: test figure first, then validation, train cost, time."""
    extras = [f"validation {record['validation_correct']} / {record['validation_total']}"]
    if "train_cost" in record:
        extras.append(f"train cost {record['train_cost']:.4f}")
    if eta_schedule and record["eta"] != eta0:
        extras.append(f"eta {record['eta']:g}")
    extras.append(f"{record['seconds']:.2f} s")
    return (f"Epoch {record['epoch']}: {record['test_correct']} / {record['test_total']}  "
            f"({', '.join(extras)})")


#: The per-epoch keys of the history file, in this order, then every other
#: ``*_accuracy`` / ``*_cost`` the record holds, then ``stopped``.
HISTORY_KEYS = ("epoch", "validation_accuracy", "test_accuracy", "train_cost", "seconds", "eta")


def history_entry(record):
    keys = [key for key in HISTORY_KEYS if key in record]
    keys += sorted(key for key in record if key not in keys
                   and key.endswith(("_accuracy", "_cost")))
    keys += ["stopped"] if "stopped" in record else []
    return {key: record[key] for key in keys}


def interrupt(signum, frame):
    """SIGTERM ends training the way Ctrl-C does: nothing half-written."""
    raise KeyboardInterrupt


class EpochProgress:
    """A tqdm bar per epoch on a terminal (the epoch line stays); silent otherwise."""

    def __init__(self, enabled):
        self.enabled, self.bar = enabled, None

    def __call__(self, examples):
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(unit=" examples", leave=False, dynamic_ncols=True)
        self.bar.update(examples)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def open_checkpoint(args):
    """(Checkpoint or None, the history of epochs already done, the changes
    the command line makes to a resumed run: flag -> (old, new)).

    ``--resume DIR`` takes the run's settings from its checkpoint, checked,
    and only those of :data:`resume.MAY_CHANGE` from the command line (see
    :mod:`nn_gpu.resume`); ``--checkpoint-dir DIR`` starts a new run and
    refuses to overwrite another run's checkpoint."""
    if args.resume and args.checkpoint_dir and args.resume != args.checkpoint_dir:
        args.parser.error("--resume DIR already checkpoints into DIR; drop --checkpoint-dir")
    if args.resume:
        checkpoint = Checkpoint(args.resume)
        meta, _ = checkpoint.load()
        changes = resume.apply(args.parser, args, checkpoint.path, meta.get("config"))
        args.parser = resume.Blame(checkpoint.path)  # the settings are the checkpoint's
        return checkpoint, meta["state"]["history"], changes
    if args.checkpoint_dir:
        checkpoint = Checkpoint(args.checkpoint_dir)
        if checkpoint.exists():
            raise CliError(f"{checkpoint.path} already holds a checkpoint: continue it with "
                           f"--resume {args.checkpoint_dir}, or choose another directory")
        return checkpoint, [], {}
    return None, [], {}


def cmd_train(args):
    """Train a network on MNIST, printing one line per epoch as the book does.

    The first figure of each epoch line is the test-set accuracy, as in
    Nielsen's network.py; the history file is rewritten after every epoch so
    an interrupted run keeps what it had.
    """
    checkpoint, earlier, changes = open_checkpoint(args)
    options, examples = resolve_train_options(args)
    check_buildable(options["sizes"])
    if checkpoint is not None:
        checkpoint.check_writable()
    check_outputs([("--history", args.history), ("--save", args.save),
                   ("--checkpoint-dir", checkpoint and checkpoint.path)])
    backend = get_backend(args.backend)
    say = (lambda *_: None) if args.quiet else (lambda line: print(line, flush=True))
    monitor = {flag: choice in options["monitor"] for choice, flag in MONITORS.items() if flag}
    preset = getattr(args, "stored_preset", args.preset)
    if checkpoint is not None:  # the run's settings: a new --eta is for this part only
        stored_eta = changes.get("--eta", (options["eta"],))[0]
        checkpoint.config = {"options": {**options, "eta": stored_eta}, "preset": preset,
                             "dtype": args.dtype, "seed": args.seed, "method": args.method,
                             "train_size": args.train_size}

    history = {"config": {
        "preset": preset, **options, "backend": backend.name, "dtype": args.dtype,
        "seed": args.seed, "method": args.method, "train_size": args.train_size,
        "train_examples": examples, "data": str(resolve_data_dir(args.data)),
    }, "epochs": [history_entry(record) for record in earlier]}
    progress = EpochProgress(enabled=not args.quiet and sys.stderr.isatty())
    previous_sigterm = signal.signal(signal.SIGTERM, interrupt)
    try:
        training, validation, test = load_mnist(args.data)
        if options["expand"]:
            cache = expand_cache_dir()
            history["config"]["expand_cache"] = str(cache) if cache else None
        training = training_subset(training, options["expand"], args.train_size)
        net = Network(options["sizes"], cost=options["cost"], backend=backend,
                      dtype=args.dtype, seed=args.seed, init=options["init"],
                      activation=options["activation"])
        if args.history:
            write_json(args.history, history)
        if args.resume:
            say(f"Resuming after epoch {len(earlier)} from {checkpoint.path}"
                f"{resume.describe_changes(changes)}")
        say(describe_run(args, options, examples, backend))

        def after_epoch(record):
            progress.close()
            say(epoch_line(record, options["eta_schedule"], options["eta"]))
            if "stopped" in record:
                say(f"Stopped after epoch {record['epoch']}: {record['stopped']}")
            entry = history_entry(record)
            if args.history:  # written before counted, so Ctrl-C reports what the file holds
                write_json(args.history, {**history, "epochs": history["epochs"] + [entry]})
            history["epochs"].append(entry)

        records = net.sgd(training, options["epochs"], options["batch_size"], options["eta"],
                          test_data=test, validation_data=validation, method=args.method,
                          callback=after_epoch, checkpoint=checkpoint, resume=bool(args.resume),
                          progress=progress, **sgd_settings(options), **monitor)
    except KeyboardInterrupt:
        progress.close()
        done = len(history["epochs"])
        kept = [f"history kept in {args.history}"] if args.history else []
        if checkpoint is not None and checkpoint.exists():
            kept.append(f"checkpoint of epoch {done} in {checkpoint.directory}: continue with "
                        f"`{PROG} train --resume {checkpoint.directory}`")
        print(f"Interrupted after epoch {done}; {'; '.join(kept) or 'nothing saved'}",
              file=sys.stderr, flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)

    summary = []
    for split in ("test", "validation"):  # max: the first of equals, the earliest
        best = max(records, key=lambda r: r[f"{split}_accuracy"])
        summary.append(f"Best {split} accuracy: "
                       f"{percent(best[f'{split}_correct'], best[f'{split}_total'])} "
                       f"(epoch {best['epoch']})")
    if options["early_stopping"]:
        # sgd put back the weights of the best validation epoch: score those.
        kept_epoch = max(records, key=lambda r: r["validation_accuracy"])["epoch"]
        correct, total = net.evaluate(test), len(test[1])
        summary.append(f"Test accuracy with the kept weights: {percent(correct, total)} "
                       f"(epoch {kept_epoch})")
        history["kept_weights"] = {"epoch": kept_epoch, "test_accuracy": correct / total}
        if args.history:
            write_json(args.history, history)
    if args.save:
        net.save(args.save)
        say(f"Model saved to {args.save}")
    print("\n".join(summary), flush=True)
    return 0


def cmd_presets(args):
    """Print the presets of `train --preset`, with the book's figures."""
    print(presets.table())
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


def optional_version(distribution, extra):
    """The installed version of an optional dependency, or how to install it
    (read from its metadata: importing Optuna would cost a second)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return f"not installed; pip install 'nn_gpu[{extra}]'"


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
    print(f"sweep (Optuna): {optional_version('optuna', 'sweep')}")
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

    builtin = presets.TRAIN_DEFAULTS
    train = commands.add_parser(
        "train", help="train a network on MNIST",
        description="Train on MNIST. The defaults reproduce chapter 1 of the book: "
                    "[784, 30, 10], 30 epochs, mini-batches of 10, eta 3.0, quadratic cost. "
                    "--preset NAME starts from one of the book's runs instead (list them "
                    f"with `{PROG} presets`); options given explicitly override the preset.",
        epilog="Options marked (*) default to the preset's value when --preset is given.")
    train.add_argument("--data", metavar="DIR", help=DATA_HELP)
    train.add_argument("--preset", choices=list(presets.PRESETS), metavar="NAME",
                       help=f"start from a named set of options: {', '.join(presets.PRESETS)} "
                            f"(see `{PROG} presets`)")
    # (*) options: default None here, resolved as explicit > preset > built-in.
    train.add_argument("--sizes", type=positive_int, nargs="+", metavar="N",
                       help="(*) layer widths, 784 first and 10 last (default: 784 30 10)")
    train.add_argument("--epochs", type=positive_int, metavar="N",
                       help=f"(*) default: {builtin['epochs']}")
    train.add_argument("--batch-size", type=positive_int, metavar="N",
                       help=f"(*) mini-batch size (default: {builtin['batch_size']})")
    train.add_argument("--eta", type=positive_float,
                       help=f"(*) learning rate (default: {builtin['eta']})")
    train.add_argument("--cost", choices=list(COSTS),
                       help="(*) quadratic or cross_entropy (sigmoid outputs), log_likelihood "
                            f"(softmax outputs) (default: {builtin['cost']})")
    train.add_argument("--activation", choices=ACTIVATIONS,
                       help=f"(*) hidden-layer neurons (default: {builtin['activation']})")
    train.add_argument("--init", choices=INITS,
                       help="(*) normal: N(0,1) weights as in the book (default); "
                            "scaled: N(0,1/n_in)")
    train.add_argument("--l2", type=non_negative_float, metavar="LAMBDA",
                       help="(*) L2 regularisation: weight decay (1 - eta*LAMBDA/n) (default: 0)")
    train.add_argument("--l1", type=non_negative_float, metavar="LAMBDA",
                       help="(*) L1 regularisation (default: 0)")
    train.add_argument("--momentum", type=unit_interval, metavar="MU",
                       help="(*) momentum coefficient in [0, 1) (default: 0)")
    train.add_argument("--dropout", type=unit_interval, metavar="P",
                       help="(*) probability of dropping each hidden unit, in [0, 1) "
                            "(default: 0)")
    train.add_argument("--eta-schedule", type=patience, metavar="N",
                       help="(*) halve eta after N epochs without a better validation "
                            "accuracy; stop once eta has fallen to eta/128 "
                            "(default: off; 'off' cancels a preset's)")
    train.add_argument("--early-stopping", type=patience, metavar="N",
                       help="(*) stop after N epochs without a better validation accuracy "
                            "and keep the best epoch's weights (default: off; 'off' cancels "
                            "a preset's)")
    train.add_argument("--expand", action=argparse.BooleanOptionalAction,
                       help="(*) train on the expanded set: each image plus 4 copies shifted "
                            "by one pixel (5x --train-size examples; cached in "
                            "$XDG_CACHE_HOME/nn_gpu, else ~/.cache/nn_gpu) (default: no)")
    train.add_argument("--monitor", nargs="*", choices=list(MONITORS), metavar="WHAT",
                       help="(*) what to measure after each epoch, of "
                            f"{', '.join(MONITORS)} (default: all; the validation and test "
                            "accuracies are always measured)")
    train.add_argument("--backend", choices=BACKEND_NAMES, default="auto")
    train.add_argument("--dtype", choices=DTYPES, default="float32")
    train.add_argument("--seed", type=seed, default=None,
                       help="fix initial weights and shuffles (an integer >= 0)")
    train.add_argument("--method", choices=METHODS, default="batched",
                       help="batched: matrix core; per_example: the book's loop")
    train.add_argument("--train-size", type=training_size, metavar="N",
                       help="use only the first N training examples (1..50000)")
    train.add_argument("--checkpoint-dir", metavar="DIR",
                       help="save a checkpoint here after every epoch (atomically)")
    train.add_argument("--resume", metavar="DIR",
                       help="continue the run checkpointed in DIR, with its settings, bit for "
                            f"bit; it may change only {', '.join(map(resume.flag, resume.MAY_CHANGE))} "
                            "(--eta: for the epochs still to run)")
    train.add_argument("--history", metavar="FILE", help="write per-epoch JSON history here")
    train.add_argument("--save", metavar="FILE", help="save the trained model here")
    train.add_argument("--quiet", action="store_true", help="print only the summary at the end")
    train.set_defaults(func=cmd_train, parser=train)

    evaluate = commands.add_parser("evaluate", help="score a saved model on MNIST",
                                   description="Score a model written by `train --save`.")
    evaluate.add_argument("model", metavar="MODEL", help="model file from `train --save`")
    evaluate.add_argument("--data", metavar="DIR", help=DATA_HELP)
    evaluate.add_argument("--backend", choices=BACKEND_NAMES, default="auto")
    evaluate.add_argument("--split", choices=("test", "validation"), default="test")
    evaluate.set_defaults(func=cmd_evaluate, parser=evaluate)

    listing = commands.add_parser("presets", help="list the presets of `train --preset`",
                                  description="List the presets of `train --preset`, with "
                                              "the accuracy the book reports for each.")
    listing.set_defaults(func=cmd_presets, parser=listing)

    download = commands.add_parser("download", help="download and verify MNIST",
                                   description="Download the four MNIST files.")
    download.add_argument("--data", metavar="DIR", help=DATA_HELP)
    download.set_defaults(func=cmd_download, parser=download)

    info = commands.add_parser("info", help="show versions, backends and data location",
                               description="Show what a bug report needs.")
    info.add_argument("--data", metavar="DIR", help=DATA_HELP)
    info.set_defaults(func=cmd_info, parser=info)

    # Here, not at the top: these modules import cli for its helpers.
    from .benchmark import add_bench_parser
    from .plots import add_plot_parser
    from .predict import add_predict_parser
    from .sweep.command import add_sweep_parser
    add_bench_parser(commands)
    add_plot_parser(commands)
    add_predict_parser(commands)
    add_sweep_parser(commands)
    return parser


def main(argv=None):
    """Run the command line; return the exit status (0 ok, 1 error, 2 usage, 130 Ctrl-C)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        with numpy.errstate(all="ignore"):  # results are checked, not warned about
            return args.func(args)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:  # (training says itself what it kept)
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return 130
    except MemoryError:  # numpy's _ArrayMemoryError too
        return fail("out of memory; try smaller --sizes or --batch-size, or a smaller "
                    "--train-size")
    except NNGpuError as exc:
        return fail(exc)
    except OSError as exc:  # writing --history / --save, or reading a data dir
        where = f"{exc.filename}: " if exc.filename else ""
        return fail(f"{where}{exc.strerror or exc}")
    except Exception as exc:
        if type(exc).__name__ != "OutOfMemoryError":  # cupy.cuda.memory.OutOfMemoryError
            raise
        return fail(f"out of GPU memory: {exc}; try a smaller --batch-size or network, "
                    "or --backend numpy")


def fail(message):
    message = " ".join(str(message).split())
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return 1
