"""The fused epoch's kernel (see :mod:`.epoch` for the design).

A module of its own because ``numba.cuda`` must be a module global of the
kernel's source for Numba's CUDA simulator to swap in its fake, and because
importing it is what selects the simulator or a real device: nothing imports
this module before a fused epoch is about to run.

:func:`make_kernel` builds the device functions the constants call for (the
hidden activation and its derivative, the parameter updates with or without
momentum, the barrier between blocks), then the kernel body over them
(:func:`_epoch_kernel`), with every size a named compile-time constant.
"""

import functools
import math

import numpy
from numba import cuda


@functools.lru_cache(maxsize=None)
def make_kernel(constants):
    """The epoch kernel compiled for ``constants``
    (:class:`.records.KernelConstants`). Launch it as
    ``kernel[grid, block, stream](*arguments)`` with ``(grid, block) =
    constants.launch`` and ``arguments`` a :class:`.records.FusedArguments`."""
    T = constants.scalar
    sigmoid = _sigmoid(T)
    activate, times_derivative = _hidden_layer(constants.hidden_activation, T, sigmoid)
    update_weight, update_bias = _updates(constants.momentum, T)
    return _epoch_kernel(constants, sigmoid, activate, times_derivative, update_weight,
                         update_bias, _barrier(constants.grid_barrier))


def _sigmoid(T):
    @cuda.jit(device=True)
    def sigmoid(z):
        # e^{min(z,0)} / (1 + e^{-|z|}): no overflow, as Backend.sigmoid.
        e = math.exp(-abs(z))
        return (T(1) if z >= 0 else e) / (T(1) + e)
    return sigmoid


def _hidden_layer(kind, T, sigmoid):
    """(f, d ⊙ f') of the hidden activation ``kind``, f' written in a = f(z)
    in Backend.times_derivative's order."""
    if kind == "sigmoid":
        @cuda.jit(device=True)
        def activate(z):
            return sigmoid(z)

        @cuda.jit(device=True)
        def times_derivative(d, a):
            return d * a * (T(1) - a)
    elif kind == "tanh":
        @cuda.jit(device=True)
        def activate(z):
            return math.tanh(z)

        @cuda.jit(device=True)
        def times_derivative(d, a):
            return d * (T(1) - a * a)
    elif kind == "relu":
        @cuda.jit(device=True)
        def activate(z):
            return T(0) if z < 0 else z  # NaN passes, as numpy.maximum(z, 0)

        @cuda.jit(device=True)
        def times_derivative(d, a):
            return d if a > 0 else T(0)
    else:
        raise ValueError(f"no fused kernel for hidden activation {kind!r}")
    return activate, times_derivative


def _updates(momentum, T):
    """(update_weight, update_bias): Backend.sgd_update of one weight (L2
    decay, L1) and of one bias (unregularised), with or without momentum."""
    @cuda.jit(device=True)
    def sign(p):
        return T(1) if p > 0 else (T(-1) if p < 0 else T(0))

    if momentum:
        @cuda.jit(device=True)
        def update_weight(w, v, j, k, g, decay, mu, l1, lam):
            p = w[j, k]
            step = mu * v[j, k] - g - lam * p - l1 * sign(p)
            v[j, k] = step
            w[j, k] = p + step

        @cuda.jit(device=True)
        def update_bias(b, v, j, g, mu):
            v[j] = mu * v[j] - g
            b[j] = b[j] + v[j]
    else:
        @cuda.jit(device=True)
        def update_weight(w, v, j, k, g, decay, mu, l1, lam):
            p = w[j, k]
            w[j, k] = p * decay - l1 * sign(p) - g

        @cuda.jit(device=True)
        def update_bias(b, v, j, g, mu):
            b[j] = b[j] - g
    return update_weight, update_bias


def _barrier(grid_wide):
    """The barrier after the blocks' shares are written: grid-wide across
    real blocks, else the block's own."""
    @cuda.jit(device=True)
    def barrier():
        if grid_wide:
            cuda.cg.this_grid().sync()
        else:
            cuda.syncthreads()
    return barrier


def _epoch_kernel(constants, sigmoid, activate, times_derivative, update_weight, update_bias,
                  grid_barrier):
    """The kernel body (the steps of :mod:`.epoch`'s design), every size a
    compile-time constant named below."""
    T = constants.scalar
    N_IN, HIDDEN, N_OUT = constants.n_in, constants.hidden, constants.n_out
    BATCH = constants.batch_size
    THREADS = constants.threads                 # threads of one (virtual) block
    BLOCKS = constants.blocks                   # blocks sharing out the hidden units
    VIRTUAL = constants.virtual                 # (virtual) blocks per real block
    UNITS = constants.units_per_block           # hidden units of a block
    SPLIT = constants.split                     # threads per first-layer dot product
    PARTIALS = constants.partial_sums           # first-layer partial sums of a block
    SOFTMAX = constants.output_activation == "softmax"
    QUADRATIC = constants.quadratic_error
    MOMENTUM = constants.momentum

    @cuda.jit
    def epoch(X, Y, order, w1, b1, w2, b2, vw1, vb1, vw2, vb2, shares, eta, decay, mu, l1):
        v = cuda.threadIdx.x // THREADS     # which of the real block's virtual blocks
        tid = cuda.threadIdx.x % THREADS
        block = cuda.blockIdx.x * VIRTUAL + v  # owns hidden units j0 .. j0 + units - 1
        j0 = block * UNITS
        units = min(UNITS, HIDDEN - j0)
        rows = cuda.shared.array((VIRTUAL, BATCH), numpy.int64)
        a1 = cuda.shared.array((VIRTUAL, BATCH, UNITS), T)
        d1 = cuda.shared.array((VIRTUAL, BATCH, UNITS), T)
        d2 = cuda.shared.array((VIRTUAL, BATCH, N_OUT), T)
        part = cuda.shared.array((VIRTUAL, PARTIALS), T)
        bias2 = cuda.shared.array((VIRTUAL, N_OUT), T)
        velocity2 = cuda.shared.array((VIRTUAL, N_OUT), T)
        zero = T(0)
        t_decay, t_mu, t_l1, t_lam = T(decay), T(mu), T(l1), T(1.0 - decay)
        for o in range(tid, N_OUT, THREADS):  # every block reads b^2: each updates its own copy
            bias2[v, o] = b2[o]
            if MOMENTUM:
                velocity2[v, o] = vb2[o]
        n = order.shape[0]
        for start in range(0, n, BATCH):
            m = min(BATCH, n - start)
            scale = T(eta / m)
            half = (start // BATCH) % 2
            for i in range(tid, m, THREADS):
                rows[v, i] = order[start + i]
            cuda.syncthreads()
            # 1. z^1 of this block's units: SPLIT threads per dot product.
            for item in range(tid, m * units * SPLIT, THREADS):
                s = item % SPLIT
                unit = item // SPLIT
                j = j0 + unit % units
                r = rows[v, unit // units]
                acc = zero
                for k in range(s, N_IN, SPLIT):
                    acc += X[r, k] * w1[j, k]
                part[v, item] = acc
            cuda.syncthreads()
            for unit in range(tid, m * units, THREADS):
                z = zero
                for s in range(SPLIT):
                    z += part[v, unit * SPLIT + s]
                a1[v, unit // units, unit % units] = activate(z + b1[j0 + unit % units])
            cuda.syncthreads()
            # 2. This block's share of z^2; after the barrier, every block adds them
            #    up and forms a^2 and δ^2 (equation (1)).
            for unit in range(tid, m * N_OUT, THREADS):
                i = unit // N_OUT
                o = unit % N_OUT
                z = zero
                for u in range(units):
                    z += a1[v, i, u] * w2[o, j0 + u]
                shares[half, block, i, o] = z
            grid_barrier()
            for unit in range(tid, m * N_OUT, THREADS):
                i = unit // N_OUT
                o = unit % N_OUT
                z = zero
                for other in range(BLOCKS):
                    z += shares[half, other, i, o]
                d2[v, i, o] = z + bias2[v, o]
            cuda.syncthreads()
            for i in range(tid, m, THREADS):
                if SOFTMAX:
                    top = d2[v, i, 0]
                    for o in range(1, N_OUT):
                        top = max(top, d2[v, i, o])
                    total = zero
                    for o in range(N_OUT):
                        e = math.exp(d2[v, i, o] - top)
                        d2[v, i, o] = e
                        total += e
                    for o in range(N_OUT):
                        d2[v, i, o] = d2[v, i, o] / total
                else:
                    for o in range(N_OUT):
                        d2[v, i, o] = sigmoid(d2[v, i, o])
                r = rows[v, i]
                for o in range(N_OUT):
                    a = d2[v, i, o]
                    if QUADRATIC:
                        d2[v, i, o] = (a - Y[r, o]) * a * (T(1) - a) * scale
                    else:
                        d2[v, i, o] = (a - Y[r, o]) * scale
            cuda.syncthreads()
            # 3. δ^1 = (δ^2 w^2) ⊙ f'(z^1) for this block's units (equation (2)).
            for unit in range(tid, m * units, THREADS):
                i = unit // units
                u = unit % units
                acc = zero
                for o in range(N_OUT):
                    acc += d2[v, i, o] * w2[o, j0 + u]
                d1[v, i, u] = times_derivative(acc, a1[v, i, u])
            cuda.syncthreads()
            # 4. The SGD update of this block's parameters (equations (3), (4)).
            for item in range(tid, units * N_IN, THREADS):
                u = item // N_IN
                k = item % N_IN
                g = zero
                for i in range(m):
                    g += d1[v, i, u] * X[rows[v, i], k]
                update_weight(w1, vw1, j0 + u, k, g, t_decay, t_mu, t_l1, t_lam)
            for item in range(tid, N_OUT * units, THREADS):
                o = item // units
                u = item % units
                g = zero
                for i in range(m):
                    g += d2[v, i, o] * a1[v, i, u]
                update_weight(w2, vw2, o, j0 + u, g, t_decay, t_mu, t_l1, t_lam)
            for u in range(tid, units, THREADS):
                g = zero
                for i in range(m):
                    g += d1[v, i, u]
                update_bias(b1, vb1, j0 + u, g, t_mu)
            for o in range(tid, N_OUT, THREADS):
                g = zero
                for i in range(m):
                    g += d2[v, i, o]
                update_bias(bias2[v], velocity2[v], o, g, t_mu)
            cuda.syncthreads()
        if block == 0:
            for o in range(tid, N_OUT, THREADS):
                b2[o] = bias2[v, o]
                if MOMENTUM:
                    vb2[o] = velocity2[v, o]

    return epoch
