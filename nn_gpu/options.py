"""The training options, defined once: their names, defaults, checks and
what "off" means.

Every way in -- ``Network.sgd``'s keywords, ``nn-gpu train``'s flags, the
presets, a sweep's space file, the scikit-learn estimator, a checkpoint being
resumed -- ends in a :class:`TrainingSettings`, and every value is checked by
the validators below, so each rule (and its message) exists once. The command
line's argument types are these validators applied to the parsed text.

A validator takes the value and ``what`` (the name to put in the message),
returns the value normalised, and raises one-line
:class:`~nn_gpu.errors.InvalidArgumentError` otherwise. A message without
``what`` ("must be a positive integer, got 0") is what ``argparse`` shows
after the flag.
"""

import math
import reprlib
from dataclasses import asdict, dataclass

import numpy

from .errors import InvalidArgumentError

ACTIVATIONS = ("sigmoid", "tanh", "relu")
DTYPES = ("float32", "float64")
INITS = ("normal", "scaled")
METHODS = ("batched", "per_example")
#: The two options that stop or slow training on a flat validation accuracy:
#: a number of epochs, or None (off). 0 also means off where a user types it.
PATIENCE_OPTIONS = ("eta_schedule", "early_stopping")
#: The yes/no options.
FLAGS = ("keep_best", "monitor_training_cost", "monitor_training_accuracy",
         "monitor_evaluation_cost")
#: The options that the book's per-example loop does not have.
BATCHED_ONLY = ("l2", "l1", "momentum", "dropout")


def _fail(what, problem):
    raise InvalidArgumentError(f"{what} {problem}".strip())


# -------------------------------------------------------------- validators
def positive_int(value, what=""):
    """An int >= 1 (layer sizes, epochs, mini-batch size, counts)."""
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < 1:
        _fail(what, f"must be a positive integer, got {value!r}")
    return int(value)


def number_in(value, what="", low=0.0, high=math.inf, low_open=False):
    """A finite real number from ``low`` (excluded if ``low_open``) to
    ``high`` (always excluded), as a float."""
    ok = (not isinstance(value, bool) and isinstance(value, (int, float, numpy.floating))
          and math.isfinite(value) and (low < value if low_open else low <= value)
          and value < high)
    if not ok:
        _fail(what, f"must be a number in {'(' if low_open else '['}{low:g}, {high:g}), "
                    f"got {value!r}")
    return float(value)


def positive_number(value, what=""):
    """η: a finite number > 0."""
    return number_in(value, what, low_open=True)


def non_negative_number(value, what=""):
    """λ of L2 and L1: a finite number >= 0."""
    return number_in(value, what)


def unit_interval(value, what=""):
    """Momentum μ and the dropout probability: a number in [0, 1)."""
    return number_in(value, what, high=1.0)


def patience(value, what=""):
    """A number of epochs >= 1, or None: off."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(what, f"must be a positive number of epochs, got {value!r}")
    return value


def seed(value, what="seed"):
    """A random seed: None (a fresh one) or an int >= 0, as NumPy's generators take."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)) or value < 0:
        _fail(what, f"must be a whole number >= 0, got {reprlib.repr(value)}")
    return int(value)


def flag(value, what=""):
    """A yes/no option: True or False."""
    if not isinstance(value, bool):
        _fail(what, f"must be True or False, got {reprlib.repr(value)}")
    return value


def off_if_zero(value):
    """A patience option as typed (``--eta-schedule off`` is 0) or resolved: 0 -> None."""
    return value or None


def choice(value, choices, what):
    """One of ``choices``."""
    if value not in choices:
        raise InvalidArgumentError(f"unknown {what} {value!r}; choose one of "
                                   f"{', '.join(choices)}")
    return value


def dtype(value):
    """A float dtype the networks support, as a numpy dtype."""
    try:
        name = numpy.dtype(value).name
    except TypeError:
        name = value
    return numpy.dtype(choice(name, DTYPES, "dtype"))


def batch_fits(mini_batch_size, examples, what="mini_batch_size"):
    """A mini-batch can hold at most the whole training set."""
    if mini_batch_size > examples:
        _fail(what, f"{mini_batch_size} is larger than the training set ({examples} examples)")
    return mini_batch_size


# ---------------------------------------------------------------- settings
@dataclass(frozen=True)
class TrainingSettings:
    """How ``Network.sgd`` trains: every option checked when it is made.

    ``eta_schedule`` / ``early_stopping`` are a number of epochs, or None
    (off); ``keep_best`` ends training with the weights of the epoch of best
    validation accuracy (as early stopping does); ``monitor_*`` say what is
    measured after each epoch besides the validation and test accuracies.
    """

    epochs: int
    mini_batch_size: int
    eta: float
    method: str = "batched"
    l2: float = 0.0
    l1: float = 0.0
    momentum: float = 0.0
    dropout: float = 0.0
    eta_schedule: int = None
    early_stopping: int = None
    keep_best: bool = False
    monitor_training_cost: bool = False
    monitor_training_accuracy: bool = False
    monitor_evaluation_cost: bool = False

    def __post_init__(self):
        checked = {
            "epochs": positive_int(self.epochs, "epochs"),
            "mini_batch_size": positive_int(self.mini_batch_size, "mini_batch_size"),
            "eta": positive_number(self.eta, "eta"),
            "l2": non_negative_number(self.l2, "l2 (λ)"),
            "l1": non_negative_number(self.l1, "l1 (λ)"),
            "momentum": unit_interval(self.momentum, "momentum"),
            "dropout": unit_interval(self.dropout, "dropout"),
            "eta_schedule": patience(self.eta_schedule, "eta_schedule"),
            "early_stopping": patience(self.early_stopping, "early_stopping"),
            "method": choice(self.method, METHODS, "method"),
            **{name: flag(getattr(self, name), name) for name in FLAGS},
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def regularisation(self):
        """l2, l1, momentum and dropout: what a training step needs besides η."""
        return {key: getattr(self, key) for key in BATCHED_ONLY}

    def as_dict(self):
        return asdict(self)

    @classmethod
    def from_options(cls, options, method="batched", monitor=(), keep_best=False):
        """The settings of resolved ``train`` options (see :mod:`nn_gpu.presets.network`):
        ``batch_size`` is the mini-batch size, 0 is off, ``monitor`` names
        the extra measurements (``training-cost``...); options a network
        kind leaves out (a conv run's ``l1``) are off."""
        return cls(epochs=options["epochs"], mini_batch_size=options["batch_size"],
                   eta=options["eta"], method=method, keep_best=keep_best,
                   **{key: options.get(key, 0.0) for key in BATCHED_ONLY},
                   **{key: off_if_zero(options[key]) for key in PATIENCE_OPTIONS},
                   **{MONITORS[name]: True for name in monitor if MONITORS.get(name)})


#: ``train --monitor`` choice -> the TrainingSettings flag it turns on
#: ("evaluation-accuracy", the validation and test accuracies, is always
#: measured: the epoch line, the eta schedule and early stopping need it).
MONITORS = {"training-cost": "monitor_training_cost",
            "training-accuracy": "monitor_training_accuracy",
            "evaluation-cost": "monitor_evaluation_cost",
            "evaluation-accuracy": None}
