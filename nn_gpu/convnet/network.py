"""A network built from chapter 6's layers, with :class:`nn_gpu.Network`'s methods.

``ConvNetwork(layers)`` takes a list of :mod:`~nn_gpu.convnet.layers`
objects ending in a :class:`~nn_gpu.convnet.layers.SoftmaxLayer`, like
network3.py's ``Network``; it keeps :class:`~nn_gpu.Network`'s interface
(``feedforward``, ``backprop``, ``sgd``, ``evaluate``, ``total_cost``,
``save``/``load``, the history ``sgd`` returns) and its conventions: one
example per row of X, float32 by default, parameters drawn on the host from
``seed`` so every backend starts from the same network.

L2 regularisation is the library's: the cost gains (λ/2n)Σw² over every
weight (filters included), n the training-set size, so one step multiplies
w by 1 - ηλ/n. network3.py divides its λ by the number of mini-batches n/m
instead, so its λ is ours divided by m: its λ = 0.1 at mini-batch 10 is
λ = 1.0 here (the presets say so).
"""

import time
import zipfile

import numpy

from ..backends import get_backend
from ..errors import CheckpointError, InvalidArgumentError
from ..io import npz
from ..io.fileio import input_stream
from ..model import core
from ..model.costs import LogLikelihoodCost
from ..model.network import Network, model_file_errors
from ..options import batch_fits, non_negative_number, positive_int, positive_number
from ..options import dtype as check_dtype
from ..options import fresh_seed
from ..options import seed as check_seed
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
    for l, (before, after) in enumerate(zip(layers[:-1], layers[1:]), start=1):
        if isinstance(before, SoftmaxLayer):
            raise InvalidArgumentError(f"layer {l - 1} is a SoftmaxLayer; only the last may be")
        if before.n_out != after.n_in:
            raise InvalidArgumentError(
                f"layer {l} takes {after.n_in} inputs but layer {l - 1} gives {before.n_out}"
                + (f" (maps x rows x columns {before.output_shape})"
                   if isinstance(before, ConvPoolLayer) else ""))
    return layers


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


class ConvNetwork(Network):
    """network3.py's ``Network``: a list of layers, trained by mini-batch SGD
    on the log-likelihood cost (``backend``, ``dtype`` and ``seed`` as for
    :class:`~nn_gpu.Network`)."""

    def __init__(self, layers, backend="auto", dtype="float32", seed=None):
        self.layers = check_layers(layers)
        self.sizes = [self.layers[0].n_in] + [layer.n_out for layer in self.layers]
        self.cost = LogLikelihoodCost
        self.kinds = tuple(layer.activation for layer in self.layers)
        self.dtype = check_dtype(dtype)
        self.backend = get_backend(backend)
        seed = check_seed(seed)
        self.seed = fresh_seed() if seed is None else seed  # drawn, it is known: runs repeat
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
        Y = self.backend.asarray(Y, self.dtype)
        if Y.shape != (X.shape[0], self.sizes[-1]):
            raise InvalidArgumentError(
                f"Y must have shape ({X.shape[0]}, {self.sizes[-1]}), got {tuple(Y.shape)}")
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
        xp = self.backend.xp
        correct = xp.zeros((), dtype=xp.int64)
        for rows, a in self.scored_outputs(X):
            correct += xp.sum(xp.argmax(a, axis=1) == labels[rows])
        return correct

    def cost_of(self, X, labels, l2=0.0, l1=0.0, train_size=None):
        """Mean -ln a^L_y over device data, plus (λ₂/2n)Σw² (n = ``train_size``)."""
        xp = self.backend.xp
        total = xp.zeros((), dtype=self.dtype)
        for rows, a in self.scored_outputs(X):
            picked = xp.take_along_axis(a, labels[rows][:, None], axis=1)
            total -= xp.sum(xp.log(xp.maximum(picked, xp.finfo(self.dtype).tiny)))
        cost = total / X.shape[0]
        if l2 or l1:
            cost = cost + core.regularization_cost(self.backend, self.weights, l2, l1,
                                                   train_size or X.shape[0])
        return cost

    # ---------------------------------------------------------- training
    def sgd(self, training_data, epochs, mini_batch_size, eta, test_data=None,
            validation_data=None, l2=0.0, callback=None, progress=None, checkpoint=None,
            resume=False):
        """Train by mini-batch SGD; return the history (one dict per epoch).

        Each epoch shuffles the training set with the network's host RNG and
        steps over consecutive mini-batches (the last may be smaller):
        w -> (1 - ηλ/n) w - (η/m) Σ_x ∇C_x, biases without the decay. Layers
        with ``p_dropout`` see a fresh mask on their inputs every step.
        Records hold ``epoch``, ``seconds``, ``eta`` and, for the validation
        and test data given, ``{name}_correct``, ``{name}_total`` and
        ``{name}_accuracy``; ``callback(record)`` is called after each epoch.

        ``checkpoint`` (a :class:`nn_gpu.training.checkpoint.Checkpoint`) is rewritten
        after every epoch; with ``resume=True`` training continues from it,
        bit for bit as if never interrupted, up to ``epochs`` in all (the
        other arguments must be those of the original run).
        """
        positive_int(epochs, "epochs")
        if resume and checkpoint is None:
            raise InvalidArgumentError("resume needs the checkpoint to resume from")
        run_epoch = self.epoch_runner(training_data, mini_batch_size, eta, l2=l2)
        scored = [(name, self.to_device(data, f"{name}_data"))
                  for name, data in (("validation", validation_data), ("test", test_data))
                  if data is not None]
        settings = {"mini_batch_size": mini_batch_size, "eta": eta, "l2": l2,
                    "train_size": run_epoch.train_size}
        history = self._restore(checkpoint, settings, run_epoch) if resume else []
        for epoch in range(len(history) + 1, epochs + 1):
            started = time.perf_counter()
            run_epoch(progress)
            record = {"epoch": epoch, "seconds": time.perf_counter() - started, "eta": eta}
            counts = self.read_all({name: self.count_correct(X, labels)
                                    for name, (X, labels) in scored})  # one synchronisation
            for name, (X, _) in scored:
                correct = int(counts[name])
                record.update({f"{name}_correct": correct, f"{name}_total": X.shape[0],
                               f"{name}_accuracy": correct / X.shape[0]})
            history.append(record)
            if checkpoint is not None:
                state = {"settings": settings, "history": history,
                         "shuffle_rng": self.rng.bit_generator.state,
                         "dropout_rng": run_epoch.dropout_state()}
                checkpoint.save(self.metadata(), state, self.host_arrays((self.weights,
                                                                           self.biases)))
            if callback is not None:
                callback(record)
        self.last_training = {**settings, "epochs_done": len(history)}
        return history

    def _restore(self, checkpoint, settings, run_epoch):
        """Parameters and random generators as after the checkpoint's epoch;
        returns the history so far."""
        meta, arrays = checkpoint.load(self.checkpoint_arrays)
        where = checkpoint.path
        if meta["model"].get("layers") != self.metadata()["layers"]:
            raise CheckpointError(f"{where}: the checkpoint is of another network")
        state = meta["state"]
        for key, value in settings.items():
            if state.get("settings", {}).get(key) != value:
                raise CheckpointError(f"{where}: the checkpoint was trained with {key} = "
                                      f"{state.get('settings', {}).get(key)!r}, this run has "
                                      f"{value!r}")
        try:
            for l in range(len(self.layers)):
                self.weights[l][...] = self.backend.asarray(arrays[f"w{l}"], self.dtype)
                self.biases[l][...] = self.backend.asarray(arrays[f"b{l}"], self.dtype)
            self.rng.bit_generator.state = state["shuffle_rng"]
            run_epoch.restore_dropout_state(state.get("dropout_rng"))
            return list(state["history"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: checkpoint incomplete or damaged ({exc!r})") from None

    def epoch_runner(self, training_data, mini_batch_size, eta, l2=0.0):
        """Check the training set and move it to the device once; return a
        :class:`EpochRunner` that trains one epoch per call (what ``sgd`` runs
        each epoch, and what the benchmarks time)."""
        return EpochRunner(self, training_data, mini_batch_size, eta, l2)

    # ------------------------------------------------------- persistence
    @staticmethod
    def checkpoint_arrays(model):
        """Name -> shape of the arrays a checkpoint of the network its
        metadata ``model`` describes holds (``model`` checked first)."""
        return parameter_shapes(read_metadata(model)[0])

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


class EpochRunner:
    """The training set on the device, checked once; each call trains one
    epoch of ``net`` (shuffle, every SGD step, synchronise)."""

    def __init__(self, net, training_data, mini_batch_size, eta, l2):
        self.net = net
        self.X, labels = net.to_device(training_data, "training_data")
        self.train_size = n = self.X.shape[0]
        self.mini_batch_size = batch_fits(positive_int(mini_batch_size, "mini_batch_size"), n)
        self.eta = positive_number(eta, "eta")
        self.decay = 1.0 - self.eta * non_negative_number(l2, "l2 (λ)") / n
        self.Y = net.one_hot(labels)
        # Dropout masks get their own stream, spawned without drawing from the
        # shuffles' generator (as Network.sgd does).
        self.dropout_rng = (net.backend.random_generator(int(net.rng.spawn(1)[0].integers(2**63)))
                            if any(layer.p_dropout for layer in net.layers) else None)

    def _step(self, l, grad_w, grad_b):
        backend = self.net.backend
        backend.sgd_update(self.net.weights[l], grad_w, decay=self.decay)
        backend.sgd_update(self.net.biases[l], grad_b)

    def __call__(self, progress=None):
        net, backend, xp = self.net, self.net.backend, self.net.backend.xp
        n, batch = self.train_size, self.mini_batch_size
        order = backend.asarray(net.rng.permutation(n))
        for start in range(0, n, batch):
            index = order[start:start + batch]
            m = index.shape[0]
            masks = [None if not layer.p_dropout else
                     backend.dropout_mask(self.dropout_rng, layer.p_dropout,
                                          backend.empty((m, layer.n_in), net.dtype))
                     for layer in net.layers]
            net._backward(xp.take(self.X, index, axis=0), xp.take(self.Y, index, axis=0),
                          self.eta / m, masks, self._step)
            if progress is not None and (start // batch) % 100 == 99:
                backend.synchronize()  # only for the bar
                progress(start + m)
        backend.synchronize()

    def dropout_state(self):
        rng = self.dropout_rng
        has_state = rng is not None and hasattr(rng, "bit_generator")
        return rng.bit_generator.state if has_state else None

    def restore_dropout_state(self, state):
        if state is not None and hasattr(self.dropout_rng, "bit_generator"):
            self.dropout_rng.bit_generator.state = state
