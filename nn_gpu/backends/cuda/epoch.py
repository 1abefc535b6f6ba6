"""A whole SGD epoch as one CUDA kernel (numba-cuda): the GPU twin of
:mod:`nn_gpu.backends.cpu.epoch`.

Why: on the cuBLAS path one step of [784, 30, 10] is ~11 kernel launches and
~25 Python calls, ~100 µs of host time, while its arithmetic takes a few µs
on the device; at the book's mini-batch of 10 that path is slower than the
CPU. Here one launch runs every step of an epoch segment (the ~50 segments
the progress bar shows), so the host's cost per step is nil.

Design: the steps run in order; the hidden units are spread over ``blocks``
thread blocks (1 by default), block b owning its rows of w^1 and columns of
w^2. Per step, with a block-level barrier (``syncthreads``) between phases:

1. z^1 = a^0 w^T for the block's units: each (row, unit) dot product split
   over KS threads reading consecutive inputs (coalesced), partial sums in
   shared memory; then a^1 = f(z^1 + b^1), kept in shared memory;
2. the block's share of z^2 = a^1 w^2ᵀ into a global buffer; one grid-wide
   barrier (with one block, a block barrier); every block then adds the
   shares up, applies the output activation (σ or softmax) and forms the
   output error δ^2, scaled by η/m (equation (1)) -- the same numbers in
   every block, so each keeps its own copy of b^2 and updates it alike;
3. δ^1 = (δ^2 w^2) ⊙ f'(z^1) for the block's units (equation (2));
4. the block's weights and biases updated in place from δ and a (equations
   (3), (4)), with L2 decay, L1 and momentum as in :meth:`~nn_gpu.backends.base.Backend.sgd_update`.

The share buffer alternates between two halves from step to step, so a block
that runs ahead into the next step never overwrites shares still being read.

Weights stay in global memory (95 KB for [784, 30, 10] in float32: L1/L2
resident across steps); the mini-batch's activations and errors live in
shared memory, so the kernel serves networks with one hidden layer whose
mini-batch buffers fit in the 48 KB a block gets without opt-in. Anything
else (what the capability table refuses, :mod:`nn_gpu.backends.capabilities`;
mini-batches too large; trainings where the launch/FLOP model puts the cuBLAS
path ahead) returns to the cuBLAS path, as does a kernel that fails to
compile or launch on the device (with one warning line).

The same source runs under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``)
on NumPy arrays, which is how CI holds it to :func:`nn_gpu.model.core.train_epoch`.
The kernel is built by a factory (:func:`.kernel.make_kernel`) with every
size, activation, cost and dtype as compile-time constants
(:class:`.records.KernelConstants`), so the simulator can run tiny networks.
"""

import logging
import warnings

import numpy

from .. import capabilities, estimate
from .records import FusedArguments, KernelConstants

#: Threads of the block on a device (the simulator runs fewer). ptxas gives the
#: kernel up to ~210 registers a thread on sm_75 to sm_90, without spills
#: (tests/backends/test_cuda_compile.py compiles it on every CI run): 256
#: threads fit the 64K-register file, 512 would fail to launch.
THREADS = 256
#: Static shared memory a block may use without opting in to more.
SHARED_BYTES = 48 * 1024
#: At most this many threads share one dot product of the first layer.
MAX_SPLIT = 32


def split(batch_size, hidden, threads):
    """KS: threads per first-layer dot product, so a small mini-batch still
    keeps the block busy (1 thread per product once there are enough)."""
    return max(1, min(MAX_SPLIT, threads // (batch_size * hidden)))


def spread(hidden, blocks):
    """(units per block, blocks used): the hidden units over at most ``blocks``."""
    per_block = -(-hidden // max(1, blocks))
    return per_block, -(-hidden // per_block)


def shared_bytes(sizes, batch_size, dtype, threads=THREADS, blocks=1):
    """Shared memory a block needs: row indices, its a^1 and δ^1, the output
    buffer, its first-layer partial sums and its copy of b^2 (and velocity)."""
    _, hidden, out = sizes
    units, _ = spread(hidden, blocks)
    floats = batch_size * (2 * units + out + units * split(batch_size, units, threads)) + 2 * out
    return 8 * batch_size + floats * numpy.dtype(dtype).itemsize


def unsupported(plan, sizes, batch_size, dtype, threads=THREADS, blocks=1):
    """Why the fused kernel cannot run this training (a
    :class:`~nn_gpu.backends.capabilities.Refusal`: the capability table's,
    or the mini-batch's shared memory), or None."""
    refused = capabilities.refusal("fused_gpu", plan, dtype)
    if refused:
        return refused
    need = shared_bytes(sizes, batch_size, dtype, threads, blocks)
    if need > SHARED_BYTES:
        return capabilities.Refusal(
            "batch_size", f"mini-batch {batch_size}",
            f"needs {need // 1024} KB of shared memory (a block has {SHARED_BYTES // 1024} KB)")
    return None


def why_not_fused(plan, sizes, batch_size, dtype, threads=THREADS, blocks=1):
    """Why the fused epoch does not run this training: it cannot
    (:func:`unsupported`), or the launch/FLOP model (:mod:`..estimate`) puts
    the cuBLAS path ahead of it; None where it runs."""
    refused = unsupported(plan, sizes, batch_size, dtype, threads, blocks)
    if refused:
        return refused
    seconds = estimate.epoch_seconds(sizes, batch_size, plan.train_size, fused=True,
                                     momentum=plan.momentum > 0, blocks=blocks)
    if seconds["fused"] >= seconds["cublas"]:
        return capabilities.Refusal(
            "estimate", f"mini-batch {batch_size}",
            f"the cuBLAS path is estimated faster ({seconds['cublas']:.3g} against "
            f"{seconds['fused']:.3g} s/epoch)")
    return None


class FusedEpoch:
    """A :meth:`~nn_gpu.backends.base.Backend.compiled_epoch` replacement for ``core.train_epoch``
    that launches the kernel once per call (one epoch segment).

    ``view`` turns a backend array into what the kernel takes (a Numba device
    array over a CuPy array; the identity for NumPy arrays under the
    simulator), ``stream`` is the stream to launch on; or ``device``, called
    at the first launch, returns both (so that finding the device is part of
    the launch, and fails as one). ``empty`` allocates the backend's arrays.
    ``blocks`` spreads the hidden units over that many thread blocks (a
    cooperative launch, one grid barrier per step); ``virtual`` runs them all
    inside one block instead, as the simulator must (it runs a grid's blocks
    one after another).

    A call returns whether it trained: False where the kernel does not run
    this training (:func:`why_not_fused`, or only :func:`unsupported` where
    ``by_estimate`` is False, as the benchmarks set it to time the kernel
    wherever it can run), which the caller then trains another way -- the
    cuBLAS path. A kernel that fails to compile or launch before it has ever
    run is such a case too: it is reported once, as one warning line on the
    ``nn_gpu`` logger, and the epoch is not tried again (:attr:`failed`).
    """

    def __init__(self, view=lambda array: array, stream=0, threads=THREADS,
                 blocks=1, virtual=False, empty=numpy.empty, device=None):
        self.view, self.stream, self.threads = view, stream, threads
        self.blocks, self.virtual, self.empty = blocks, virtual, empty
        self.device = device
        #: Whether the launch/FLOP model decides too (False: the kernel runs
        #: wherever it can, as the benchmarks time it).
        self.by_estimate = True
        #: Why the kernel could not be compiled or launched here, or None.
        self.failed = None
        self._launched = False
        self._views = {}  # id -> (array, view): persistent arrays converted once
        self._kernels = {}
        self._launchers = {}
        self._shares = {}
        self._no_velocities = {}

    def inputs(self, X, cache=None):
        """The kernel reads the training set as it is."""
        return X

    def constants(self, plan, sizes, batch_size, dtype):
        """The :class:`.records.KernelConstants` of this training."""
        units, blocks = spread(sizes[1], self.blocks)
        return KernelConstants(
            n_in=sizes[0], hidden=sizes[1], n_out=sizes[2], batch_size=batch_size,
            hidden_activation=plan.kinds[0], output_activation=plan.kinds[1],
            quadratic_error=plan.error_form == "quadratic", dtype=numpy.dtype(dtype).name,
            momentum=plan.momentum > 0, threads=self.threads,
            split=split(batch_size, units, self.threads), blocks=blocks,
            virtual=blocks if self.virtual else 1)

    def kernel(self, plan, sizes, batch_size, dtype):
        """The compiled kernel for this training, or None to fall back."""
        return self._kernel(plan, sizes, batch_size, dtype)[0]

    def _kernel(self, plan, sizes, batch_size, dtype):
        """(kernel or None, its constants), decided once per training: every
        call of an epoch asks (η, which changes, decides nothing here)."""
        key = (plan.cost, plan.kinds, plan.train_size, plan.momentum, plan.l1, plan.l2,
               plan.dropout, tuple(sizes), batch_size, numpy.dtype(dtype), self.by_estimate,
               self.blocks, self.threads)
        if key not in self._kernels:
            check = why_not_fused if self.by_estimate else unsupported
            if check(plan, sizes, batch_size, dtype, self.threads, self.blocks):
                self._kernels[key] = (None, None)
            else:
                from .kernel import make_kernel  # numba.cuda: imported only to run it

                constants = self.constants(plan, sizes, batch_size, dtype)
                self._kernels[key] = (make_kernel(constants), constants)
        return self._kernels[key]

    def _persistent(self, array):
        cached = self._views.get(id(array))
        if cached is None or cached[0] is not array:
            cached = self._views[id(array)] = (array, self.view(array))
        return cached[1]

    def _share_buffer(self, sizes, batch_size, dtype):
        """The blocks' shares of z^2: (2 halves, blocks, mini-batch, outputs)."""
        shape = (2, spread(sizes[1], self.blocks)[1], batch_size, sizes[2])
        key = (shape, numpy.dtype(dtype).name)
        if key not in self._shares:
            self._shares[key] = self.view(self.empty(shape, dtype))
        return self._shares[key]

    def _velocities(self, workspace, dtype):
        """The four velocity arguments: the workspace's with momentum, else
        zero-size arrays of the parameters' dtype (the kernel compiled without
        momentum never reads them)."""
        if workspace.velocity_w is not None:
            return [self._persistent(a) for a in (workspace.velocity_w[0], workspace.velocity_b[0],
                                                  workspace.velocity_w[1], workspace.velocity_b[1])]
        key = numpy.dtype(dtype).name
        if key not in self._no_velocities:
            self._no_velocities[key] = [self.view(self.empty(shape, dtype))
                                        for shape in ((0, 0), (0,), (0, 0), (0,))]
        return self._no_velocities[key]

    def __call__(self, plan, weights, biases, X, Y, order, batch_size, workspace):
        if self.failed:
            return False
        if self._launched:
            return self._launch(plan, weights, biases, X, Y, order, batch_size, workspace)
        try:
            if self.device is not None:
                self.view, self.stream = self.device()
                self.device = None
            trained = self._launch(plan, weights, biases, X, Y, order, batch_size, workspace)
        except Exception as exc:  # noqa: BLE001 - NVVM, ptxas, driver, numba-cuda: all kinds
            self.failed = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            logging.getLogger("nn_gpu").warning(
                "nn_gpu: the fused GPU epoch failed to compile or launch here (%s); "
                "training on the cuBLAS path instead", self.failed)
            return False
        self._launched = trained
        return trained

    def _launch(self, plan, weights, biases, X, Y, order, batch_size, workspace):
        sizes = [X.shape[1]] + [w.shape[0] for w in weights]
        kernel, constants = self._kernel(plan, sizes, batch_size, X.dtype)
        if kernel is None:
            return False
        arguments = FusedArguments(
            *(self._persistent(a) for a in (X, Y)), self.view(order),
            *(self._persistent(a) for a in (weights[0], biases[0], weights[1], biases[1])),
            *self._velocities(workspace, X.dtype),
            self._share_buffer(sizes, batch_size, X.dtype),
            eta=float(plan.eta), decay=float(plan.decay), momentum=float(plan.momentum),
            l1=float(plan.l1_step))
        self._launcher(kernel, constants.launch)(*arguments)
        return True

    def _launcher(self, kernel, launch):
        """kernel[grid, block, stream], configured once: numba-cuda warns at
        each configuration of a grid this small, and a small grid is the design."""
        if kernel not in self._launchers:
            grid, block = launch
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Grid size .* will likely")
                self._launchers[kernel] = kernel[grid, block, self.stream]
        return self._launchers[kernel]
