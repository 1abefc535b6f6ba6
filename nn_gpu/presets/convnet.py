"""The book's chapter-6 runs, one preset each.

Each preset: ``description``, ``book_accuracy`` (the test accuracy the book
reports: network3.py prints the test accuracy of the epoch with the best
validation accuracy, and so does :func:`book_figure`), ``layers`` (layer
descriptions, as :meth:`~nn_gpu.convnet.layers.FullyConnectedLayer.spec`
writes them) and ``options`` (the ``sgd`` settings, plus ``expand``: train on
the expanded data of :mod:`nn_gpu.data.expand`).

λ is the library's (see :mod:`nn_gpu.convnet.network`): network3.py's
λ = 0.1 at mini-batch 10 is ``l2`` = 1.0 here.
"""

import json

from ..convnet.layers import layer_from_spec
from ..convnet.network import ConvNetwork, check_layers
from ..errors import InvalidArgumentError
from ..io.fileio import read_input
from . import named

#: The largest layers file read: a description of a few layers is a few
#: hundred bytes.
MAX_LAYERS_BYTES = 1 << 20


def _conv(image_shape, filter_shape, activation):
    return {"kind": "conv_pool", "image_shape": image_shape, "filter_shape": filter_shape,
            "pool": 2, "activation": activation}


def _full(n_in, n_out, activation, p_dropout=0.0):
    return {"kind": "fully_connected", "n_in": n_in, "n_out": n_out, "activation": activation,
            "p_dropout": p_dropout}


def _softmax(n_in, p_dropout=0.0):
    return {"kind": "softmax", "n_in": n_in, "n_out": 10, "p_dropout": p_dropout}


def _two_conv(activation):
    return [_conv([1, 28, 28], [20, 1, 5, 5], activation),
            _conv([20, 12, 12], [40, 20, 5, 5], activation)]


#: The training options of network3.py's first runs: those of ``train --layers FILE``.
CONV_DEFAULTS = {"batch_size": 10, "epochs": 60, "eta": 0.1, "l2": 0.0, "expand": False}
_RELU = {**CONV_DEFAULTS, "eta": 0.03, "l2": 1.0}  # the book's λ = 0.1 (see above)

CONV_PRESETS = {
    "ch6-conv1": {
        "description": "one conv-pool layer (20 5x5 filters, 2x2 max-pooling), 100 sigmoid "
                       "neurons, softmax",
        "book_accuracy": 98.78,
        "layers": [_conv([1, 28, 28], [20, 1, 5, 5], "sigmoid"),
                   _full(20 * 12 * 12, 100, "sigmoid"), _softmax(100)],
        "options": dict(CONV_DEFAULTS),
    },
    "ch6-conv2": {
        "description": "two conv-pool layers (20 then 40 5x5 filters), 100 sigmoid neurons, "
                       "softmax",
        "book_accuracy": 99.06,
        "layers": [*_two_conv("sigmoid"), _full(40 * 4 * 4, 100, "sigmoid"), _softmax(100)],
        "options": dict(CONV_DEFAULTS),
    },
    "ch6-relu": {
        "description": "ch6-conv2 with ReLU neurons, eta 0.03, L2 (the book's lambda 0.1)",
        "book_accuracy": 99.23,
        "layers": [*_two_conv("relu"), _full(40 * 4 * 4, 100, "relu"), _softmax(100)],
        "options": dict(_RELU),
    },
    "ch6-expanded": {
        "description": "ch6-relu on the expanded training set (250,000 images)",
        "book_accuracy": 99.37,
        "layers": [*_two_conv("relu"), _full(40 * 4 * 4, 100, "relu"), _softmax(100)],
        "options": {**_RELU, "expand": True},
    },
    "ch6-dropout": {
        "description": "two conv-pool layers, two 1,000-neuron ReLU layers, dropout 0.5 on "
                       "the three upper layers' inputs, expanded data",
        "book_accuracy": 99.60,
        "layers": [*_two_conv("relu"), _full(40 * 4 * 4, 1000, "relu", 0.5),
                   _full(1000, 1000, "relu", 0.5), _softmax(1000, 0.5)],
        "options": {**CONV_DEFAULTS, "eta": 0.03, "epochs": 40, "expand": True},
    },
}


def get_conv_preset(name):
    """The conv preset called ``name``; one clear error otherwise."""
    return named(CONV_PRESETS, name, "conv preset")


def build(name, backend="auto", dtype="float32", seed=None):
    """The untrained network of preset ``name``."""
    layers = [layer_from_spec(spec) for spec in get_conv_preset(name)["layers"]]
    return ConvNetwork(layers, backend=backend, dtype=dtype, seed=seed)


def book_figure(history):
    """(epoch, test accuracy) at the best validation accuracy, the last epoch
    to reach it (network3.py keeps ties' later epoch): the figure network3.py
    prints and the book reports."""
    best = max(history, key=lambda record: (record["validation_accuracy"], record["epoch"]))
    return best["epoch"], best["test_accuracy"]


def read_layers(path):
    """The layers described in the JSON file ``path``: a list of layer
    descriptions as :attr:`CONV_PRESETS` holds them, e.g.
    ``[{"kind": "conv_pool", "image_shape": [1, 28, 28], "filter_shape": [20, 1, 5, 5],
    "activation": "relu"}, {"kind": "softmax", "n_in": 2880, "n_out": 10}]``.
    The file is data, read as a regular file of at most
    :data:`MAX_LAYERS_BYTES` (a FIFO never hangs, ``/dev/zero`` is never
    read): anything else is one :class:`InvalidArgumentError` naming it."""
    try:
        text = read_input(path, MAX_LAYERS_BYTES, "layers file")
    except FileNotFoundError:
        raise InvalidArgumentError(f"{path}: layers file not found") from None
    except OSError as exc:  # a directory, a FIFO, a device, too large, unreadable
        raise InvalidArgumentError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        specs = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = getattr(exc, "msg", None) or type(exc).__name__
        raise InvalidArgumentError(f"{path}: not a JSON list of layers ({reason})") from None
    if not isinstance(specs, list):
        raise InvalidArgumentError(f"{path}: not a JSON list of layers")
    try:
        return check_layers([layer_from_spec(spec) for spec in specs])
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"{path}: {exc}") from None


def table():
    """The conv presets as text: name, the book's figure, description, options."""
    width = max(map(len, CONV_PRESETS))
    lines = [f"{'CONV PRESET':<{width}}  BOOK         DESCRIPTION"]
    for name, preset in CONV_PRESETS.items():
        options = preset["options"]
        lines.append(f"{name:<{width}}  {preset['book_accuracy']:.2f}% test  "
                     f"{preset['description']}")
        lines.append(f"{'':<{width}}  {'':<11}  --epochs {options['epochs']} --batch-size "
                     f"{options['batch_size']} --eta {options['eta']} --l2 {options['l2']}"
                     + (" --expand" if options["expand"] else ""))
    return "\n".join(lines)
