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

from .cuda_epoch import _HIDDEN, split


@functools.lru_cache(maxsize=None)
def make_kernel(sizes, batch_size, hidden, output, quadratic, dtype, momentum, threads):
    """The epoch kernel for these compile-time constants; launch it as
    ``kernel[1, threads, stream](X, Y, order, w1, b1, w2, b2, vw1, vb1, vw2,
    vb2, eta, decay, mu, l1)`` (the velocities are unused without momentum)."""
    T = numpy.dtype(dtype).type
    N_IN, H, O = sizes
    B, NT = batch_size, threads
    KS = split(B, H, NT)
    PART = B * H * KS
    HIDDEN = _HIDDEN.index(hidden)
    SOFTMAX = output == "softmax"

    @cuda.jit(device=True)
    def sigmoid(z):
        # e^{min(z,0)} / (1 + e^{-|z|}): no overflow, as Backend.sigmoid.
        e = math.exp(-abs(z))
        return (T(1) if z >= 0 else e) / (T(1) + e)

    @cuda.jit(device=True)
    def activate(z):
        if HIDDEN == 0:
            return sigmoid(z)
        if HIDDEN == 1:
            return math.tanh(z)
        return T(0) if z < 0 else z  # NaN passes, as numpy.maximum(z, 0)

    @cuda.jit(device=True)
    def times_derivative(d, a):
        """d ⊙ f'(z), f' written in a = f(z), in Backend.times_derivative's order."""
        if HIDDEN == 0:
            return d * a * (T(1) - a)
        if HIDDEN == 1:
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

    @cuda.jit
    def epoch(X, Y, order, w1, b1, w2, b2, vw1, vb1, vw2, vb2, eta, decay, mu, l1):
        tid = cuda.threadIdx.x
        rows = cuda.shared.array(B, numpy.int64)
        a1 = cuda.shared.array((B, H), T)
        d1 = cuda.shared.array((B, H), T)
        d2 = cuda.shared.array((B, O), T)
        part = cuda.shared.array(PART, T)
        zero = T(0)
        t_decay, t_mu, t_l1, t_lam = T(decay), T(mu), T(l1), T(1.0 - decay)
        n = order.shape[0]
        for start in range(0, n, B):
            m = min(B, n - start)
            scale = T(eta / m)
            for i in range(tid, m, NT):
                rows[i] = order[start + i]
            cuda.syncthreads()
            # 1. z^1: KS threads per dot product, each reading every KS-th input.
            for item in range(tid, m * H * KS, NT):
                s = item % KS
                unit = item // KS
                j = unit % H
                r = rows[unit // H]
                acc = zero
                for k in range(s, N_IN, KS):
                    acc += X[r, k] * w1[j, k]
                part[item] = acc
            cuda.syncthreads()
            for unit in range(tid, m * H, NT):
                z = zero
                for s in range(KS):
                    z += part[unit * KS + s]
                a1[unit // H, unit % H] = activate(z + b1[unit % H])
            cuda.syncthreads()
            # 2. z^2, then per row the output activation and δ^2 (equation (1)).
            for unit in range(tid, m * O, NT):
                i = unit // O
                o = unit % O
                z = zero
                for j in range(H):
                    z += a1[i, j] * w2[o, j]
                d2[i, o] = z + b2[o]
            cuda.syncthreads()
            for i in range(tid, m, NT):
                if SOFTMAX:
                    top = d2[i, 0]
                    for o in range(1, O):
                        top = max(top, d2[i, o])
                    total = zero
                    for o in range(O):
                        e = math.exp(d2[i, o] - top)
                        d2[i, o] = e
                        total += e
                    for o in range(O):
                        d2[i, o] = d2[i, o] / total
                else:
                    for o in range(O):
                        d2[i, o] = sigmoid(d2[i, o])
                r = rows[i]
                for o in range(O):
                    a = d2[i, o]
                    if quadratic:
                        d2[i, o] = (a - Y[r, o]) * a * (T(1) - a) * scale
                    else:
                        d2[i, o] = (a - Y[r, o]) * scale
            cuda.syncthreads()
            # 3. δ^1 = (δ^2 w^2) ⊙ f'(z^1)  (equation (2)).
            for unit in range(tid, m * H, NT):
                i = unit // H
                j = unit % H
                acc = zero
                for o in range(O):
                    acc += d2[i, o] * w2[o, j]
                d1[i, j] = times_derivative(acc, a1[i, j])
            cuda.syncthreads()
            # 4. The SGD update, every parameter once (equations (3), (4)).
            for item in range(tid, H * N_IN, NT):
                j = item // N_IN
                k = item % N_IN
                g = zero
                for i in range(m):
                    g += d1[i, j] * X[rows[i], k]
                update_weight(w1, vw1, j, k, g, t_decay, t_mu, t_l1, t_lam)
            for item in range(tid, O * H, NT):
                o = item // H
                j = item % H
                g = zero
                for i in range(m):
                    g += d2[i, o] * a1[i, j]
                update_weight(w2, vw2, o, j, g, t_decay, t_mu, t_l1, t_lam)
            for j in range(tid, H, NT):
                g = zero
                for i in range(m):
                    g += d1[i, j]
                update_bias(b1, vb1, j, g, t_mu)
            for o in range(tid, O, NT):
                g = zero
                for i in range(m):
                    g += d2[i, o]
                update_bias(b2, vb2, o, g, t_mu)
            cuda.syncthreads()

    return epoch
