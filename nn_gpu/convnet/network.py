"""A network built from chapter 6's layers: a :class:`~nn_gpu.model.base.Model`.

``ConvNetwork(layers)`` takes a list of :mod:`~nn_gpu.convnet.layers`
objects ending in a :class:`~nn_gpu.convnet.layers.SoftmaxLayer`, like
network3.py's ``Network``; it has :class:`~nn_gpu.Network`'s interface
(``feedforward``, ``backprop``, ``sgd``, ``evaluate``, ``total_cost``,
``save``/``load``, the history ``sgd`` returns) and its conventions: one
example per row of X, float32 by default, parameters drawn on the host from
``seed`` so every backend starts from the same network. It holds the layers
and their math; the training loop is the one every model shares
(:mod:`nn_gpu.training.loop`), its epoch :class:`~nn_gpu.convnet.epoch.ConvEpochRunner`.

L2 regularisation is the library's: the cost gains (λ/2n)Σw² over every
weight (filters included), n the training-set size, so one step multiplies
w by 1 - ηλ/n. network3.py divides its λ by the number of mini-batches n/m
instead, so its λ is ours divided by m: its λ = 0.1 at mini-batch 10 is
λ = 1.0 here (the presets say so).
"""

import math
import zipfile

import numpy

from ..backends import get_backend
from ..errors import InvalidArgumentError
from ..io import memory, npz
from ..io.fileio import input_stream
from ..model import core
from ..model.base import Model
from ..model.costs import LogLikelihoodCost
from ..model.network import BUILD_BYTES, model_file_errors
from ..options import dtype as check_dtype
from ..options import fresh_seed
from ..options import seed as check_seed
from .epoch import ConvEpochRunner
from .layers import ConvPoolLayer, SoftmaxLayer, layer_from_spec

MODEL_FORMAT = "nn_gpu.convnet"
MODEL_VERSION = 1
#: Scoring runs in chunks whose im2col matrices stay under this many bytes.
PATCH_BUDGET = 64 << 20


def check_layers(layers):
    """The layers as a list, once they fit together: each one's n_in is the
    n_out of the one before, and only the last is a softmax layer."""
    if isinstance(layers, (str, bytes, dict)) or not hasattr(layers, "__iter__"):
        raise InvalidArgumentError(f"layers must be a list of layers, got {layers!r:.60}")
    layers = list(layers)
    if not layers or not isinstance(layers[-1], SoftmaxLayer):
        raise InvalidArgumentError("the last layer must be a SoftmaxLayer (the output layer)")
    if layers[-1].n_out < 2:
        raise InvalidArgumentError("the SoftmaxLayer needs at least 2 outputs: a softmax over "
                                   "one neuron is always 1")
    for l, (before, after) in enumerate(zip(layers[:-1], layers[1:]), start=1):
        if isinstance(before, SoftmaxLayer):
            raise InvalidArgumentError(f"layer {l - 1} is a SoftmaxLayer; only the last may be")
        if before.n_out != after.n_in:
            raise InvalidArgumentError(
                f"layer {l} takes {after.n_in} inputs but layer {l - 1} gives {before.n_out}"
                + (f" (maps x rows x columns {before.output_shape})"
                   if isinstance(before, ConvPoolLayer) else ""))
    return layers


def parameter_count(layers):
    """How many numbers the parameters of ``layers`` hold."""
    return sum(math.prod(shape) for shape in parameter_shapes(layers).values())


def check_buildable(layers, extra_bytes_per_parameter=0, advice="choose smaller layers"):
    """Raise :class:`~nn_gpu.errors.MemoryBudgetError` before building a
    network of ``layers`` that cannot fit in the memory available."""
    count = parameter_count(layers)
    memory.check_fits(count * (BUILD_BYTES + extra_bytes_per_parameter),
                      f"a network of {len(layers)} layers ({count:,} parameters)", advice)


def read_metadata(meta):
    """(layers, dtype) of a model's metadata dict, every field checked
    (a file is data: a bad field is a ValueError naming it)."""
    if meta.get("format") != MODEL_FORMAT or meta.get("version") != MODEL_VERSION:
        raise ValueError(f"format {npz.short(meta.get('format'))} version "
                         f"{npz.short(meta.get('version'))}, expected {MODEL_FORMAT!r} "
                         f"version {MODEL_VERSION}")
    if not isinstance(meta.get("layers"), list):
        raise ValueError("its metadata has no list of layers")
    layers = check_layers([layer_from_spec(spec) for spec in meta["layers"]])
    if not isinstance(meta.get("dtype"), str):
        raise ValueError(f"dtype {npz.short(meta.get('dtype'))} is not a string")
    return layers, check_dtype(meta["dtype"])


def parameter_shapes(layers):
    """Name -> shape of w{l} and b{l}, in the order the network holds them."""
    shapes = {}
    for l, layer in enumerate(layers):
        shapes[f"w{l}"] = tuple(layer.weight_shape)
        shapes[f"b{l}"] = tuple(layer.weight_shape[:1])
    return shapes


class ConvNetwork(Model):
    """network3.py's ``Network``: a list of layers, trained by mini-batch SGD
    on the log-likelihood cost (``backend``, ``dtype`` and ``seed`` as for
    :class:`~nn_gpu.Network`). L2 regularisation and the η schedule, early
    stopping and monitors of the training loop apply; dropout is the layers'
    own (``p_dropout``); :attr:`UNSUPPORTED` lists what it does not train with."""

    IDENTITY = ("format", "layers", "dtype")
    UNSUPPORTED = {
        "l1": "L1 regularisation is the fully connected network's (use l2)",
        "momentum": "momentum is the fully connected network's",
        "dropout": "a convolutional network's dropout is set per layer (p_dropout in its "
                   "layers)",
        "method": "its only method is 'batched' (the per-example loop is chapter 1's)",
    }

    def __init__(self, layers, backend="auto", dtype="float32", seed=None):
        self.layers = check_layers(layers)
        self.sizes = [self.layers[0].n_in] + [layer.n_out for layer in self.layers]
        self.cost = LogLikelihoodCost
        self.kinds = tuple(layer.activation for layer in self.layers)
        self.dtype = check_dtype(dtype)
        seed = check_seed(seed)
        self.seed = fresh_seed() if seed is None else seed  # drawn, it is known: runs repeat
        check_buildable(self.layers)
        self.backend = get_backend(backend)
        self.rng = numpy.random.default_rng(self.seed)
        parameters = [layer.initial_parameters(self.rng) for layer in self.layers]
        self.weights = [self.backend.asarray(w, self.dtype) for w, _ in parameters]
        self.biases = [self.backend.asarray(b, self.dtype) for _, b in parameters]
        # What equations (3) and (4) write, reused by every step.
        self._grad_w = [self.backend.xp.empty_like(w) for w in self.weights]
        self._grad_b = [self.backend.xp.empty_like(b) for b in self.biases]
        self.last_training = None

    def __repr__(self):
        return (f"ConvNetwork({self.layers}, backend={self.backend.name!r}, "
                f"dtype={self.dtype.name!r})")

    # ---------------------------------------------------------- the math
    def _forward(self, X, masks):
        """(a^L, caches): every layer's feedforward over the rows of X."""
        a, caches = X, []
        for layer, w, b, mask in zip(self.layers, self.weights, self.biases, masks):
            a, cache = layer.forward(self.backend, w, b, a, mask)
            caches.append(cache)
        return a, caches

    def _backward(self, X, Y, scale, masks, take):
        """Feedforward, then equations (1)-(4) from the top: δ^L = scale·(a^L - y),
        and for each layer from the last, ``take(l, grad_w, grad_b)`` with its
        Σ over the rows (so scale·Σ = the mean gradient for scale = 1/m).
        ``take`` may change layer l's parameters: layer l-1's error has
        been computed from them by then."""
        backend = self.backend
        a, caches = self._forward(X, masks)
        delta = self.cost.output_error(backend, a, Y, scale, out=backend.xp.empty_like(a))
        for l in range(len(self.layers) - 1, -1, -1):
            layer, grad_w, grad_b = self.layers[l], self._grad_w[l], self._grad_b[l]
            grad_in = layer.gradients(backend, self.weights[l], caches[l], delta, grad_w,
                                      grad_b, want_input=l > 0)
            take(l, grad_w, grad_b)
            if l > 0:
                delta = self.layers[l - 1].delta(backend, caches[l - 1], grad_in)

    def feedforward(self, X):
        """Output activations a^L, shape (m, n_out), as a backend array."""
        X = self._inputs(X)
        return self.backend.xp.concatenate([a for _, a in self.scored_outputs(X)])

    def backprop(self, X, Y, masks=None):
        """(nabla_b, nabla_w): the gradient of the mean cost over the rows of
        X with one-hot targets Y (no regularisation); ``masks[l]``, where
        given, is a fixed dropout mask (already divided by 1 - p) on layer
        l's input."""
        X = self._inputs(X)
        Y = self._targets(X, Y)
        masks = [None if mask is None else self.backend.asarray(mask, self.dtype)
                 for mask in (masks or [None] * len(self.layers))]
        nabla_b, nabla_w = [None] * len(self.layers), [None] * len(self.layers)

        def keep(l, grad_w, grad_b):
            nabla_w[l], nabla_b[l] = grad_w.copy(), grad_b.copy()

        self._backward(X, Y, 1.0 / X.shape[0], masks, keep)
        return nabla_b, nabla_w

    def _chunks(self, X):
        """Row slices of X small enough for the scoring budget of im2col."""
        itemsize = self.dtype.itemsize
        per_row = max([layer.patch_bytes(itemsize) for layer in self.layers
                       if isinstance(layer, ConvPoolLayer)] or [1])
        rows = max(1, min(core.SCORING_CHUNK, PATCH_BUDGET // per_row))
        return [slice(start, start + rows) for start in range(0, X.shape[0], rows)]

    def scored_outputs(self, X):
        """(rows, a^L of those rows) for each scoring chunk of X."""
        for rows in self._chunks(X):
            yield rows, self._forward(X[rows], [None] * len(self.layers))[0]

    def predicted_labels(self, X):
        """argmax a^L of every row of device X, on the device (scored in chunks)."""
        xp = self.backend.xp
        chunks = [xp.argmax(a, axis=1) for _, a in self.scored_outputs(X)]
        return chunks[0] if len(chunks) == 1 else xp.concatenate(chunks)

    def count_correct(self, X, labels):
        """Σ [argmax a^L == label] over device data, as a 0-d device array."""
        return self.correct_and_cost(X, labels, cost=False)[0]

    def cost_of(self, X, labels, l2=0.0, l1=0.0, train_size=None):
        """Mean -ln a^L_y over device data, plus (λ₂/2n)Σw² (n = ``train_size``)."""
        return self.correct_and_cost(X, labels, l2, l1, train_size, correct=False)[1]

    def correct_and_cost(self, X, labels, l2=0.0, l1=0.0, train_size=None, correct=True,
                         cost=True):
        """(:meth:`count_correct`, :meth:`cost_of`) in one pass over the
        scoring chunks (each None where not asked for)."""
        xp = self.backend.xp
        count = xp.zeros((), dtype=xp.int64) if correct else None
        total = xp.zeros((), dtype=self.dtype) if cost else None
        for rows, a in self.scored_outputs(X):
            if correct:
                count += xp.sum(xp.argmax(a, axis=1) == labels[rows])
            if cost:
                picked = xp.take_along_axis(a, labels[rows][:, None], axis=1)
                total -= xp.sum(xp.log(xp.maximum(picked, xp.finfo(self.dtype).tiny)))
        if not cost:
            return count, None
        mean = total / X.shape[0]
        if l2 or l1:
            mean = mean + core.regularization_cost(self.backend, self.weights, l2, l1,
                                                   train_size or X.shape[0])
        return count, mean

    # ---------------------------------------------------------- training
    def runner(self, training_data, settings):
        """The :class:`~nn_gpu.convnet.epoch.ConvEpochRunner` the training loop
        runs each epoch (``settings``: a :class:`~nn_gpu.options.TrainingSettings`)."""
        return ConvEpochRunner(self, training_data, settings)

    # ------------------------------------------------------- persistence
    @staticmethod
    def checkpoint_arrays(model):
        """Name -> shape of every array a checkpoint of the network its
        metadata ``model`` describes may hold (``model`` checked first): the
        parameters and the snapshot of the best epoch's."""
        layers = read_metadata(model)[0]
        # the parameters and the best weights, each up to 8 bytes
        check_buildable(layers, 2 * 8, "it cannot be resumed here")
        shapes = parameter_shapes(layers)
        return {**shapes, **{f"best_{name}": shape for name, shape in shapes.items()}}

    def metadata(self):
        return {"format": MODEL_FORMAT, "version": MODEL_VERSION,
                "layers": [layer.spec() for layer in self.layers], "cost": self.cost.name,
                "dtype": self.dtype.name, "training": self.last_training}

    @classmethod
    def load(cls, path, backend="auto"):
        """Read a network written by :meth:`save`; any other file ends in one
        :class:`~nn_gpu.errors.ModelFileError` line. Arrays are read only
        after their headers match the shapes the layer descriptions imply."""
        writer = "ConvNetwork.save / nn-gpu train --save"
        with model_file_errors(path, "conv model file", writer), \
                input_stream(path, what="model file") as handle, zipfile.ZipFile(handle) as archive:
            names = set(archive.namelist())
            meta = npz.read_metadata(archive, names)
            layers, dtype = read_metadata(meta)
            stored = []
            for name, shape in parameter_shapes(layers).items():
                array = npz.read_npy(archive, names, name, shape, "fiu")
                if not numpy.isfinite(array).all():
                    raise ValueError(f"array {name} is not finite real numbers")
                stored.append(array)
        net = cls(layers, backend=backend, dtype=dtype)
        net.weights = [net.backend.asarray(w, net.dtype) for w in stored[0::2]]
        net.biases = [net.backend.asarray(b, net.dtype) for b in stored[1::2]]
        training = meta.get("training")
        net.last_training = training if isinstance(training, dict) else None
        return net

