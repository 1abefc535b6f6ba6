"""Epoch runners: the training set checked and moved to the device once,
then each epoch shuffled with the network's host RNG and run in segments.

:class:`EpochRunner` is what every model's runner is (the training loop,
:mod:`nn_gpu.training.loop`, calls it once per epoch and checkpoints its
state); :class:`DenseEpochRunner` is the fully connected network's: the
backend's native epoch where it has one for this training, else the batched
core (:func:`.core.train_epoch`), or Nielsen's per-example loop
(:func:`.reference.train_epoch`) for ``method="per_example"``.
"""

from ..backends import capabilities
from ..errors import InvalidArgumentError
from ..options import batch_fits
from . import core, reference

# Progress-bar updates per epoch (the epoch runs in this many segments).
PROGRESS_SEGMENTS = 50


class EpochRunner:
    """The training set on the device, checked once; each call trains one
    epoch at the given η. The shuffled order runs in ~50 segments, each a
    whole number of mini-batches (so the steps are those of one pass), each
    trained by :meth:`train_segment`; ``progress(examples)`` is called after
    each, for a progress bar.

    What the training loop reads: ``X`` and ``labels`` (device), ``Y`` (one-hot),
    ``train_size``, ``settings`` (the regularisation a checkpoint records) and
    :meth:`state` / :meth:`restore`. A subclass supplies :meth:`train_segment`,
    and sets ``order_on_device`` False where it takes the order as a host array.
    """

    order_on_device = True

    def __init__(self, net, training_data, settings, dropout):
        """``settings``: the run's :class:`~nn_gpu.options.TrainingSettings`;
        ``dropout``: whether any step draws dropout masks."""
        self.net = net
        self.mini_batch_size = settings.mini_batch_size
        self.settings = settings.regularisation
        self.X, self.labels = net.to_device(training_data, "training_data")
        self.train_size = self.X.shape[0]
        batch_fits(self.mini_batch_size, self.train_size)
        self.Y = net.one_hot(self.labels)
        # Dropout masks get their own stream, spawned from the network's seed
        # without drawing from it: the shuffles stay those of a run without dropout.
        backend = net.backend
        self.rng = (backend.random_generator(int(net.rng.spawn(1)[0].integers(2**63)))
                    if dropout else None)

    def train_segment(self, order, eta):
        """Train the mini-batches of ``order`` (a slice of the epoch's shuffled
        indices) at ``eta``."""
        raise NotImplementedError

    def __call__(self, eta, progress=None):
        """Train one epoch at ``eta``."""
        net, backend = self.net, self.net.backend
        n, batch = self.train_size, self.mini_batch_size
        order = net.rng.permutation(n)
        if self.order_on_device:
            order = backend.asarray(order)
        segment = batch * max(1, -(-n // (PROGRESS_SEGMENTS * batch)))
        for start in range(0, n, segment):
            self.train_segment(order[start:start + segment], eta)
            if progress is not None:
                backend.synchronize()  # only for the bar: otherwise the device runs ahead
                progress(min(segment, n - start))
        backend.synchronize()

    # -------------------------------------------- state for checkpoints
    def state(self):
        """(JSON-able dict, host arrays) of what the runner carries between epochs."""
        dropout_state = (self.rng.bit_generator.state
                         if self.rng is not None and hasattr(self.rng, "bit_generator") else None)
        return {"dropout_rng": dropout_state}, {}

    def restore(self, state, arrays):
        """Put back what :meth:`state` returned."""
        if state.get("dropout_rng") is not None and hasattr(self.rng, "bit_generator"):
            self.rng.bit_generator.state = state["dropout_rng"]


class DenseEpochRunner(EpochRunner):
    """The fully connected network's epoch, plus everything it reuses: the
    workspace of the batched core, the momentum velocities, the native epoch."""

    def __init__(self, net, training_data, settings):
        self.method = settings.method
        self.order_on_device = self.method == "batched"
        if self.method == "per_example":
            self._check_reference_supports(net, settings.regularisation)
        super().__init__(net, training_data, settings, dropout=settings.dropout > 0)
        if self.method == "batched":
            self.workspace = core.Workspace(
                net.backend, net.sizes, self.mini_batch_size, net.dtype,
                momentum=self.settings["momentum"] > 0, dropout=self.settings["dropout"] > 0)
            # The backend's native epoch, if it has one (loaded now, not in epoch 1).
            self.compiled = net.backend.compiled_epoch(self.plan(1.0))

    def compiled_fits(self):
        """Whether the native epoch can take the parameters as they are: it
        reads them as C-ordered memory (BLAS calls and kernels on raw
        pointers), so weights a user set in another order (a transpose, a
        Fortran array) train through the generic core instead."""
        return all(p.flags.c_contiguous for p in (*self.net.weights, *self.net.biases))

    @staticmethod
    def _check_reference_supports(net, settings):
        plan = core.Plan(cost=net.cost, kinds=net.kinds, eta=1.0, train_size=1, **settings)
        refused = capabilities.refusal("per_example", plan)
        if refused:
            raise InvalidArgumentError(f"method 'per_example' cannot train with {refused}; "
                                       "use method 'batched'")

    def plan(self, eta):
        return core.Plan(cost=self.net.cost, kinds=self.net.kinds, eta=eta,
                         train_size=self.train_size, **self.settings)

    def train_segment(self, order, eta):
        net, backend, batch = self.net, self.net.backend, self.mini_batch_size
        if self.method == "per_example":
            reference.train_epoch(backend, net.cost.name, net.weights, net.biases, self.X,
                                  self.Y, order, batch, eta)
            return
        plan = self.plan(eta)
        compiled = self.compiled is not None and self.compiled_fits() and self.compiled(
            plan, net.weights, net.biases, self.X, self.Y, order, batch, self.workspace)
        if not compiled:  # no native epoch, or not for these arrays
            core.train_epoch(backend, plan, net.weights, net.biases, self.X, self.Y,
                             order, batch, self.workspace, self.rng)

    # -------------------------------------------- state for checkpoints
    def _velocities(self):
        if self.method != "batched" or self.workspace.velocity_w is None:
            return []
        return [(f"velocity_{name}{l}", v) for name, vs in
                (("w", self.workspace.velocity_w), ("b", self.workspace.velocity_b))
                for l, v in enumerate(vs)]

    def state(self):
        state, arrays = super().state()
        arrays.update({name: self.net.backend.to_host(v) for name, v in self._velocities()})
        return state, arrays

    def restore(self, state, arrays):
        for name, v in self._velocities():
            v[...] = self.net.backend.asarray(arrays[name])
        super().restore(state, arrays)
