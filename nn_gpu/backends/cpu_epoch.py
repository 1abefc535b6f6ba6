"""A whole batched SGD epoch compiled for the CPU with Numba.

At small mini-batches the NumPy core spends more time dispatching its ~25
calls per step than multiplying (a mini-batch-10 GEMM is ~6 µs). Compiled,
the loop costs almost nothing beyond the GEMMs: the gathers, σ, the output
error and σ' become tight loops fused with each other, and each weight update
w -= δ^T a is a single BLAS call with beta = 1 (no gradient buffer, no
subtraction pass).

The math is exactly that of :mod:`nn_gpu.core` (equations (1)-(4), δ^L
pre-scaled by η/m); the tests hold this kernel to the generic core and to
the per-example reference. It covers the sigmoid, tanh and relu hidden
layers, the three costs, L2 and momentum; dropout and L1 run on the core's
loop. All BLAS calls here go to SciPy's BLAS (Numba's
``np.dot`` uses it too), never alternating with NumPy's in the inner loop:
two OpenBLAS thread pools taking turns spin against each other.
"""

import math

import llvmlite.binding
import numpy
from numba import njit, types
from numba.extending import get_cython_function_address

# SciPy's Fortran xGEMM (every argument by pointer), registered by name so that
# compiled code calling it can be cached on disk (a ctypes pointer cannot).
_GEMM_SIGNATURE = types.void(*[types.voidptr] * 13)
for _name in ("sgemm", "dgemm"):
    llvmlite.binding.add_symbol(f"nn_gpu_{_name}",
                                get_cython_function_address("scipy.linalg.cython_blas", _name))
_sgemm = types.ExternalFunction("nn_gpu_sgemm", _GEMM_SIGNATURE)
_dgemm = types.ExternalFunction("nn_gpu_dgemm", _GEMM_SIGNATURE)


#: Activation codes of the compiled loop.
ACTIVATION_CODES = {"sigmoid": 0, "tanh": 1, "relu": 2, "softmax": 3}


@njit(cache=True)
def _gemm_update(c, delta, a_in, alpha, beta, ints, scalars, trans):
    """c = beta·c + alpha·δ^T a_in in one xGEMM. Column-major BLAS sees the
    C-ordered c (n_out, n_in) as c^T (n_in, n_out): c^T = alpha·a_in^T δ + beta·c^T."""
    m, n_in = a_in.shape
    n_out = delta.shape[1]
    ints[0], ints[1], ints[2] = n_in, n_out, m          # M, N, K
    ints[3], ints[4], ints[5] = n_in, n_out, n_in       # lda, ldb, ldc
    scalars[0], scalars[1] = alpha, beta
    args = (trans[0:].ctypes, trans[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes,
            ints[2:].ctypes, scalars[0:].ctypes, a_in.ctypes, ints[3:].ctypes,
            delta.ctypes, ints[4:].ctypes, scalars[1:].ctypes, c.ctypes, ints[5:].ctypes)
    if c.itemsize == 4:  # float32
        _sgemm(*args)
    else:
        _dgemm(*args)


@njit(cache=True)
def _activate(code, a, b):
    """a = f(a + b), row by row (softmax over each row)."""
    for i in range(a.shape[0]):
        if code == 3:
            top = -numpy.inf
            for j in range(a.shape[1]):
                a[i, j] += b[j]
                top = max(top, a[i, j])
            total = 0.0
            for j in range(a.shape[1]):
                a[i, j] = math.exp(a[i, j] - top)
                total += a[i, j]
            for j in range(a.shape[1]):
                a[i, j] /= total
            continue
        for j in range(a.shape[1]):
            z = a[i, j] + b[j]
            if code == 0:
                a[i, j] = 1.0 / (1.0 + math.exp(-z))
            elif code == 1:
                a[i, j] = math.tanh(z)
            else:
                a[i, j] = max(z, 0.0)


@njit(cache=True)
def _derivative(code, a):
    """f'(z) written in a = f(z)."""
    if code == 0:
        return a * (1.0 - a)
    if code == 1:
        return 1.0 - a * a
    return 1.0 if a > 0 else 0.0


@njit(cache=True)
def sgd_epoch(X, Y, order, weights, biases, activations, deltas, targets, batch_size, eta,
              quadratic, kinds, decay, momentum, velocity_w, velocity_b):
    """One epoch over the rows ``order`` of X/Y, updating weights and biases in place.

    ``activations[l]`` (batch_size, n_l), ``deltas[l]`` (batch_size, n_{l+1})
    and ``targets`` (batch_size, n_L) are scratch; ``kinds`` holds each
    layer's activation code; ``quadratic`` selects the quadratic cost's δ^L,
    else δ^L = a - y (cross-entropy, log-likelihood). ``decay`` = 1 - ηλ₂/n;
    with ``momentum`` > 0 the velocities are updated and added instead.
    """
    n = order.shape[0]
    layers = len(weights)
    ints = numpy.empty(6, numpy.int32)
    scalars = numpy.empty(2, X.dtype)
    trans = numpy.array([ord("N"), ord("T")], numpy.uint8)
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        x, y = activations[0][:m], targets[:m]
        for i in range(m):                                   # gather the mini-batch
            x[i, :] = X[order[start + i]]
            y[i, :] = Y[order[start + i]]
        for l in range(layers):                              # a^l = f(a^{l-1} w^T + b)
            a = activations[l + 1][:m]
            numpy.dot(activations[l][:m], weights[l].T, a)
            _activate(kinds[l], a, biases[l])
        scale = eta / m                                      # (1), scaled by η/m
        a, delta = activations[layers][:m], deltas[layers - 1][:m]
        for i in range(m):
            for j in range(a.shape[1]):
                error = scale * (a[i, j] - y[i, j])
                delta[i, j] = error * a[i, j] * (1.0 - a[i, j]) if quadratic else error
        for l in range(layers - 1, 0, -1):                   # (2)
            delta = deltas[l - 1][:m]
            numpy.dot(deltas[l][:m], weights[l], delta)
            a = activations[l][:m]
            for i in range(m):
                for j in range(a.shape[1]):
                    delta[i, j] *= _derivative(kinds[l - 1], a[i, j])
        for l in range(layers):                              # (3), (4): the SGD update
            delta, w, b = deltas[l][:m], weights[l], biases[l]
            if momentum == 0.0:
                for i in range(m):
                    for j in range(b.shape[0]):
                        b[j] -= delta[i, j]
                _gemm_update(w, delta, activations[l][:m], -1.0, decay, ints, scalars, trans)
                continue
            v, vb = velocity_w[l], velocity_b[l]
            for j in range(b.shape[0]):
                vb[j] *= momentum
                for i in range(m):
                    vb[j] -= delta[i, j]
                b[j] += vb[j]
            _gemm_update(v, delta, activations[l][:m], -1.0, momentum, ints, scalars, trans)
            for j in range(w.shape[0]):
                for k in range(w.shape[1]):
                    v[j, k] -= (1.0 - decay) * w[j, k]
                    w[j, k] += v[j, k]
