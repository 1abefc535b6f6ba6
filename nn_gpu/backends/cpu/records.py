"""The compiled CPU epoch's interface: three named records, grouped by how
long their values live.

:func:`nn_gpu.backends.cpu.epoch.sgd_epoch` takes the data (X, Y, the
shuffled ``order``), the parameters (tuples of weights and biases, updated in
place) and these:

* :class:`EpochConstants`: what a training run fixes once (mini-batch size,
  activations, the cost's output error, momentum, prefetching, the shape
  kernels, whether the BLAS threads may be switched);
* :class:`EpochBuffers`: the scratch arrays the steps write, and the
  momentum velocities where there is momentum (None where there is not: the
  epoch is compiled once for each, so no array stands in for absent ones);
* :class:`EpochCall`: what may change from one call to the next (η, the L2
  decay that depends on it, the BLAS threads of each product).

They are ``NamedTuple`` classes because Numba compiles those natively (fields
read by name in compiled code, each record's field types part of the
compiled signature, cacheable on disk); a Numba ``jitclass`` is neither
cacheable nor cheap to pass.
"""

from typing import NamedTuple

import numpy

#: Activation -> its code in the compiled loop.
ACTIVATION_CODES = {"sigmoid": 0, "tanh": 1, "relu": 2, "softmax": 3}


class EpochConstants(NamedTuple):
    """What a training run fixes, the same for every call of the epoch."""

    #: Rows of a full mini-batch (the last one of an epoch may have fewer).
    batch_size: int
    #: int64 (layers,): each layer's activation, as :data:`ACTIVATION_CODES`.
    activation_codes: numpy.ndarray
    #: δ^L = (a - y) ⊙ σ'(z^L) (the quadratic cost), else δ^L = a - y
    #: (cross-entropy on σ, log-likelihood on softmax).
    quadratic_error: bool
    #: μ: used where :attr:`EpochBuffers.velocities` holds the velocities.
    momentum: float
    #: Rows of ``order`` prefetched ahead of the gather (0: none).
    prefetch_rows: int
    #: int64 (layers, 2): addresses of the shape kernels of a full
    #: mini-batch's forward product and weight update of each layer
    #: (:func:`nn_gpu.backends.cpu.epoch.epoch_kernels`), 0 where the BLAS
    #: makes the product.
    kernels: numpy.ndarray
    #: Whether the epoch sets SciPy's BLAS threads per product (False: the
    #: BLAS is not one that can be switched, and its threads are left alone).
    switch_threads: bool


class EpochBuffers(NamedTuple):
    """The arrays the steps write, each sized for a full mini-batch."""

    #: a^l, (batch_size, n_l) for l = 0 .. L; a^0 receives the gathered inputs.
    activations: tuple
    #: δ^{l+1}, (batch_size, n_{l+1}) for each layer.
    deltas: tuple
    #: The gathered targets, (batch_size, n_L).
    targets: numpy.ndarray
    #: Per layer, (n_{l+1}, batch_size) receiving the forward product as
    #: z^T = w a^T (the faster layout for few rows), or (n_{l+1}, 0): the
    #: plain layout z = a w^T.
    transposed: tuple
    #: Per layer, (velocity of w, velocity of b) with momentum; None without.
    velocities: object


class EpochCall(NamedTuple):
    """What one call of the epoch is given besides the run's constants."""

    #: The learning rate η of this call.
    eta: float
    #: The L2 weight decay factor 1 - ηλ₂/n of one step.
    decay: float
    #: int32 (layers, 3): SciPy's BLAS threads for each layer's forward,
    #: backprop and update products of a full mini-batch (a smaller last one
    #: runs on one thread); unused where the constants say not to switch.
    threads: numpy.ndarray
