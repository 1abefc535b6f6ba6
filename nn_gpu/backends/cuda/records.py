"""The fused GPU epoch's interface: the kernel factory's constants and the
launch's arguments as named records (the GPU twin of
:mod:`nn_gpu.backends.cpu.records`).

:func:`nn_gpu.backends.cuda.kernel.make_kernel` compiles one kernel per
:class:`KernelConstants` (every size, activation, cost form and dtype a
compile-time constant, so the simulator can run tiny networks and the device
code has no branches on them); :class:`FusedArguments` names what each
launch passes, in the kernel's parameter order. Nothing here imports
``numba.cuda``.
"""

from typing import NamedTuple

import numpy

#: Activations the kernel implements, on the hidden and on the output layer.
HIDDEN_ACTIVATIONS = ("sigmoid", "tanh", "relu")
OUTPUT_ACTIVATIONS = ("sigmoid", "softmax")


class KernelConstants(NamedTuple):
    """What the fused kernel is compiled for (hashable: the factory's cache key)."""

    #: Layer widths: inputs, hidden units, outputs.
    n_in: int
    hidden: int
    n_out: int
    #: Rows of a full mini-batch (the last one of an epoch may have fewer).
    batch_size: int
    hidden_activation: str
    output_activation: str
    #: δ^L = (a - y) ⊙ σ'(z^L) (the quadratic cost), else a - y.
    quadratic_error: bool
    #: "float32" or "float64".
    dtype: str
    #: Whether the launch passes velocities (momentum); without, it passes
    #: zero-size arrays that the kernel never reads.
    momentum: bool
    #: Threads of one (virtual) block.
    threads: int
    #: Threads sharing one first-layer dot product.
    split: int = 1
    #: Blocks the hidden units are spread over.
    blocks: int = 1
    #: Blocks run inside one real block: all of them under Numba's CUDA
    #: simulator (it runs a grid's blocks one after another), else 1.
    virtual: int = 1

    @property
    def units_per_block(self):
        """Hidden units of a block (the last block may have fewer)."""
        return -(-self.hidden // self.blocks)

    @property
    def partial_sums(self):
        """First-layer partial sums a block keeps: one per row, unit and split."""
        return self.batch_size * self.units_per_block * self.split

    @property
    def grid_barrier(self):
        """Whether blocks in several real blocks must meet at a grid-wide barrier."""
        return self.blocks // self.virtual > 1

    @property
    def launch(self):
        """(grid, block): real blocks and threads per real block of a launch."""
        return self.blocks // self.virtual, self.threads * self.virtual

    @property
    def scalar(self):
        """The NumPy scalar type of the kernel's arithmetic."""
        return numpy.dtype(self.dtype).type


class FusedArguments(NamedTuple):
    """One launch's arguments, in the kernel's parameter order."""

    #: Inputs and one-hot targets of the whole training set, (n, n_in) and (n, n_out).
    X: object
    Y: object
    #: int64: the rows of this launch's steps, in order.
    order: object
    w1: object
    b1: object
    w2: object
    b2: object
    #: The parameters' momentum velocities, or zero-size arrays of the
    #: parameters' dtype where there is no momentum (never read then).
    velocity_w1: object
    velocity_b1: object
    velocity_w2: object
    velocity_b2: object
    #: (2, blocks, batch_size, n_out): the blocks' shares of z^2, double-buffered.
    shares: object
    eta: float
    #: 1 - ηλ₂/n.
    decay: float
    #: μ (read only where the kernel was compiled with momentum).
    momentum: float
    #: ηλ₁/n.
    l1: float
