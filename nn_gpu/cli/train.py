"""``nn-gpu train``: train a network on MNIST, one line per epoch as the book.

The options resolve as explicit > the preset's > built-in
(:mod:`nn_gpu.presets.network`), are checked before any data is loaded, and become
one :class:`~nn_gpu.options.TrainingSettings` for :meth:`Network.sgd`.
"""

import argparse
import signal
import sys

from ..backends import capabilities, choose_backend
from ..data.expand import COPIES, default_cache_dir, training_subset
from ..data.mnist import TRAINING_SIZE, load_mnist, one_vs_rest, resolve_data_dir
from ..errors import NNGpuError
from ..io import fileio
from ..io.history import history_entry, write_history
from ..model.core import Plan
from ..model.costs import COSTS
from ..model.network import Network, check_buildable, check_outputs
from ..options import (
    ACTIVATIONS,
    BATCHED_ONLY,
    INITS,
    METHODS,
    MONITORS,
    TrainingSettings,
    fresh_seed,
)
from ..presets import network as presets
from ..presets.convnet import CONV_PRESETS
from ..training.checkpoint import Checkpoint
from ..training.loop import check_state
from . import resume
from .common import (
    PROG,
    CliError,
    add_backend,
    add_data,
    add_dtype,
    add_threads,
    always_no,
    apply_threads,
    check_batch_fits,
    check_mnist_sizes,
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
from .train_conv import cmd_train_conv, is_conv_run


def resolve_train_options(args):
    """The run's hyper-parameters: explicit options > the preset's > built-in,
    checked before any data is loaded."""
    parser = args.parser
    options = presets.resolve(vars(args), args.preset)
    if args.digit is not None and args.sizes is None:
        options["sizes"] = options["sizes"][:-1] + [1]  # the detector's one output neuron
    sizes = options["sizes"]
    if len(sizes) < 2:
        parser.error("--sizes needs at least two layers (input and output)")
    check_mnist_sizes(sizes, "--sizes", parser, detector=args.digit is not None)
    if args.digit is not None:
        try:
            check_outputs(COSTS[options["cost"]], 1)
        except NNGpuError as exc:
            parser.error(f"--digit: {exc}")
    examples = (args.train_size or TRAINING_SIZE) * (COPIES if options["expand"] else 1)
    check_batch_fits(parser, "--batch-size", options["batch_size"], examples)
    if args.method == "per_example":
        refused = capabilities.refusal("per_example", training_plan(options, examples),
                                       args.dtype)
        if refused:
            parser.error(f"--method per_example cannot train with {refused.subject} "
                         f"({REFUSED_FLAGS.get(refused.option, '--method')}): {refused.why}; "
                         "use --method batched")
    return options, examples


#: The flag behind each setting the capability table may refuse.
REFUSED_FLAGS = {"dropout": "--dropout", "l1": "--l1", "l2": "--l2", "momentum": "--momentum",
                 "activation": "--activation", "cost": "--cost", "dtype": "--dtype",
                 "layers": "--sizes"}


def training_plan(options, examples):
    """The :class:`~nn_gpu.model.core.Plan` of resolved ``train`` options:
    what the capability table and the backend choice read."""
    cost = COSTS[options["cost"]]
    kinds = (options["activation"],) * (len(options["sizes"]) - 2) + (cost.output_activation,)
    return Plan(cost=cost, kinds=kinds, eta=options["eta"], train_size=examples,
                **{key: options[key] for key in BATCHED_ONLY})


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


def open_checkpoint(args):
    """(Checkpoint or None, the history of epochs already done, the changes
    the command line makes to a resumed run: flag -> (old, new)).

    ``--resume DIR`` takes the run's settings from its checkpoint, checked,
    and only those of :data:`resume.MAY_CHANGE` from the command line (see
    :mod:`nn_gpu.cli.resume`); ``--checkpoint-dir DIR`` starts a new run and
    refuses to overwrite another run's checkpoint."""
    if args.resume and args.checkpoint_dir and args.resume != args.checkpoint_dir:
        args.parser.error("--resume DIR already checkpoints into DIR; drop --checkpoint-dir")
    if args.resume:
        checkpoint = Checkpoint(args.resume)
        meta = checkpoint.read_metadata()
        check_state(checkpoint.path, meta["state"])
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


def training_backend(args, options, examples, settings):
    """--backend for this training: the choice ``Network.sgd`` makes for the
    same network and mini-batch (:func:`~nn_gpu.backends.choose_backend`:
    "auto" weighs the paths the capability table allows by the launch/FLOP
    model; the backend's reason says which and why)."""
    return choose_backend(args.backend, training_plan(options, examples), options["sizes"],
                          settings.mini_batch_size, args.dtype, args.method).backend


def cmd_train(args):
    """Train a network on MNIST, printing one line per epoch as the book does.

    The first figure of each epoch line is the test-set accuracy, as in
    Nielsen's network.py; the history file is rewritten after every epoch so
    an interrupted run keeps what it had.
    """
    if is_conv_run(args):
        return cmd_train_conv(args)
    checkpoint, earlier, changes = open_checkpoint(args)
    if args.seed is None and not args.resume:  # recorded, the seed drawn repeats the run
        args.seed = fresh_seed()
    options, examples = resolve_train_options(args)
    check_buildable(options["sizes"])
    if checkpoint is not None:
        checkpoint.check_writable()
    fileio.check_outputs([("--history", args.history), ("--save", args.save),
                          ("--checkpoint-dir", checkpoint and checkpoint.path)])
    settings = TrainingSettings.from_options(options, args.method, options["monitor"])
    backend = apply_threads(training_backend(args, options, examples, settings), args.threads,
                            args.parser)
    say = (lambda *_: None) if args.quiet else (lambda line: print(line, flush=True))
    preset = getattr(args, "stored_preset", args.preset)
    if checkpoint is not None:  # the run's settings: a new --eta is for this part only
        stored_eta = changes.get("--eta", (options["eta"],))[0]
        checkpoint.config = {"options": {**options, "eta": stored_eta}, "preset": preset,
                             "dtype": args.dtype, "seed": args.seed, "method": args.method,
                             "train_size": args.train_size, "digit": args.digit}

    history = {"config": {
        "preset": preset, **options, "backend": backend.name, "dtype": args.dtype,
        "seed": args.seed, "method": args.method, "train_size": args.train_size,
        "train_examples": examples, "data": str(resolve_data_dir(args.data)),
        "digit": args.digit,
    }, "epochs": [history_entry(record) for record in earlier]}
    progress = EpochProgress(enabled=not args.quiet and sys.stderr.isatty())
    previous_sigterm = signal.signal(signal.SIGTERM, interrupt)
    try:
        training, validation, test = first_run_mnist(args.data)
        if options["expand"]:
            cache = default_cache_dir()
            history["config"]["expand_cache"] = str(cache) if cache else None
        training = training_subset(training, options["expand"], args.train_size)
        if args.digit is not None:
            training, validation, test = (one_vs_rest(data, args.digit)
                                          for data in (training, validation, test))
        net = Network(options["sizes"], cost=options["cost"], backend=backend,
                      dtype=args.dtype, seed=args.seed, init=options["init"],
                      activation=options["activation"])
        if args.history:
            write_history(args.history, history)
        if args.resume:
            say(f"Resuming after epoch {len(earlier)} from {checkpoint.path}"
                f"{resume.describe_changes(changes)}")
        say(describe_run(args, options, examples, backend))
        if args.digit is not None:
            say(detector_baseline(args.digit, test[1]))

        def after_epoch(record):
            progress.close()
            say(epoch_line(record, options["eta_schedule"], options["eta"]))
            if "stopped" in record:
                say(f"Stopped after epoch {record['epoch']}: {record['stopped']}")
            entry = history_entry(record)
            if args.history:  # written before counted, so Ctrl-C reports what the file holds
                write_history(args.history, {**history, "epochs": history["epochs"] + [entry]})
            history["epochs"].append(entry)

        records = net.sgd(training, settings=settings, test_data=test,
                          validation_data=validation, callback=after_epoch,
                          checkpoint=checkpoint, resume=bool(args.resume), progress=progress)
    except KeyboardInterrupt:
        progress.close()
        return interrupted(len(history["epochs"]), args.history, checkpoint)
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)

    summary = []
    for split in ("test", "validation"):  # max: the first of equals, the earliest
        best = max(records, key=lambda r: r[f"{split}_accuracy"])
        detector = f", {scores(best, split)}" if args.digit is not None else ""
        summary.append(f"Best {split} accuracy: "
                       f"{percent(best[f'{split}_correct'], best[f'{split}_total'])} "
                       f"(epoch {best['epoch']}{detector})")
    if options["early_stopping"]:
        # sgd put back the weights of the best validation epoch: score those.
        kept_epoch = max(records, key=lambda r: r["validation_accuracy"])["epoch"]
        correct, total = net.evaluate(test), len(test[1])
        summary.append(f"Test accuracy with the kept weights: {percent(correct, total)} "
                       f"(epoch {kept_epoch})")
        history["kept_weights"] = {"epoch": kept_epoch, "test_accuracy": correct / total}
        if args.history:
            write_history(args.history, history)
    if args.save:
        if args.digit is not None:  # which digit the one output neuron stands for
            net.last_training["digit"] = args.digit
        net.save(args.save)
        say(f"Model saved to {args.save}")
    print("\n".join(summary), flush=True)
    return 0


def add_parser(commands):
    """Register ``train`` on the subparsers object of ``nn-gpu``'s parser."""
    builtin = presets.TRAIN_DEFAULTS
    train = commands.add_parser(
        "train", help="train a network on MNIST",
        description="Train on MNIST. The defaults reproduce chapter 1 of the book: "
                    "[784, 30, 10], 30 epochs, mini-batches of 10, eta 3.0, quadratic cost. "
                    "--preset NAME starts from one of the book's runs instead (list them "
                    f"with `{PROG} presets`); options given explicitly override the preset.",
        epilog="Options marked (*) default to the preset's value when --preset is given.")
    add_data(train)
    train.add_argument("--preset", choices=[*presets.PRESETS, *CONV_PRESETS], metavar="NAME",
                       help="start from a named set of options: "
                            f"{', '.join([*presets.PRESETS, *CONV_PRESETS])} (see `{PROG} "
                            "presets`; ch6-*: the book's convolutional networks)")
    train.add_argument("--layers", metavar="FILE.json",
                       help="train a convolutional network whose layers this JSON file "
                            "describes (a list like a ch6 preset's layers; see the README)")
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
    train.add_argument("--history", metavar="FILE", help="write per-epoch JSON history here")
    train.add_argument("--save", metavar="FILE", help="save the trained model here")
    train.add_argument("--quiet", action="store_true", help="print only the summary at the end")
    train.set_defaults(func=cmd_train, parser=train)
    return train
