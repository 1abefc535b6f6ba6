"""What every trainable network is: the interface the training loop
(:mod:`nn_gpu.training.loop`) drives, and the methods the networks share.

:class:`Model` is subclassed by :class:`nn_gpu.model.network.Network` (fully
connected) and :class:`nn_gpu.convnet.network.ConvNetwork` (chapter 6). The
loop owns epochs, the η schedule, early stopping, monitors, history records,
checkpoints, progress and the divergence and stuck checks; a model supplies
only what differs between kinds of network:

* its parameters: ``weights`` and ``biases`` (lists of device arrays, called
  ``w{l}`` and ``b{l}`` in files), ``sizes`` (the widths of its inputs, of
  each layer's output, the last being the classes), ``dtype``, ``backend``
  and ``rng`` (the host generator of its initial parameters and shuffles);
* ``runner(training_data, settings)``: its epoch runner, a
  :class:`nn_gpu.model.epoch.EpochRunner` (one epoch per call, and the state a
  checkpoint keeps);
* its scoring, on device data: ``count_correct``, ``cost_of`` (and
  ``correct_and_cost`` where one pass gives both), ``count_positives`` (one
  output neuron), ``predicted_labels``, ``feedforward``;
* its description: ``metadata()`` (model files and checkpoints),
  ``checkpoint_arrays(model)`` (the arrays a checkpoint of it may hold),
  ``mismatch(model)`` (how a checkpoint's network differs from it);
* :attr:`UNSUPPORTED`: the training options it does not train with, each with
  the reason, refused in one line by :meth:`check_supported`.
"""

import json
from dataclasses import fields

import numpy

from ..data.dataset import prepared
from ..errors import InvalidArgumentError
from ..io import npz
from ..io.fileio import atomic_write
from ..options import TrainingSettings
from ..training import loop
from ..training.scores import precision_recall


class Model:
    """A network the training loop can train (see the module docstring for
    what a subclass supplies)."""

    #: The metadata keys that make two networks the same network (a
    #: checkpoint resumes only into the network that wrote it).
    IDENTITY = ()
    #: Training option -> why this kind of network does not train with it
    #: (a setting other than the option's default is refused).
    UNSUPPORTED = {}

    @property
    def num_classes(self):
        """Classes the labels name: one per output neuron, or 0 and 1 for a single one."""
        return max(2, self.sizes[-1])

    def check_supported(self, settings):
        """Refuse, in one line, ``settings`` (a :class:`~nn_gpu.options.TrainingSettings`)
        that set an option this kind of network does not train with."""
        defaults = TrainingSettings(1, 1, 1.0)
        for field in fields(TrainingSettings):
            value = getattr(settings, field.name)
            if field.name in self.UNSUPPORTED and value != getattr(defaults, field.name):
                raise InvalidArgumentError(
                    f"{type(self).__name__} does not train with {field.name} = {value!r}: "
                    f"{self.UNSUPPORTED[field.name]}")

    # ------------------------------------------------------------ inputs
    def _inputs(self, X, what="X"):
        """X as a (m, n_in) device array of the network's dtype."""
        X = self.backend.xp.ascontiguousarray(self.backend.asarray(X, self.dtype))
        if X.ndim != 2 or X.shape[1] != self.sizes[0] or X.shape[0] == 0:
            raise InvalidArgumentError(
                f"{what} must have shape (m, {self.sizes[0]}) with m >= 1, got {tuple(X.shape)}")
        return X

    def _targets(self, X, Y):
        """One-hot targets Y for the rows of the device array ``X``, as a
        (m, n_out) device array of the network's dtype."""
        Y = self.backend.asarray(Y, self.dtype)
        if Y.shape != (X.shape[0], self.sizes[-1]):
            raise InvalidArgumentError(
                f"Y must have shape ({X.shape[0]}, {self.sizes[-1]}), got {tuple(Y.shape)}")
        return Y

    def to_device(self, data, what="data"):
        """Validate ``(X, labels)`` and move it to the device: once per run,
        or once for good for a :class:`~nn_gpu.data.dataset.Dataset`, which
        keeps what this returns."""
        key = ("device", self.backend.memory_space(), self.dtype.name, self.sizes[0],
               self.num_classes)
        return prepared(data, key, lambda: self._to_device(data, what))

    def _to_device(self, data, what):
        try:
            X, labels = data
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"{what} must be a pair (X, labels)") from None
        X = self._inputs(X, f"{what} X")
        labels = self.backend.asarray(labels)
        if labels.shape != (X.shape[0],):
            raise InvalidArgumentError(
                f"{what} labels must have shape ({X.shape[0]},) to match X, "
                f"got {tuple(labels.shape)}")
        if labels.dtype.kind not in "iu":
            raise InvalidArgumentError(f"{what} labels must be integers, got dtype {labels.dtype}")
        xp = self.backend.xp
        # Read back once per data set, before training starts.
        checks = self.read_all({"low": xp.min(labels), "high": xp.max(labels),
                                "finite": xp.all(xp.isfinite(X))})
        low, high, finite = int(checks["low"]), int(checks["high"]), checks["finite"]
        if low < 0 or high >= self.num_classes:
            raise InvalidArgumentError(
                f"{what} labels must lie in [0, {self.num_classes - 1}], found {low}..{high}")
        if not finite:
            raise InvalidArgumentError(f"{what} X contains NaN or infinite values")
        return X, labels

    def one_hot(self, labels):
        """Device labels -> one-hot targets y, shape (m, n_out). With one
        output neuron y is the label (0 or 1) itself: the one-hot code of
        two classes without its redundant "no" column."""
        xp = self.backend.xp
        if self.sizes[-1] == 1:
            return labels.astype(self.dtype).reshape(-1, 1)
        Y = xp.zeros((labels.shape[0], self.sizes[-1]), dtype=self.dtype)
        Y[xp.arange(labels.shape[0]), labels] = 1
        return Y

    def read(self, device_value):
        """A 0-d device value as a Python number: a host synchronisation point."""
        return self.backend.to_host(device_value).item()

    def read_all(self, device_values):
        """A dict of 0-d device values as Python floats, in one device->host copy."""
        if not device_values:
            return {}
        xp = self.backend.xp
        stacked = xp.stack([xp.asarray(v, dtype=xp.float64) for v in device_values.values()])
        return dict(zip(device_values, self.backend.to_host(stacked).tolist()))

    # -------------------------------------------------------- parameters
    def host_arrays(self, parameters, prefix=""):
        """{prefix}w{l} / {prefix}b{l} -> host copies of (weights, biases), for files."""
        weights, biases = parameters
        arrays = {f"{prefix}w{l}": self.backend.to_host(w) for l, w in enumerate(weights)}
        arrays.update({f"{prefix}b{l}": self.backend.to_host(b) for l, b in enumerate(biases)})
        return arrays

    def copy_parameters(self):
        """A device copy of (weights, biases), e.g. to keep the best epoch's."""
        xp = self.backend.xp
        return [xp.copy(w) for w in self.weights], [xp.copy(b) for b in self.biases]

    def set_parameters(self, parameters):
        weights, biases = parameters
        for current, saved in zip(self.weights + self.biases, weights + biases):
            current[...] = saved

    # ------------------------------------------------------------ scoring
    def correct_and_cost(self, X, labels, l2=0.0, l1=0.0, train_size=None):
        """(``count_correct``, ``cost_of``) of device data, as 0-d device
        arrays: what the loop measures of a set each epoch. A network that
        gets both from one forward pass overrides it."""
        return self.count_correct(X, labels), self.cost_of(X, labels, l2, l1, train_size)

    def evaluate(self, data):
        """Number of rows of ``(X, labels)`` classified right: whose largest
        output is the label or, for one output neuron, whose a^L > 0.5 is
        [label == 1]."""
        return self.read(self.count_correct(*self.to_device(data)))

    def total_cost(self, data, l2=0.0, l1=0.0, train_size=None):
        """Mean cost C over ``(X, labels)``, plus (λ₂/2n)Σw² + (λ₁/n)Σ|w| with
        n = ``train_size`` (the training set's size) when λ are given."""
        return self.read(self.cost_of(*self.to_device(data), l2=l2, l1=l1,
                                      train_size=train_size))

    def precision_recall(self, data):
        """For one output neuron: (precision, recall) over ``(X, labels)`` —
        of the rows it calls 1, the share that are; of the rows that are 1,
        the share it finds."""
        if self.sizes[-1] != 1:
            raise InvalidArgumentError("precision and recall are those of a network with "
                                       f"one output neuron; this one has {self.sizes[-1]}")
        counts = self.count_positives(*self.to_device(data))
        return precision_recall(self.read_all(counts))

    # ---------------------------------------------------------- training
    def sgd(self, training_data, epochs=None, mini_batch_size=None, eta=None, test_data=None,
            validation_data=None, callback=None, checkpoint=None, resume=False, progress=None,
            settings=None, **options):
        """Train by mini-batch stochastic gradient descent; return the history.

        Each epoch shuffles the training set with the network's host RNG (the
        same order for every backend), then takes SGD steps over consecutive
        mini-batches, the last one possibly smaller:
        w -> (1 - ηλ₂/n) w - (ηλ₁/n) sign(w) - (η/m) Σ_x ∇C_x, or with
        ``momentum`` μ, v -> μv - (that step), w -> w + v. ``dropout`` is the
        probability of dropping each hidden unit (inverted dropout, off when
        scoring). ``method="batched"`` runs the matrix core;
        ``"per_example"`` is Nielsen's loop, kept as the reference. Options a
        kind of network does not train with (:attr:`UNSUPPORTED`) are refused.

        ``eta_schedule=n`` halves η whenever the validation accuracy has not
        improved for n epochs and stops once η has fallen to η₀/128;
        ``early_stopping=n`` stops after n epochs without improvement and
        keeps the best epoch's weights; ``keep_best=True`` keeps them too,
        training all epochs. All three need ``validation_data``.

        Returns one dict per epoch: ``epoch``, ``seconds`` (training time),
        ``eta``, and for each data set scored ``{name}_correct``,
        ``{name}_total``, ``{name}_accuracy`` (name: validation, test, and
        train if ``monitor_training_accuracy``), for one output neuron also
        ``{name}_precision`` and ``{name}_recall``, ``{name}_cost`` where costs
        are monitored (train: ``monitor_training_cost``; validation and test:
        ``monitor_evaluation_cost``), and ``stopped`` (why) on an epoch that
        ended training early. ``callback(record)`` is called after each epoch.

        ``checkpoint`` (a :class:`nn_gpu.training.checkpoint.Checkpoint`) is rewritten
        after every epoch; with ``resume=True`` training continues from it, bit
        for bit as if never interrupted, up to ``epochs`` epochs in all (the
        other arguments must be those of the original run, but for ``eta``: a
        new one is the η of the epochs still to run). Weights or costs that
        turn NaN/infinite raise :class:`~nn_gpu.errors.TrainingDivergedError`,
        and a run stuck at chance (see :mod:`nn_gpu.training.loop`)
        :class:`~nn_gpu.errors.TrainingStuckError`; both leave the last good
        checkpoint in place. ``progress(examples)`` is called ~50 times per epoch.

        The options (``epochs`` to ``monitor_evaluation_cost``) may come as
        one :class:`~nn_gpu.options.TrainingSettings` instead: ``settings``.
        """
        if settings is None:
            settings = TrainingSettings(epochs, mini_batch_size, eta, **options)
        elif options or epochs is not None or mini_batch_size is not None or eta is not None:
            raise InvalidArgumentError("pass either settings or the options, not both")
        history, self.last_training = loop.sgd(
            self, training_data, settings, test_data, validation_data, callback, checkpoint,
            resume, progress)
        return history

    def epoch_runner(self, training_data, mini_batch_size, eta, method="batched", **options):
        """Check the training set and move it to the device once; return a
        function that trains one epoch at ``eta`` per call (what ``sgd`` runs
        each epoch, and what the benchmarks time)."""
        settings = TrainingSettings(1, mini_batch_size, eta, method=method, **options)
        self.check_supported(settings)
        runner = self.runner(training_data, settings)
        return lambda: runner(settings.eta)

    # ------------------------------------------------------- persistence
    def save(self, path):
        """Write the network to ``path`` as ``.npz`` arrays plus JSON metadata
        (no pickle), atomically: an existing file is replaced only when the
        new one is complete."""
        with atomic_write(path) as handle:
            self.write(handle)

    def write(self, handle):
        """Write the model file's bytes to the open binary ``handle``: the one
        serialisation of a network (files, checkpoints' parameters, pickles)."""
        arrays = self.host_arrays((self.weights, self.biases))
        arrays["metadata"] = numpy.array(json.dumps(self.metadata()))
        numpy.savez(handle, **arrays)

    def mismatch(self, model):
        """How the network a checkpoint's metadata ``model`` describes differs
        from this one, in words, or None: the same network."""
        mine = self.metadata()
        for key in self.IDENTITY:
            if model.get(key) != mine[key]:
                return (f"the checkpoint's {key} is {npz.short(model.get(key))}, this "
                        f"network's is {npz.short(mine[key])}")
        return None
