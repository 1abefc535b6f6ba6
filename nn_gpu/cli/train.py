"""``nn-gpu train``: train a network on MNIST, one line per epoch as the book.

One command for both kinds of network: fully connected (``--sizes``, the
book's chapter 1-3 presets) and convolutional (``--preset ch6-*``,
``--layers FILE``). What runs is resolved and checked before any data is
loaded (:mod:`.train_run`; ``--resume``: :mod:`.resume`), then trained by the
one training loop every model shares (:meth:`nn_gpu.model.base.Model.sgd`).

Exit status: 0 done; 1 a file or data problem, or a run that diverges (NaN)
or is stuck at chance (see :mod:`nn_gpu.training.loop`); 2 a usage error,
including a ``--resume`` with no epoch left to train; 130 interrupted
(Ctrl-C or SIGTERM), saying the command that continues the run.
"""

import argparse
import functools
import shlex
import signal
import sys

from ..backends import choose_backend, get_backend
from ..convnet.layers import layer_from_spec
from ..convnet.network import ConvNetwork
from ..data.expand import default_cache_dir, training_subset
from ..data.mnist import load_mnist, one_vs_rest, resolve_data_dir
from ..io import fileio
from ..io.history import history_entry, write_history
from ..model.costs import COSTS
from ..model.network import Network
from ..options import ACTIVATIONS, INITS, METHODS, MONITORS
from ..presets import network as presets
from ..presets.convnet import CONV_PRESETS, book_figure
from . import resume
from .common import (
    PROG,
    add_backend,
    add_data,
    add_dtype,
    add_threads,
    always_no,
    apply_threads,
    digit,
    interrupt,
    interrupted,
    non_negative_float,
    patience,
    percent,
    positive_float,
    positive_int,
    precision_recall,
    seed,
    training_size,
    unit_interval,
)
from .train_run import plan_run, training_plan


def describe_run(run, backend):
    """The header line: what is trained, how, and where."""
    options = run.options
    parts = []
    if run.kind == "mlp":
        parts += [f"{options['cost']} cost", options["activation"], f"{options['init']} init"]
    elif run.preset:
        parts.append(CONV_PRESETS[run.preset]["description"])
    else:
        parts.append(f"{len(run.layers)} layers")
    parts += [f"eta {options['eta']:g}", f"mini-batch {options['batch_size']}"]
    parts += [f"{name} {options[key]:g}" for key, name in
              (("l2", "l2"), ("l1", "l1"), ("momentum", "momentum"), ("dropout", "dropout"))
              if options.get(key)]
    parts += [f"{name} {options[key]}" for key, name in
              (("eta_schedule", "eta schedule"), ("early_stopping", "early stopping"))
              if options[key]]
    if run.save_best:
        parts.append("keeping the best validation epoch")
    parts.append(f"{run.examples} {'expanded ' if options['expand'] else ''}examples")
    parts += [run.method, run.dtype]
    preset = f"preset {run.preset}: " if run.preset and run.kind == "mlp" else ""
    return (f"Training {run.name} ({preset}{', '.join(parts)}) "
            f"on {backend.name}: {backend.reason}")

def detector_baseline(digit, labels):
    """The line that puts a detector's test accuracy in context."""
    return (f"Detecting {digit}s: {int(labels.sum())} of the {len(labels)} test images "
            f"are {digit}s, so {always_no(digit, labels)}: the baseline accuracy to beat; "
            "precision and recall show what it misses")


def scores(record, split):
    """A detector's precision and recall on ``split``, as the epoch lines show them."""
    return precision_recall(record[f"{split}_precision"], record[f"{split}_recall"])


def epoch_line(record, eta_schedule, eta0):
    """Chapter 1's line: test figure first (with a detector's precision and
    recall), then validation, train cost, time."""
    extras = [scores(record, "test")] if "test_precision" in record else []
    extras.append(f"validation {record['validation_correct']} / {record['validation_total']}")
    if "train_cost" in record:
        extras.append(f"train cost {record['train_cost']:.4f}")
    if eta_schedule and record["eta"] != eta0:
        extras.append(f"eta {record['eta']:g}")
    extras.append(f"{record['seconds']:.2f} s")
    return (f"Epoch {record['epoch']}: {record['test_correct']} / {record['test_total']}  "
            f"({', '.join(extras)})")


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


def download_bar(name, total):
    """A tqdm bar of bytes for one file of a download (on a terminal only)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                leave=False, dynamic_ncols=True)


def first_run_mnist(data):
    """MNIST for a command that trains: on a machine without it, downloaded
    into the default directory first, saying so on stderr (with a progress
    bar on a terminal); never into a directory named by --data or $NN_GPU_DATA."""
    from ..data.download import first_run_data_dir  # urllib etc. only when needed

    def status(line):
        print(line, file=sys.stderr, flush=True)

    bars = download_bar if sys.stderr.isatty() else None
    return load_mnist(first_run_data_dir(data, say=status, progress=bars))


def training_backend(args, run, settings, parser):
    """--backend for this training, --threads applied: for a fully connected
    network, the choice ``Network.sgd`` makes for the same network and
    mini-batch (:func:`~nn_gpu.backends.choose_backend`: "auto" weighs the
    paths the capability table allows by the launch/FLOP model; the backend's
    reason says which and why)."""
    if run.kind == "conv":
        return apply_threads(get_backend(args.backend), args.threads, parser)
    backend = choose_backend(args.backend, training_plan(run.options, run.examples),
                             run.options["sizes"], settings.mini_batch_size, run.dtype,
                             run.method).backend
    return apply_threads(backend, args.threads, parser)


def build_network(run, backend):
    """The untrained network of ``run`` on ``backend`` (a resume then puts
    the checkpoint's parameters in)."""
    if run.kind == "conv":
        return ConvNetwork([layer_from_spec(spec) for spec in run.layers], backend=backend,
                           dtype=run.dtype, seed=run.seed)
    options = run.options
    return Network(options["sizes"], cost=options["cost"], backend=backend, dtype=run.dtype,
                   seed=run.seed, init=options["init"], activation=options["activation"])


def training_data(run, data):
    """(training, validation, test) of the run: MNIST (downloaded on a first
    run), the training set cut to --train-size or expanded, a detector's labels."""
    training, validation, test = first_run_mnist(data)
    training = training_subset(training, run.options["expand"], run.train_size)
    if run.digit is not None:
        training, validation, test = (one_vs_rest(split, run.digit)
                                      for split in (training, validation, test))
    return training, validation, test


def history_config(args, run, backend):
    """The "config" of the --history file: the run's settings and where it ran."""
    config = {"preset": run.preset, **run.options, "backend": backend.name, "dtype": run.dtype,
              "seed": run.seed, "method": run.method, "train_size": run.train_size,
              "train_examples": run.examples, "data": str(resolve_data_dir(args.data)),
              "digit": run.digit, "save_best": run.save_best}
    if run.kind == "conv":
        config["layers"] = run.layers
    if run.options["expand"]:
        cache = default_cache_dir()
        config["expand_cache"] = str(cache) if cache else None
    return config


def cmd_train(args, parser):
    """Train a network on MNIST, printing one line per epoch as the book does.

    The first figure of each epoch line is the test-set accuracy, as in
    Nielsen's network.py; the history file is rewritten after every epoch so
    an interrupted run keeps what it had.
    """
    run = plan_run(args, parser)
    if run.checkpoint is not None:
        run.checkpoint.check_writable()
    fileio.check_outputs([("--history", args.history), ("--save", args.save),
                          ("--checkpoint-dir", run.checkpoint and run.checkpoint.path)],
                         [("--layers", run.layers_file)])
    settings = run.settings()
    backend = training_backend(args, run, settings, parser)
    if run.checkpoint is not None:
        run.checkpoint.config = run.stored()
    history = {"config": history_config(args, run, backend),
               "epochs": [history_entry(record) for record in run.earlier]}
    say = (lambda *_: None) if args.quiet else (lambda line: print(line, flush=True))
    progress = EpochProgress(enabled=not args.quiet and sys.stderr.isatty())
    previous_sigterm = signal.signal(signal.SIGTERM, interrupt)
    try:
        training, validation, test = training_data(run, args.data)
        net = build_network(run, backend)
        if args.history:
            write_history(args.history, history)
        if run.earlier:
            say(f"Resuming after epoch {len(run.earlier)} from {run.checkpoint.path}"
                f"{resume.describe_changes(run.changes)}")
        say(describe_run(run, backend))
        if run.digit is not None:
            say(detector_baseline(run.digit, test[1]))
        records = net.sgd(training, settings=settings, test_data=test,
                          validation_data=validation,
                          callback=EpochReport(args.history, history, run, progress, say),
                          checkpoint=run.checkpoint, resume=bool(run.earlier), progress=progress)
    except KeyboardInterrupt:
        progress.close()
        return interrupted(len(history["epochs"]), args.history, run.checkpoint,
                           resume_command(args, run.checkpoint))
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    report(args, run, net, records, history, test, say)
    return 0


class EpochReport:
    """After each epoch: its line (and why training stopped, if it did), and
    the history file rewritten with it."""

    def __init__(self, path, history, run, progress, say):
        self.path, self.history, self.progress, self.say = path, history, progress, say
        self.eta_schedule, self.eta = run.options["eta_schedule"], run.options["eta"]

    def __call__(self, record):
        self.progress.close()
        self.say(epoch_line(record, self.eta_schedule, self.eta))
        if "stopped" in record:
            self.say(f"Stopped after epoch {record['epoch']}: {record['stopped']}")
        entry = history_entry(record)
        if self.path:  # written before counted, so Ctrl-C reports what the file holds
            write_history(self.path, {**self.history, "epochs": self.history["epochs"] + [entry]})
        self.history["epochs"].append(entry)


def resume_command(args, checkpoint):
    """The command that continues an interrupted run with the same outputs
    (--history, --save, --data as given: a checkpoint never chooses them)."""
    if checkpoint is None:
        return None
    words = [PROG, "train", "--resume", str(checkpoint.directory)]
    for flag, value in (("--data", args.data), ("--history", args.history),
                        ("--save", args.save)):
        if value is not None:
            words += [flag, str(value)]
    return shlex.join(words)


def report(args, run, net, records, history, test, say):
    """The end of a run: the best epochs, the weights kept, the model saved."""
    summary = []
    for split in ("test", "validation"):  # max: the first of equals, the earliest
        best = max(records, key=lambda r: r[f"{split}_accuracy"])
        detector = f", {scores(best, split)}" if run.digit is not None else ""
        summary.append(f"Best {split} accuracy: "
                       f"{percent(best[f'{split}_correct'], best[f'{split}_total'])} "
                       f"(epoch {best['epoch']}{detector})")
    kept_best = bool(run.options["early_stopping"] or run.save_best)
    # sgd put back the weights of the best validation epoch where asked to.
    kept_epoch = (max(records, key=lambda r: r["validation_accuracy"])["epoch"] if kept_best
                  else records[-1]["epoch"])
    if kept_best:
        correct, total = net.evaluate(test), len(test[1])
        summary.append(f"Test accuracy with the kept weights: {percent(correct, total)} "
                       f"(epoch {kept_epoch})")
        history["kept_weights"] = {"epoch": kept_epoch, "test_accuracy": correct / total}
        if args.history:
            write_history(args.history, history)
    if run.kind == "conv":
        summary.append(book_line(run, records))
    if args.save:
        if run.digit is not None:  # which digit the one output neuron stands for
            net.last_training["digit"] = run.digit
        net.save(args.save)
        which = ", the best validation accuracy" if kept_best else ""
        say(f"Model saved to {args.save} (epoch {kept_epoch}{which})")
    print("\n".join(summary), flush=True)


def book_line(run, records):
    """network3.py's figure, the test accuracy at the best validation epoch,
    beside the book's for a preset's own run."""
    epoch, _ = book_figure(records)
    best = records[epoch - 1]
    book = (f"; the book: {CONV_PRESETS[run.preset]['book_accuracy']:.2f}%"
            if run.uses_preset_settings() else "")
    first = max(records, key=lambda r: r["validation_accuracy"])["epoch"]
    tied = (f", the last of the equal epochs from {first}, as network3.py picks"
            if first != epoch else "")
    return (f"Test accuracy at the best validation epoch ({epoch}{tied}): "
            f"{percent(best['test_correct'], best['test_total'])}{book}")

def add_parser(commands):
    """Register ``train`` on the subparsers object of ``nn-gpu``'s parser."""
    train = commands.add_parser(
        "train", help="train a network on MNIST",
        description="Train on MNIST. The defaults reproduce chapter 1 of the book: "
                    "[784, 30, 10], 30 epochs, mini-batches of 10, eta 3.0, quadratic cost. "
                    "--preset NAME starts from one of the book's runs instead (list them "
                    f"with `{PROG} presets`); options given explicitly override the preset. "
                    "A convolutional network (--preset ch6-*, --layers FILE) takes --epochs, "
                    "--batch-size, --eta, --l2, --expand, --eta-schedule, --early-stopping "
                    "and --monitor.",
        epilog="Options marked (*) default to the preset's value when --preset is given. "
               "Exit status: 0 done; 1 a file or data problem, or training that diverged or "
               "is stuck at chance (accuracy no better than always answering the most "
               "frequent digit, cost not moving); 2 a usage error, or a --resume with no "
               "epoch left to train; 130 interrupted.")
    add_data(train)
    add_network_arguments(train)
    add_training_arguments(train, presets.TRAIN_DEFAULTS)
    add_run_arguments(train)
    train.set_defaults(func=functools.partial(cmd_train, parser=train))
    return train


def add_network_arguments(train):
    """What is trained: a preset, a layers file, the fully connected network's shape."""
    train.add_argument("--preset", choices=[*presets.PRESETS, *CONV_PRESETS], metavar="NAME",
                       help="start from a named set of options: "
                            f"{', '.join([*presets.PRESETS, *CONV_PRESETS])} (see `{PROG} "
                            "presets`; ch6-*: the book's convolutional networks)")
    train.add_argument("--layers", metavar="FILE.json",
                       help="train a convolutional network whose layers this JSON file "
                            "describes (a list like a ch6 preset's layers; see docs/conv.md)")
    # (*) options: default None here, resolved as explicit > preset > built-in.
    train.add_argument("--sizes", type=positive_int, nargs="+", metavar="N",
                       help="(*) layer widths, 784 first and 10 last (1 with --digit) "
                            "(default: 784 30 10; 784 30 1 with --digit)")
    train.add_argument("--digit", type=digit, metavar="D",
                       help="train a detector of the digit D instead: one output neuron, "
                            "a > 0.5 meaning 'a D', labels 1 for D and 0 for the other "
                            "digits; reports precision and recall and the accuracy of "
                            "always answering 'not a D' (the preset's or default sizes get "
                            "their last layer set to 1)")
    train.add_argument("--cost", choices=list(COSTS),
                       help="(*) quadratic or cross_entropy (sigmoid outputs), log_likelihood "
                            f"(softmax outputs) (default: {presets.TRAIN_DEFAULTS['cost']})")
    train.add_argument("--activation", choices=ACTIVATIONS,
                       help="(*) hidden-layer neurons (default: "
                            f"{presets.TRAIN_DEFAULTS['activation']})")
    train.add_argument("--init", choices=INITS,
                       help="(*) normal: N(0,1) weights as in the book (default); "
                            "scaled: N(0,1/n_in)")


def add_training_arguments(train, builtin):
    """How it is trained: the options a preset may set (``builtin``: their defaults)."""
    train.add_argument("--epochs", type=positive_int, metavar="N",
                       help=f"(*) default: {builtin['epochs']}")
    train.add_argument("--batch-size", type=positive_int, metavar="N",
                       help=f"(*) mini-batch size (default: {builtin['batch_size']})")
    train.add_argument("--eta", type=positive_float,
                       help=f"(*) learning rate (default: {builtin['eta']})")
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
                            f"{', '.join(MONITORS)} (default: all; a convolutional network: "
                            "evaluation-cost; the validation and test accuracies are always "
                            "measured)")


def add_run_arguments(train):
    """Where and how the run goes: device, numbers, data, checkpoints, outputs."""
    add_backend(train)
    add_threads(train)
    add_dtype(train)
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
                            "bit; it may change only "
                            f"{', '.join(map(resume.flag, resume.MAY_CHANGE))} "
                            "(--eta: for the epochs still to run)")
    train.add_argument("--history", metavar="FILE",
                       help="write per-epoch JSON history here, after every epoch (with "
                            "--resume: the checkpoint's earlier epochs too, so give the run's "
                            "own file to keep them all)")
    train.add_argument("--save", metavar="FILE", help="save the trained model here (the "
                       "last epoch's weights, or the kept ones: --early-stopping, --save-best)")
    train.add_argument("--save-best", action="store_true", default=None,
                       help="keep the weights of the epoch with the best validation accuracy "
                            "and save those (needs --save)")
    train.add_argument("--quiet", action="store_true", help="print only the summary at the end")
