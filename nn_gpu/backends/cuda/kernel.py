"""The fused epoch's kernel (see :mod:`.cuda_epoch` for the design).

A module of its own because ``numba.cuda`` must be a module global of the
kernel's source for Numba's CUDA simulator to swap in its fake, and because
importing it is what selects the simulator or a real device: nothing imports
this module before a fused epoch is about to run.
"""

import functools
import math

import numpy
from numba import cuda

#: The hidden activations, by their code in the kernel.
HIDDEN = ("sigmoid", "tanh", "relu")


@functools.lru_cache(maxsize=None)
def make_kernel(sizes, batch_size, hidden, output, quadratic, dtype, momentum, threads,
                split=1, blocks=1, virtual=1):
    """The epoch kernel for these compile-time constants: the hidden units
    spread over ``blocks`` blocks of ``threads`` threads, ``virtual`` of them
    per real block (all of them under the simulator, else 1), ``split``
    threads per first-layer dot product. Launch it as
    ``kernel[blocks // virtual, threads * virtual, stream](X, Y, order, w1, b1,
    w2, b2, vw1, vb1, vw2, vb2, shares, eta, decay, mu, l1)``; the velocities
    are unused without momentum, ``shares`` is (2, blocks, batch_size, n_out)."""
    T = numpy.dtype(dtype).type
    N_IN, H, O = sizes
    B, NT, L, VB = batch_size, threads, blocks, virtual
    HB = -(-H // L)                 # hidden units per block (the last may have fewer)
    KS = split
    PART = B * HB * KS
    GRID = L // VB > 1              # several real blocks: a grid-wide barrier
    HIDDEN_CODE = HIDDEN.index(hidden)
    SOFTMAX = output == "softmax"

    @cuda.jit(device=True)
    def sigmoid(z):
        # e^{min(z,0)} / (1 + e^{-|z|}): no overflow, as Backend.sigmoid.
        e = math.exp(-abs(z))
        return (T(1) if z >= 0 else e) / (T(1) + e)

    @cuda.jit(device=True)
    def activate(z):
        if HIDDEN_CODE == 0:
            return sigmoid(z)
        if HIDDEN_CODE == 1:
            return math.tanh(z)
        return T(0) if z < 0 else z  # NaN passes, as numpy.maximum(z, 0)

    @cuda.jit(device=True)
    def times_derivative(d, a):
        """d ⊙ f'(z), f' written in a = f(z), in Backend.times_derivative's order."""
        if HIDDEN_CODE == 0:
            return d * a * (T(1) - a)
        if HIDDEN_CODE == 1:
            return d * (T(1) - a * a)
        return d if a > 0 else T(0)

    @cuda.jit(device=True)
    def sign(p):
        return T(1) if p > 0 else (T(-1) if p < 0 else T(0))

    @cuda.jit(device=True)
    def update_weight(w, v, j, k, g, decay, mu, l1, lam):
        """Backend.sgd_update of w[j, k] by the gradient g (velocity v[j, k])."""
        p = w[j, k]
        if momentum:
            step = mu * v[j, k] - g - lam * p - l1 * sign(p)
            v[j, k] = step
            w[j, k] = p + step
        else:
            w[j, k] = p * decay - l1 * sign(p) - g

    @cuda.jit(device=True)
    def update_bias(b, v, j, g, mu):
        """Backend.sgd_update of b[j] (unregularised)."""
        if momentum:
            v[j] = mu * v[j] - g
            b[j] = b[j] + v[j]
        else:
            b[j] = b[j] - g

    @cuda.jit(device=True)
    def grid_barrier():
        if GRID:
            cuda.cg.this_grid().sync()
        else:
            cuda.syncthreads()

    @cuda.jit
    def epoch(X, Y, order, w1, b1, w2, b2, vw1, vb1, vw2, vb2, shares, eta, decay, mu, l1):
        v = cuda.threadIdx.x // NT          # which of the real block's virtual blocks
        tid = cuda.threadIdx.x % NT
        block = cuda.blockIdx.x * VB + v    # owns hidden units j0 .. j0 + units - 1
        j0 = block * HB
        units = min(HB, H - j0)
        rows = cuda.shared.array((VB, B), numpy.int64)
        a1 = cuda.shared.array((VB, B, HB), T)
        d1 = cuda.shared.array((VB, B, HB), T)
        d2 = cuda.shared.array((VB, B, O), T)
        part = cuda.shared.array((VB, PART), T)
        bias2 = cuda.shared.array((VB, O), T)
        velocity2 = cuda.shared.array((VB, O), T)
        zero = T(0)
        t_decay, t_mu, t_l1, t_lam = T(decay), T(mu), T(l1), T(1.0 - decay)
        for o in range(tid, O, NT):  # every block reads b^2: each updates its own copy
            bias2[v, o] = b2[o]
            velocity2[v, o] = vb2[o]
        n = order.shape[0]
        for start in range(0, n, B):
            m = min(B, n - start)
            scale = T(eta / m)
            half = (start // B) % 2
            for i in range(tid, m, NT):
                rows[v, i] = order[start + i]
            cuda.syncthreads()
            # 1. z^1 of this block's units: KS threads per dot product.
            for item in range(tid, m * units * KS, NT):
                s = item % KS
                unit = item // KS
                j = j0 + unit % units
                r = rows[v, unit // units]
                acc = zero
                for k in range(s, N_IN, KS):
                    acc += X[r, k] * w1[j, k]
                part[v, item] = acc
            cuda.syncthreads()
            for unit in range(tid, m * units, NT):
                z = zero
                for s in range(KS):
                    z += part[v, unit * KS + s]
                a1[v, unit // units, unit % units] = activate(z + b1[j0 + unit % units])
            cuda.syncthreads()
            # 2. This block's share of z^2; after the barrier, every block adds them
            #    up and forms a^2 and δ^2 (equation (1)).
            for unit in range(tid, m * O, NT):
                i = unit // O
                o = unit % O
                z = zero
                for u in range(units):
                    z += a1[v, i, u] * w2[o, j0 + u]
                shares[half, block, i, o] = z
            grid_barrier()
            for unit in range(tid, m * O, NT):
                i = unit // O
                o = unit % O
                z = zero
                for other in range(L):
                    z += shares[half, other, i, o]
                d2[v, i, o] = z + bias2[v, o]
            cuda.syncthreads()
            for i in range(tid, m, NT):
                if SOFTMAX:
                    top = d2[v, i, 0]
                    for o in range(1, O):
                        top = max(top, d2[v, i, o])
                    total = zero
                    for o in range(O):
                        e = math.exp(d2[v, i, o] - top)
                        d2[v, i, o] = e
                        total += e
                    for o in range(O):
                        d2[v, i, o] = d2[v, i, o] / total
                else:
                    for o in range(O):
                        d2[v, i, o] = sigmoid(d2[v, i, o])
                r = rows[v, i]
                for o in range(O):
                    a = d2[v, i, o]
                    if quadratic:
                        d2[v, i, o] = (a - Y[r, o]) * a * (T(1) - a) * scale
                    else:
                        d2[v, i, o] = (a - Y[r, o]) * scale
            cuda.syncthreads()
            # 3. δ^1 = (δ^2 w^2) ⊙ f'(z^1) for this block's units (equation (2)).
            for unit in range(tid, m * units, NT):
                i = unit // units
                u = unit % units
                acc = zero
                for o in range(O):
                    acc += d2[v, i, o] * w2[o, j0 + u]
                d1[v, i, u] = times_derivative(acc, a1[v, i, u])
            cuda.syncthreads()
            # 4. The SGD update of this block's parameters (equations (3), (4)).
            for item in range(tid, units * N_IN, NT):
                u = item // N_IN
                k = item % N_IN
                g = zero
                for i in range(m):
                    g += d1[v, i, u] * X[rows[v, i], k]
                update_weight(w1, vw1, j0 + u, k, g, t_decay, t_mu, t_l1, t_lam)
            for item in range(tid, O * units, NT):
                o = item // units
                u = item % units
                g = zero
                for i in range(m):
                    g += d2[v, i, o] * a1[v, i, u]
                update_weight(w2, vw2, o, j0 + u, g, t_decay, t_mu, t_l1, t_lam)
            for u in range(tid, units, NT):
                g = zero
                for i in range(m):
                    g += d1[v, i, u]
                update_bias(b1, vb1, j0 + u, g, t_mu)
            for o in range(tid, O, NT):
                g = zero
                for i in range(m):
                    g += d2[v, i, o]
                update_bias(bias2[v], velocity2[v], o, g, t_mu)
            cuda.syncthreads()
        if block == 0:
            for o in range(tid, O, NT):
                b2[o] = bias2[v, o]
                vb2[o] = velocity2[v, o]

    return epoch
