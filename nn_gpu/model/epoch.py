"""The fully connected network's epoch: the training set checked and moved
to the device once, then each epoch shuffled and run through the backend's
native epoch where it has one for this training, else the batched core
(:func:`.core.train_epoch`), or Nielsen's per-example loop
(:func:`.reference.train_epoch`) for ``method="per_example"``.
"""

from ..backends import capabilities
from ..errors import InvalidArgumentError
from ..options import batch_fits
from . import core, reference

# Progress-bar updates per epoch (the epoch runs in this many segments).
PROGRESS_SEGMENTS = 50


class EpochRunner:
    """The training set moved to the device and checked once, plus everything
    an epoch reuses; each call trains one epoch at the given η (shuffle, SGD
    steps, synchronise)."""

    def __init__(self, net, training_data, settings):
        """``settings``: the run's :class:`~nn_gpu.options.TrainingSettings`
        (its mini-batch size, method and regularisation are used)."""
        self.net = net
        self.method = settings.method
        self.mini_batch_size = mini_batch_size = settings.mini_batch_size
        self.settings = settings.regularisation
        if self.method == "per_example":
            self._check_reference_supports()
        backend = net.backend
        self.X, labels = net.to_device(training_data, "training_data")
        self.train_size = self.X.shape[0]
        batch_fits(mini_batch_size, self.train_size)
        self.Y = net.one_hot(labels)
        self.labels = labels
        # Dropout masks get their own stream, spawned from the network's seed
        # without drawing from it: the shuffles stay those of a run without dropout.
        self.rng = (backend.random_generator(int(net.rng.spawn(1)[0].integers(2**63)))
                    if self.settings["dropout"] else None)
        if self.method == "batched":
            self.workspace = core.Workspace(
                backend, net.sizes, mini_batch_size, net.dtype,
                momentum=self.settings["momentum"] > 0, dropout=self.settings["dropout"] > 0)
            # The backend's native epoch, if it has one (loaded now, not in epoch 1).
            self.compiled = backend.compiled_epoch(self.plan(1.0))

    def compiled_fits(self):
        """Whether the native epoch can take the parameters as they are: it
        reads them as C-ordered memory (BLAS calls and kernels on raw
        pointers), so weights a user set in another order (a transpose, a
        Fortran array) train through the generic core instead."""
        return all(p.flags.c_contiguous for p in (*self.net.weights, *self.net.biases))

    def _check_reference_supports(self):
        plan = core.Plan(cost=self.net.cost, kinds=self.net.kinds, eta=1.0, train_size=1,
                         **self.settings)
        refused = capabilities.refusal("per_example", plan)
        if refused:
            raise InvalidArgumentError(f"method 'per_example' cannot train with {refused}; "
                                       "use method 'batched'")

    def plan(self, eta):
        return core.Plan(cost=self.net.cost, kinds=self.net.kinds, eta=eta,
                         train_size=self.train_size, **self.settings)

    def __call__(self, eta, progress=None):
        """Train one epoch. The shuffled order is run in ~50 segments (each a
        whole number of mini-batches, so the steps are those of one pass);
        ``progress(examples)`` is called after each, for a progress bar."""
        net, backend = self.net, self.net.backend
        n, batch = self.train_size, self.mini_batch_size
        order = net.rng.permutation(n)
        device_order = backend.asarray(order) if self.method == "batched" else None
        segment = batch * max(1, -(-n // (PROGRESS_SEGMENTS * batch)))
        for start in range(0, n, segment):
            part = slice(start, start + segment)
            if self.method == "per_example":
                reference.train_epoch(backend, net.cost.name, net.weights, net.biases, self.X,
                                      self.Y, order[part], batch, eta)
                continue
            plan = self.plan(eta)
            compiled = self.compiled is not None and self.compiled_fits() and self.compiled(
                plan, net.weights, net.biases, self.X, self.Y, device_order[part], batch,
                self.workspace)
            if not compiled:  # no native epoch, or not for these arrays
                core.train_epoch(backend, plan, net.weights, net.biases, self.X, self.Y,
                                 device_order[part], batch, self.workspace, self.rng)
            if progress is not None:
                backend.synchronize()  # only for the bar: otherwise the device runs ahead
                progress(min(segment, n - start))
        backend.synchronize()

    # -------------------------------------------- state for checkpoints
    def state(self):
        """(JSON-able dict, host arrays) of what the runner carries between epochs."""
        backend = self.net.backend
        arrays = {}
        if self.method == "batched" and self.workspace.velocity_w is not None:
            for l, (vw, vb) in enumerate(zip(self.workspace.velocity_w,
                                             self.workspace.velocity_b)):
                arrays[f"velocity_w{l}"] = backend.to_host(vw)
                arrays[f"velocity_b{l}"] = backend.to_host(vb)
        dropout_state = (self.rng.bit_generator.state
                         if self.rng is not None and hasattr(self.rng, "bit_generator") else None)
        return {"dropout_rng": dropout_state}, arrays

    def restore(self, state, arrays):
        backend = self.net.backend
        if self.method == "batched" and self.workspace.velocity_w is not None:
            for l, (vw, vb) in enumerate(zip(self.workspace.velocity_w,
                                             self.workspace.velocity_b)):
                vw[...] = backend.asarray(arrays[f"velocity_w{l}"])
                vb[...] = backend.asarray(arrays[f"velocity_b{l}"])
        if state.get("dropout_rng") is not None and hasattr(self.rng, "bit_generator"):
            self.rng.bit_generator.state = state["dropout_rng"]
