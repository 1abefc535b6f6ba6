"""A whole SGD epoch as one CUDA kernel (numba-cuda): the GPU twin of
:mod:`.cpu_epoch`.

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
   (3), (4)), with L2 decay, L1 and momentum as in :meth:`Backend.sgd_update`.

The share buffer alternates between two halves from step to step, so a block
that runs ahead into the next step never overwrites shares still being read.

Weights stay in global memory (95 KB for [784, 30, 10] in float32: L1/L2
resident across steps); the mini-batch's activations and errors live in
shared memory, so the kernel serves networks with one hidden layer whose
mini-batch buffers fit in the 48 KB a block gets without opt-in. Anything
else (more layers, large mini-batches, dropout) returns to the cuBLAS path;
that is where large mini-batches are faster anyway.

The same source runs under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``)
on NumPy arrays, which is how CI holds it to :func:`nn_gpu.model.core.train_epoch`.
The kernel is built by a factory with every size, activation, cost and dtype
as compile-time constants, so the simulator can run tiny networks.
"""

import warnings

import numpy

#: Threads of the block on a device (the simulator runs fewer). ptxas gives the
#: kernel up to ~210 registers a thread on sm_75 to sm_90, without spills
#: (tests/backends/test_cuda_compile.py compiles it on every CI run): 256
#: threads fit the 64K-register file, 512 would fail to launch.
THREADS = 256
#: Static shared memory a block may use without opting in to more.
SHARED_BYTES = 48 * 1024
#: At most this many threads share one dot product of the first layer.
MAX_SPLIT = 32
_HIDDEN = ("sigmoid", "tanh", "relu")  # cuda_kernel.HIDDEN, which does not import this
_OUTPUT = ("sigmoid", "softmax")


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


def unsupported_plan(plan):
    """Why no fused kernel can run this training whatever its sizes, or None."""
    if len(plan.kinds) != 2:
        return f"{len(plan.kinds)} weight layers (the fused epoch has 2)"
    if plan.dropout:
        return "dropout"
    if plan.error_form is None:
        return f"cost {plan.cost.name!r} (its own output error)"
    if plan.kinds[0] not in _HIDDEN or plan.kinds[1] not in _OUTPUT:
        return f"activations {plan.kinds}"
    return None


def unsupported(plan, sizes, batch_size, dtype, threads=THREADS, blocks=1):
    """Why the fused kernel cannot run this training (a short phrase), or None."""
    reason = unsupported_plan(plan)
    if reason:
        return reason
    if numpy.dtype(dtype).name not in ("float32", "float64"):
        return f"dtype {numpy.dtype(dtype).name}"
    need = shared_bytes(sizes, batch_size, dtype, threads, blocks)
    if need > SHARED_BYTES:
        return (f"mini-batch {batch_size} needs {need // 1024} KB of shared memory "
                f"(a block has {SHARED_BYTES // 1024} KB)")
    return None


class FusedEpoch:
    """A :meth:`Backend.compiled_epoch` replacement for ``core.train_epoch``
    that launches the kernel once per call (one epoch segment).

    ``view`` turns a backend array into what the kernel takes (a Numba device
    array over a CuPy array; the identity for NumPy arrays under the
    simulator), ``stream`` is the stream to launch on and ``empty`` allocates
    the backend's arrays. ``blocks`` spreads the hidden units over that many
    thread blocks (a cooperative launch, one grid barrier per step);
    ``virtual`` runs them all inside one block instead, as the simulator must
    (it runs a grid's blocks one after another). A call returns whether it
    trained: False where the kernel cannot run this training
    (:func:`unsupported`), which the caller then trains another way.
    """

    def __init__(self, view=lambda array: array, stream=0, threads=THREADS,
                 blocks=1, virtual=False, empty=numpy.empty):
        self.view, self.stream, self.threads = view, stream, threads
        self.blocks, self.virtual, self.empty = blocks, virtual, empty
        self._views = {}  # id -> (array, view): persistent arrays converted once
        self._launchers = {}
        self._shares = {}

    def kernel(self, plan, sizes, batch_size, dtype):
        """The compiled kernel for this training, or None to fall back."""
        if unsupported(plan, sizes, batch_size, dtype, self.threads, self.blocks):
            return None
        from .kernel import make_kernel  # numba.cuda: imported only to run it

        units, blocks = spread(sizes[1], self.blocks)
        return make_kernel(tuple(sizes), batch_size, plan.kinds[0], plan.kinds[1],
                           plan.error_form == "quadratic", numpy.dtype(dtype).name,
                           plan.momentum > 0, self.threads,
                           split(batch_size, units, self.threads), blocks,
                           blocks if self.virtual else 1)

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

    def __call__(self, plan, weights, biases, X, Y, order, batch_size, workspace):
        sizes = [X.shape[1]] + [w.shape[0] for w in weights]
        kernel = self.kernel(plan, sizes, batch_size, X.dtype)
        if kernel is None:
            return False
        momentum = workspace.velocity_w is not None
        velocity_w = workspace.velocity_w if momentum else workspace.grad_w  # unused scratch
        velocity_b = workspace.velocity_b if momentum else workspace.grad_b
        persistent = [self._persistent(a) for a in (
            X, Y, weights[0], biases[0], weights[1], biases[1],
            velocity_w[0], velocity_b[0], velocity_w[1], velocity_b[1])]
        X_, Y_, w1, b1, w2, b2, vw1, vb1, vw2, vb2 = persistent
        self._launcher(kernel, spread(sizes[1], self.blocks)[1])(
            X_, Y_, self.view(order), w1, b1, w2, b2, vw1, vb1, vw2, vb2,
            self._share_buffer(sizes, batch_size, X.dtype),
            float(plan.eta), float(plan.decay), float(plan.momentum), float(plan.l1_step))
        return True

    def _launcher(self, kernel, blocks):
        """kernel[grid, block, stream], configured once: numba-cuda warns at
        each configuration of a grid this small, and a small grid is the design."""
        if kernel not in self._launchers:
            grid, block = (1, self.threads * blocks) if self.virtual else (blocks, self.threads)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Grid size .* will likely")
                self._launchers[kernel] = kernel[grid, block, self.stream]
        return self._launchers[kernel]
