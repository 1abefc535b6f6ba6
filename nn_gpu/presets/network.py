"""Named sets of ``nn-gpu train`` options: the book's runs, and our best MLP.

``nn-gpu train --preset NAME`` starts from a preset's values; any option
given on the command line overrides them, and options neither gives take
the built-in :data:`TRAIN_DEFAULTS` (chapter 1 of the book). ``nn-gpu
presets`` prints the table, with the accuracy the book reports for each run.

Each preset is a dict: ``description`` (one line), ``book_accuracy`` (the
percentage the book reports, or None), ``book_split`` (the data set that
figure was measured on: ``"test"`` or ``"validation"``, or None) and
``options``, the ``train`` options it sets, keyed like :data:`TRAIN_DEFAULTS`.

The book's figures come from single runs of Nielsen's code; another seed
lands within a few tenths of a percent of them, on either side.
"""

from ..data.mnist import NUM_CLASSES, PIXELS
from ..options import PATIENCE_OPTIONS, off_if_zero
from . import named

#: The built-in value of every option a preset may set (argparse dest names):
#: chapter 1's network. ``monitor`` lists what is measured after each epoch
#: (the validation and test accuracies always are).
TRAIN_DEFAULTS = {
    "sizes": [PIXELS, 30, NUM_CLASSES],
    "epochs": 30,
    "batch_size": 10,
    "eta": 3.0,
    "cost": "quadratic",
    "activation": "sigmoid",
    "init": "normal",
    "l2": 0.0,
    "l1": 0.0,
    "momentum": 0.0,
    "dropout": 0.0,
    "eta_schedule": None,
    "early_stopping": None,
    "expand": False,
    "monitor": ["training-cost", "training-accuracy", "evaluation-cost",
                "evaluation-accuracy"],
}

_CH1_30 = {"sizes": [PIXELS, 30, NUM_CLASSES], "cost": "quadratic", "activation": "sigmoid",
           "batch_size": 10, "eta": 3.0, "epochs": 30, "init": "normal"}
_CH3_L2 = {"sizes": [PIXELS, 100, NUM_CLASSES], "cost": "cross_entropy", "activation": "sigmoid",
           "l2": 5.0, "eta": 0.5, "batch_size": 10, "epochs": 30, "init": "normal"}

PRESETS = {
    "ch1-30": {
        "description": "chapter 1, network.py: 30 sigmoid hidden neurons, quadratic cost "
                       "(book: best of 30 epochs)",
        "book_accuracy": 95.42, "book_split": "test",
        "options": dict(_CH1_30),
    },
    "ch1-100": {
        "description": "chapter 1 with 100 hidden neurons (book: best of 30 epochs)",
        "book_accuracy": 96.59, "book_split": "test",
        "options": {**_CH1_30, "sizes": [PIXELS, 100, NUM_CLASSES]},
    },
    "ch3-l2": {
        "description": "chapter 3, network2.py: cross-entropy, L2 regularisation "
                       "lambda 5.0, N(0, 1) weights (book: after 30 epochs)",
        "book_accuracy": 97.92, "book_split": "validation",
        "options": dict(_CH3_L2),
    },
    "ch3-l2-60": {
        "description": "ch3-l2 tuned a little: eta 0.1 for 60 epochs "
                       "(book: after 60 epochs)",
        "book_accuracy": 98.04, "book_split": "validation",
        "options": {**_CH3_L2, "eta": 0.1, "epochs": 60},
    },
    "best-mlp": {
        "description": "our best plain MLP (not in the book): 800 ReLU, softmax, "
                       "momentum 0.9, dropout 0.5, expanded data, eta halved after "
                       "3 flat epochs; ~5 minutes on a 2-core CPU",
        "book_accuracy": None, "book_split": None,
        "options": {"sizes": [PIXELS, 800, NUM_CLASSES], "cost": "log_likelihood",
                    "activation": "relu",
                    "init": "scaled", "batch_size": 100, "eta": 0.05, "momentum": 0.9,
                    "dropout": 0.5, "expand": True, "eta_schedule": 3, "epochs": 30},
    },
}


def get_preset(name):
    """The preset called ``name``; one clear error otherwise."""
    return named(PRESETS, name)


def resolve(explicit, preset=None):
    """Every option of :data:`TRAIN_DEFAULTS`, resolved: a value given in
    ``explicit`` (not None) wins, then the preset's, then the built-in one;
    a patience option set to 0 ("off") becomes None."""
    chosen = get_preset(preset)["options"] if preset is not None else {}
    resolved = {}
    for key, default in TRAIN_DEFAULTS.items():
        value = explicit.get(key)
        if value is None:
            value = chosen.get(key, default)
        resolved[key] = list(value) if isinstance(value, list) else value
    for key in PATIENCE_OPTIONS:
        resolved[key] = off_if_zero(resolved[key])
    return resolved


def as_arguments(options):
    """``train`` command-line flags equivalent to a dict of options."""
    words = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else f"--no-{key.replace('_', '-')}")
        elif isinstance(value, list):
            words += [flag, *map(str, value)]
        elif value is not None:
            words += [flag, str(value)]
    return words


def book_result(preset):
    """The book's figure as text, e.g. ``"95.42% test"``, or ``"-"``."""
    if preset["book_accuracy"] is None:
        return "-"
    return f"{preset['book_accuracy']:.2f}% {preset['book_split']}"


def table():
    """The presets as text: name, the book's figure, description, and flags."""
    width = max(map(len, PRESETS))
    book_width = max(len(book_result(p)) for p in PRESETS.values())
    lines = [f"{'PRESET':<{width}}  {'BOOK':<{book_width}}  DESCRIPTION"]
    for name, preset in PRESETS.items():
        lines.append(f"{name:<{width}}  {book_result(preset):<{book_width}}  "
                     f"{preset['description']}")
        lines.append(f"{'':<{width}}  {'':<{book_width}}  "
                     + " ".join(as_arguments(preset["options"])))
    return "\n".join(lines)
