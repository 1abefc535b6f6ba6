"""What ``nn-gpu train`` runs, resolved and checked before any data is loaded.

A :class:`Run` comes from the command line -- a fully connected network
(``--sizes``, an MLP preset: :mod:`nn_gpu.presets.network`) or a
convolutional one (a ``ch6-*`` preset or ``--layers FILE``:
:mod:`nn_gpu.presets.convnet`) -- or, with ``--resume DIR``, from the
checkpoint's stored settings (:mod:`.resume`). Options resolve as explicit >
the preset's > built-in. Either kind is then checked the same way, a
problem with stored settings told as the checkpoint's.
"""

from dataclasses import dataclass, field

from ..backends import capabilities
from ..convnet.epoch import check_trainable
from ..convnet.layers import layer_from_spec
from ..convnet.network import ConvNetwork
from ..convnet.network import check_buildable as check_conv_buildable
from ..data.expand import COPIES
from ..data.mnist import TRAINING_SIZE
from ..errors import MemoryBudgetError, NNGpuError
from ..model.core import Plan
from ..model.costs import COSTS
from ..model.network import check_buildable, check_outputs
from ..options import BATCHED_ONLY, PATIENCE_OPTIONS, TrainingSettings, fresh_seed, off_if_zero
from ..presets import network as presets
from ..presets.convnet import CONV_DEFAULTS, CONV_PRESETS, read_layers
from ..training.checkpoint import Checkpoint
from ..training.loop import check_state
from . import resume
from .common import CliError, check_batch_fits, check_mnist_sizes

#: The training options of a conv run, and the built-in values of those its
#: preset (or, for --layers, CONV_DEFAULTS) does not set: validation and test
#: costs are measured (a conv network scores them in the accuracy's pass).
CONV_KEYS = ("epochs", "batch_size", "eta", "l2", "expand", "eta_schedule", "early_stopping",
             "monitor")
CONV_BUILTIN = {"eta_schedule": None, "early_stopping": None,
                "monitor": ["evaluation-accuracy", "evaluation-cost"]}
#: Options that shape a fully connected network, meaningless for a conv one.
NETWORK_OPTIONS = ("sizes", "cost", "activation", "init", "digit")
#: The flag behind each setting the capability table may refuse.
REFUSED_FLAGS = {"dropout": "--dropout", "l1": "--l1", "l2": "--l2", "momentum": "--momentum",
                 "activation": "--activation", "cost": "--cost", "dtype": "--dtype",
                 "layers": "--sizes"}


@dataclass
class Run:
    """One run of ``train``: ``kind`` "mlp" or "conv", its resolved options
    (a conv run's: :data:`CONV_KEYS`), the settings stored beside them, and
    where it continues from."""

    kind: str
    options: dict
    preset: str = None
    layers: list = None        # a conv run's layer descriptions
    layers_file: str = None    # --layers FILE (an input)
    dtype: str = "float32"
    seed: int = None
    method: str = "batched"
    train_size: int = None
    digit: int = None
    save_best: bool = False
    checkpoint: Checkpoint = None
    earlier: list = field(default_factory=list)   # the records of the epochs done
    changes: dict = field(default_factory=dict)   # flag -> (stored, new) on a resume

    @property
    def examples(self):
        return (self.train_size or TRAINING_SIZE) * (COPIES if self.options["expand"] else 1)

    @property
    def name(self):
        """What is trained, in a few words: the layer sizes, a conv preset or file."""
        if self.kind == "mlp":
            return str(self.options["sizes"])
        return self.preset or self.layers_file or f"a {len(self.layers)}-layer conv network"

    def settings(self):
        """The :class:`~nn_gpu.options.TrainingSettings` of the run."""
        return TrainingSettings.from_options(self.options, self.method, self.options["monitor"],
                                             keep_best=self.save_best)

    def stored(self):
        """The config a checkpoint keeps: the run's settings, with its own
        η (a resume's new --eta is for the epochs it runs)."""
        eta = self.changes.get("--eta", (self.options["eta"],))[0]
        config = {"options": {**self.options, "eta": eta}, "preset": self.preset,
                  "dtype": self.dtype, "seed": self.seed, "method": self.method,
                  "train_size": self.train_size, "digit": self.digit,
                  "save_best": self.save_best}
        if self.kind == "conv":
            config["layers"] = self.layers
        return config

    def uses_preset_settings(self):
        """Whether this is a preset's own run: its options, the whole training set."""
        if self.preset is None or self.train_size is not None or self.changes:
            return False
        preset = CONV_PRESETS.get(self.preset) or presets.PRESETS[self.preset]
        if self.options.get("eta_schedule") or self.options.get("early_stopping"):
            return False
        return all(self.options.get(key) == value for key, value in preset["options"].items())


def resolve_train_options(args):
    """A fully connected run's hyper-parameters: explicit options > the
    preset's > built-in."""
    options = presets.resolve(vars(args), args.preset)
    if args.digit is not None and args.sizes is None:
        options["sizes"] = options["sizes"][:-1] + [1]  # the detector's one output neuron
    return options


def conv_options(args, parser):
    """(options, layer descriptions) of a fresh conv run: explicit > the
    preset's (or CONV_DEFAULTS for --layers) > :data:`CONV_BUILTIN`."""
    if args.layers and args.preset:
        parser.error("--layers describes the whole network: drop --preset")
    refuse_network_options(args, parser)
    if args.layers:
        layers, chosen = layers_from_file(args.layers), CONV_DEFAULTS
    else:
        layers, chosen = CONV_PRESETS[args.preset]["layers"], CONV_PRESETS[args.preset]["options"]
    options = {**CONV_BUILTIN, **chosen}
    options.update({key: getattr(args, key) for key in CONV_KEYS if getattr(args, key) is not None})
    for key in PATIENCE_OPTIONS:
        options[key] = off_if_zero(options[key])
    return options, layers


def refuse_network_options(args, parser):
    """A usage error for options a convolutional network does not take."""
    for dest in NETWORK_OPTIONS:
        if getattr(args, dest) is not None:
            parser.error(f"{resume.flag(dest)} does not apply to a convolutional network: its "
                         "layers are fixed by --preset or --layers")
    for dest, reason in ConvNetwork.UNSUPPORTED.items():
        given = args.method != "batched" if dest == "method" else getattr(args, dest) is not None
        if given:
            parser.error(f"{resume.flag(dest)} does not apply to a convolutional network: "
                         f"{reason}")
    refuse_threads(args, parser)


def refuse_threads(args, parser):
    """A usage error for --threads with a convolutional network (fresh or resumed)."""
    if args.threads is not None:
        parser.error("--threads sets the BLAS threads of the fully connected network's "
                     "compiled CPU epoch; a convolutional network does not use it")


def layers_from_file(path):
    """The layer descriptions of ``--layers FILE``, checked: a readable JSON
    list of layers (see :func:`~nn_gpu.presets.convnet.read_layers`) that fits
    MNIST and this machine's memory; errors name the file."""
    try:
        layers = read_layers(path)
        check_mnist_sizes([layers[0].n_in] + [layer.n_out for layer in layers],
                          f"{path}: layer sizes")
    except (NNGpuError, ValueError) as exc:
        raise CliError(f"--layers {exc}") from None
    try:
        check_conv_buildable(layers)
    except MemoryBudgetError as exc:
        raise CliError(f"--layers {path}: {exc}") from None
    return [layer.spec() for layer in layers]


def fresh_run(args, parser):
    """The run the command line describes (no --resume)."""
    seed = fresh_seed() if args.seed is None else args.seed  # recorded, it repeats the run
    common = {"dtype": args.dtype, "seed": seed, "method": args.method,
              "train_size": args.train_size, "save_best": bool(args.save_best)}
    if args.save_best and not args.save:
        parser.error("--save-best chooses the weights --save writes: give --save FILE")
    if args.preset in CONV_PRESETS or args.layers:
        options, layers = conv_options(args, parser)
        run = Run("conv", options, args.preset, layers, args.layers, **common)
    else:
        run = Run("mlp", resolve_train_options(args), args.preset, digit=args.digit,
                  **common)
    if args.checkpoint_dir:
        run.checkpoint = Checkpoint(args.checkpoint_dir)
        if run.checkpoint.exists():
            raise CliError(f"{run.checkpoint.path} already holds a checkpoint: continue it "
                           f"with --resume {args.checkpoint_dir}, or choose another directory")
    return run


def resumed_run(args, parser):
    """The run checkpointed in ``--resume DIR``, with what the command line
    may change applied (see :mod:`.resume`)."""
    checkpoint = Checkpoint(args.resume)
    meta = checkpoint.read_metadata()
    check_state(checkpoint.path, meta["state"])
    kind = resume.kind_of(meta, checkpoint.path)
    if kind == "conv":
        refuse_threads(args, parser)
    keys = CONV_KEYS if kind == "conv" else tuple(presets.TRAIN_DEFAULTS)
    stored, changes = resume.read(parser, args, checkpoint.path, meta.get("config"), keys,
                                  conv=kind == "conv")
    options = {key: stored[key] for key in keys}
    options.update({key: getattr(args, key) for key in ("epochs", "eta")
                    if getattr(args, key) is not None})
    run = Run(kind, options, stored["preset"], stored.get("layers"), None,
              **{key: stored[key] for key in ("dtype", "seed", "method", "train_size",
                                             "digit", "save_best")},
              checkpoint=checkpoint, earlier=meta["state"]["history"], changes=changes)
    left = nothing_to_do(run, args.resume)
    if left:
        parser.error(left)
    return run


def nothing_to_do(run, directory):
    """Why a resumed run has no epoch left to train, or None."""
    done = len(run.earlier)
    if run.earlier and "stopped" in run.earlier[-1]:
        return (f"--resume {directory}: the run stopped after epoch {done} "
                f"({run.earlier[-1]['stopped']}); there is nothing left to train")
    if done >= run.options["epochs"]:
        return (f"--resume {directory}: the checkpoint already holds {done} epochs and the run "
                f"has {run.options['epochs']} in all, so there is nothing to train; give "
                f"--epochs N with N > {done} to train on")
    return None


def plan_run(args, parser):
    """The :class:`Run` of ``train``'s command line, checked (see :func:`check_run`)."""
    if args.resume and args.checkpoint_dir and args.resume != args.checkpoint_dir:
        parser.error("--resume DIR already checkpoints into DIR; drop --checkpoint-dir")
    if args.resume:
        run = resumed_run(args, parser)
        check_run(run, resume.Blame(run.checkpoint.path))
    else:
        run = fresh_run(args, parser)
        check_run(run, parser)
    return run


def check_run(run, parser):
    """Whether the run can train MNIST here: sizes, the mini-batch against the
    training set, what the method supports, memory. Usage errors go to
    ``parser`` (a :class:`resume.Blame` for a checkpoint's settings)."""
    options = run.options
    check_batch_fits(parser, "--batch-size", options["batch_size"], run.examples)
    if run.kind == "conv":
        layers = [layer_from_spec(spec) for spec in run.layers]
        check_mnist_sizes([layers[0].n_in] + [layer.n_out for layer in layers],
                          f"{run.name}: layer sizes", parser)
        try:
            check_trainable(layers, options["batch_size"], run.dtype, run.name)
        except MemoryBudgetError as exc:
            raise CliError(str(exc)) from None
        return
    check_mlp(run, parser)


def check_mlp(run, parser):
    """:func:`check_run` for a fully connected network."""
    options, detector = run.options, run.digit is not None
    sizes = options["sizes"]
    if len(sizes) < 2:
        parser.error("--sizes needs at least two layers (input and output)")
    check_mnist_sizes(sizes, "--sizes", parser, detector=detector)
    if detector:
        try:
            check_outputs(COSTS[options["cost"]], 1)
        except NNGpuError as exc:
            parser.error(f"--digit: {exc}")
    if run.method == "per_example":
        refused = capabilities.refusal("per_example", training_plan(options, run.examples),
                                       run.dtype)
        if refused:
            parser.error(f"--method per_example cannot train with {refused.subject} "
                         f"({REFUSED_FLAGS.get(refused.option, '--method')}): {refused.why}; "
                         "use --method batched")
    check_buildable(sizes)


def training_plan(options, examples):
    """The :class:`~nn_gpu.model.core.Plan` of a fully connected run's
    resolved options: what the capability table and the backend choice read."""
    cost = COSTS[options["cost"]]
    kinds = (options["activation"],) * (len(options["sizes"]) - 2) + (cost.output_activation,)
    return Plan(cost=cost, kinds=kinds, eta=options["eta"], train_size=examples,
                **{key: options[key] for key in BATCHED_ONLY})
