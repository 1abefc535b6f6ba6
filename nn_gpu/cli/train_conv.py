"""``nn-gpu train --preset ch6-...`` or ``--layers FILE``: the book's
chapter-6 convolutional networks (:mod:`nn_gpu.convnet`), one line per epoch.

A conv preset (or a JSON file of layers, :func:`~nn_gpu.presets.convnet.read_layers`)
fixes the layers; ``--epochs``, ``--batch-size``, ``--eta``, ``--l2`` and
``--expand`` override its training options, and the options of the fully
connected networks (``--sizes``, ``--cost``, ...) are refused. The line
ending the run is the book's figure: the test accuracy of the epoch with the
best validation accuracy.
"""

import signal

from ..convnet.layers import layer_from_spec
from ..convnet.network import ConvNetwork
from ..data.expand import COPIES, training_subset
from ..data.mnist import TRAINING_SIZE, load_mnist, resolve_data_dir
from ..io.history import history_entry, write_history
from ..options import fresh_seed
from ..presets.convnet import CONV_DEFAULTS, CONV_PRESETS, book_figure, read_layers
from ..training.checkpoint import Checkpoint
from .common import CliError, check_batch_fits, check_output_path, interrupt, interrupted, percent

#: ``train`` options a conv preset may take from the command line.
CONV_OPTIONS = ("epochs", "batch_size", "eta", "l2", "expand")
#: ``train`` options of the fully connected networks only.
MLP_OPTIONS = ("sizes", "cost", "activation", "init", "l1", "momentum", "dropout",
               "eta_schedule", "early_stopping", "monitor", "digit")


def is_conv_run(args):
    """Whether ``train`` runs a conv network: a conv preset, ``--layers``,
    or the checkpoint resumed holds one."""
    if args.preset in CONV_PRESETS or args.layers:
        return True
    if args.resume:
        config = Checkpoint(args.resume).read_metadata().get("config") or {}
        return "conv" in config
    return False


def resolve_conv_options(args):
    """(what: {"preset", "layers"}, options, checkpoint or None, earlier epochs)."""
    if args.resume:
        if args.checkpoint_dir and args.checkpoint_dir != args.resume:
            args.parser.error("--resume DIR already checkpoints into DIR; drop --checkpoint-dir")
        checkpoint = Checkpoint(args.resume)
        meta = checkpoint.read_metadata()
        config = meta["config"]
        for key in ("seed", "dtype", "train_size"):
            setattr(args, key, config.get(key))
        options = dict(config["options"])
        if args.epochs is not None:
            options["epochs"] = args.epochs
        return config["conv"], options, checkpoint, meta["state"].get("history", [])
    if args.layers and args.preset:
        args.parser.error("--layers describes the whole network: drop --preset")
    given = [f"--{key.replace('_', '-')}" for key in MLP_OPTIONS
             if getattr(args, key, None) is not None]
    if given or args.method != "batched":
        args.parser.error(f"{(given or ['--method'])[0]} does not apply to a convolutional "
                          f"network (its layers are fixed by --preset or --layers); it takes "
                          f"--epochs, --batch-size, --eta, --l2 and --expand")
    if args.layers:
        what = {"preset": None, "layers": [layer.spec() for layer in read_layers(args.layers)]}
        options = dict(CONV_DEFAULTS)
    else:
        what = {"preset": args.preset, "layers": CONV_PRESETS[args.preset]["layers"]}
        options = dict(CONV_PRESETS[args.preset]["options"])
    options.update({key: getattr(args, key) for key in CONV_OPTIONS
                    if getattr(args, key) is not None})
    checkpoint = None
    if args.checkpoint_dir:
        checkpoint = Checkpoint(args.checkpoint_dir)
        if checkpoint.exists():
            raise CliError(f"{checkpoint.path} already holds a checkpoint: continue it with "
                           f"--resume {args.checkpoint_dir}, or choose another directory")
    return what, options, checkpoint, []


def cmd_train_conv(args):
    what, options, checkpoint, earlier = resolve_conv_options(args)
    if args.seed is None and not args.resume:  # recorded, the seed drawn repeats the run
        args.seed = fresh_seed()
    name = what["preset"] or args.layers or "the network of the checkpoint"
    examples = (args.train_size or TRAINING_SIZE) * (COPIES if options["expand"] else 1)
    check_batch_fits(args.parser, "--batch-size", options["batch_size"], examples)
    check_output_path(args.history, "--history")
    check_output_path(args.save, "--save")
    say = (lambda *_: None) if args.quiet else (lambda line: print(line, flush=True))
    net = ConvNetwork([layer_from_spec(spec) for spec in what["layers"]], backend=args.backend,
                      dtype=args.dtype, seed=args.seed)
    if checkpoint is not None:
        checkpoint.config = {"conv": what, "options": options, "seed": args.seed,
                             "dtype": args.dtype, "train_size": args.train_size}
    history = {"config": {"preset": what["preset"], **options, "layers": what["layers"],
                          "backend": net.backend.name, "dtype": args.dtype, "seed": args.seed,
                          "train_size": args.train_size, "train_examples": examples,
                          "data": str(resolve_data_dir(args.data))},
               "epochs": [history_entry(record) for record in earlier]}
    previous_sigterm = signal.signal(signal.SIGTERM, interrupt)
    try:
        training, validation, test = load_mnist(args.data)
        training = training_subset(training, options["expand"], args.train_size)
        described = CONV_PRESETS[name]["description"] + "; " if name in CONV_PRESETS else ""
        say(f"Training {name} ({described}eta {options['eta']:g}, mini-batch "
            f"{options['batch_size']}, l2 {options['l2']:g}, {options['epochs']} epochs, "
            f"{examples} {'expanded ' if options['expand'] else ''}examples, {args.dtype}) "
            f"on {net.backend.name}: {net.backend.reason}")
        if earlier:
            say(f"Resuming after epoch {len(earlier)} from {checkpoint.path}")

        def after_epoch(record):
            say(f"Epoch {record['epoch']}: {record['test_correct']} / {record['test_total']}  "
                f"(validation {record['validation_correct']} / {record['validation_total']}, "
                f"{record['seconds']:.2f} s)")
            history["epochs"].append(history_entry(record))
            if args.history:
                write_history(args.history, history)

        records = net.sgd(training, options["epochs"], options["batch_size"], options["eta"],
                          test_data=test, validation_data=validation, l2=options["l2"],
                          callback=after_epoch, checkpoint=checkpoint, resume=bool(earlier))
    except KeyboardInterrupt:
        return interrupted(len(history["epochs"]), args.history, checkpoint)
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    if args.save:
        net.save(args.save)
        say(f"Model saved to {args.save}")
    epoch, _ = book_figure(records)
    best = records[epoch - 1]
    book = (f"; the book: {CONV_PRESETS[name]['book_accuracy']:.2f}%"
            if name in CONV_PRESETS else "")
    print(f"Test accuracy at the best validation epoch ({epoch}): "
          f"{percent(best['test_correct'], best['test_total'])}{book}", flush=True)
    return 0
