"""The compiled (Numba) passes of :class:`~nn_gpu.convnet.layers.ConvPoolLayer`
on the CPU: convolution, max-pooling and their backprop, a few images at a
time, so that nothing a step touches leaves the core's L2 cache.

The NumPy layer lowers a whole mini-batch at once: its im2col matrix for
the second layer of ``ch6-conv2`` at mini-batch 100 is 12.8 MB, and so is
its gradient, so every pass over them (the copy, the three products, pooling,
col2im) streams from memory. Here the same math runs per *block* of images
(:func:`block_images`: the block's im2col matrix within :data:`BLOCK_BYTES`):

* forward (:func:`forward_range`): im2col of the block into Pᵀ (C·k·k rows,
  one column per conv output position), Zᵀ = w Pᵀ in one xGEMM, then
  max-pooling and the bias in one pass over Zᵀ while it is in cache,
  recording which position of each window held its first maximum, and the
  activation over the finished rows;
* backward, where a filter row over all channels (k·C) is long
  (:func:`backward_sparse_range`): from the pooled units alone, since
  ∂C/∂z is 0 everywhere but at each window's first maximum -- one input
  window per pooled unit added into ∂C/∂w and one filter added into
  ∂C/∂a^{l-1}, a quarter of the products' work for 2 x 2 pooling;
* backward otherwise (:func:`backward_range`): ∂C/∂Zᵀ scattered from δ into
  the recorded positions; Pᵀ rebuilt by im2col (cheaper than keeping it:
  it is read from a few KB of input that is in cache); ∂C/∂w += ∂C/∂Zᵀ P
  (xGEMM, β = 1 after the first block); ∂C/∂Pᵀ = wᵀ ∂C/∂Zᵀ and col2im into
  ∂C/∂a^{l-1}.

The products go to NumPy's OpenBLAS where NumPy bundles one (else SciPy's),
on one thread (:class:`BlasThreads`). A layer's second thread is its own:
:class:`Plan` hands out the forward pass a block of images at a time and
the backward pass in :data:`CHUNKS` chunks, each with its own ∂C/∂w, which
this thread and a :class:`Helper` claim in turn. The helper is offered a
share only while other processes leave a core spare (:class:`SpareCores`),
and this thread never waits for a helper that has not started: where the
helper gets no CPU, this thread simply does all the work. The chunks'
sums are added in order, so the threads never change a bit of the result.

The math is the lowered layer's (sums in another order: rounding only).
Each pass has a NumPy twin, and ``tests/convnet/test_kernels.py`` holds
every kernel to it and the whole compiled layer to the lowered one (the
CuPy backend's) in float64 and float32, on one thread and two.
"""

import ctypes
import functools
import math
import os
import queue
import threading
import time
import weakref
from pathlib import Path

import llvmlite.binding
import numpy
from numba import njit, types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic, overload

from ..backends.cpu import threads as cpu_threads
from ..backends.cpu.epoch import _GEMM_SIGNATURE, _dgemm, _sgemm
from ..backends.cpu.float32_exp import exp32

#: Bytes of the im2col matrix of one block of images: a block's Pᵀ, its
#: gradient and Zᵀ stay in a 512 KB L2 cache. (64 KB to 512 KB measured
#: alike on ch6-conv1 and ch6-relu epochs.)
BLOCK_BYTES = 128 << 10

#: Least k·C (a filter row over all channels, the run the sparse backprop
#: adds at once) for which backprop takes :func:`backward_sparse_range`:
#: ch6-conv2's second layer (k·C = 100) 65 µs an image there against 116
#: through the im2col products; its first (k·C = 5) 49 against 30.
SPARSE_MIN_RUN = 8

#: Activation codes of the kernels.
ACTIVATIONS = {"sigmoid": 0, "tanh": 1, "relu": 2}

_N, _T = ord("N"), ord("T")


def block_images(layer, itemsize):
    """Images per block: as many as keep the block's im2col matrix within
    :data:`BLOCK_BYTES` (at least one)."""
    return max(1, BLOCK_BYTES // layer.patch_bytes(itemsize))


def dims(layer):
    """(C, H, W, F, k, pool, Hc, Wc, Hp, Wp): the shapes the kernels need;
    Hc x Wc are the conv outputs pooling reads (Hp·pool x Wp·pool)."""
    channels, height, width = layer.image_shape
    filters, _, k, _ = layer.filter_shape
    _, hp, wp = layer.output_shape
    pool = layer.pool
    return (channels, height, width, filters, k, pool, hp * pool, wp * pool, hp, wp)


# ------------------------------------------------------------------ xGEMM
def numpy_blas_gemms():
    """The addresses of (sgemm, dgemm) in NumPy's own OpenBLAS, the ILP64
    build (64-bit integers) NumPy's wheels bundle, or None where NumPy has
    no such library."""
    from threadpoolctl import ThreadpoolController

    here = Path(numpy.__file__).parent
    numpy_dirs = {here, here.with_name("numpy.libs")}
    for controller in ThreadpoolController().lib_controllers:
        if (controller.user_api != "blas" or controller.internal_api != "openblas"
                or not numpy_dirs & set(Path(controller.filepath).parents)):
            continue
        library = ctypes.CDLL(controller.filepath)
        for prefix in ("scipy_", ""):
            names = [f"{prefix}{kind}gemm_64_" for kind in "sd"]
            if all(hasattr(library, name) for name in names):
                return tuple(ctypes.cast(getattr(library, name), ctypes.c_void_p).value
                             for name in names)
    return None


#: Whether the kernels' products go to NumPy's OpenBLAS rather than SciPy's.
#: Both are OpenBLAS on one thread here, but NumPy's (0.3.31 beside SciPy's
#: 0.3.30 where this was measured) runs the layers' shapes faster: 78 GFLOP/s
#: against 54 for ch6-conv2's second layer, (64 x 500)·(500 x 40) an image,
#: 61 against 35 for its first, (1152 x 25)·(25 x 20).
_NUMPY_GEMMS = numpy_blas_gemms()
USE_NUMPY_BLAS = _NUMPY_GEMMS is not None
for _name, _address in zip(("nn_gpu_conv_sgemm64", "nn_gpu_conv_dgemm64"), _NUMPY_GEMMS or (
        get_cython_function_address("scipy.linalg.cython_blas", "sgemm"),) * 2):  # never called
    llvmlite.binding.add_symbol(_name, _address)
_sgemm64 = types.ExternalFunction("nn_gpu_conv_sgemm64", _GEMM_SIGNATURE)
_dgemm64 = types.ExternalFunction("nn_gpu_conv_dgemm64", _GEMM_SIGNATURE)


@njit(cache=True, nogil=True)
def gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, numpy_blas):
    """C = alpha·op(A)·op(B) + beta·C, column-major, op = ``ta``/``tb``
    (ord('N') or ord('T')), through NumPy's sgemm or dgemm (C's dtype) where
    ``numpy_blas`` (:data:`USE_NUMPY_BLAS`), else SciPy's. (An argument, not
    the global: Numba's disk cache would keep a global's value from another
    installation.)"""
    trans = numpy.empty(2, numpy.uint8)
    trans[0], trans[1] = ta, tb
    scalars = numpy.empty(2, C.dtype)
    scalars[0], scalars[1] = alpha, beta
    if numpy_blas:
        ints = numpy.empty(6, numpy.int64)
        ints[0], ints[1], ints[2], ints[3], ints[4], ints[5] = M, N, K, lda, ldb, ldc
        args = (trans[0:].ctypes, trans[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes,
                ints[2:].ctypes, scalars[0:].ctypes, A.ctypes, ints[3:].ctypes, B.ctypes,
                ints[4:].ctypes, scalars[1:].ctypes, C.ctypes, ints[5:].ctypes)
        if C.itemsize == 4:
            _sgemm64(*args)
        else:
            _dgemm64(*args)
        return
    ints32 = numpy.empty(6, numpy.int32)
    ints32[0], ints32[1], ints32[2], ints32[3], ints32[4], ints32[5] = M, N, K, lda, ldb, ldc
    args32 = (trans[0:].ctypes, trans[1:].ctypes, ints32[0:].ctypes, ints32[1:].ctypes,
              ints32[2:].ctypes, scalars[0:].ctypes, A.ctypes, ints32[3:].ctypes, B.ctypes,
              ints32[4:].ctypes, scalars[1:].ctypes, C.ctypes, ints32[5:].ctypes)
    if C.itemsize == 4:
        _sgemm(*args32)
    else:
        _dgemm(*args32)


# ------------------------------------------------------------ activations
def _sigmoid(x):
    """σ(x) in compiled code (float32 through :func:`exp32`, which vectorises)."""


@overload(_sigmoid)
def _sigmoid_of(x):
    if x == types.float32:
        return lambda x: numpy.float32(1) / (numpy.float32(1) + exp32(-x))
    return lambda x: 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, nogil=True, error_model="numpy")
def activate_rows(code, a, start, stop):
    """a[start:stop] = f(a[start:stop]) in place (``code``: :data:`ACTIVATIONS`)."""
    for n in range(start, stop):
        row = a[n]
        if code == 0:
            for j in range(row.shape[0]):
                row[j] = _sigmoid(row[j])
        elif code == 1:
            for j in range(row.shape[0]):
                row[j] = math.tanh(row[j])
        else:
            for j in range(row.shape[0]):
                row[j] = max(row[j], 0)


# --------------------------------------------------------- the four passes
# Offsets are unsigned (``_u``): with signed ones Numba guards every index
# against wrapping around from the end, and LLVM then leaves the copy loops
# scalar (im2col of ch6-conv2's second layer: 58 µs an image, 12 µs unsigned).
_u = numpy.uint64


@njit(cache=True, nogil=True)
def im2col(x, n0, nb, d, PT):
    """Pᵀ[(c, p, q), n·Hc·Wc + i·Wc + j] = image n0 + n's pixel (c, i + p, j + q),
    for the ``nb`` images from row n0 of x (one flattened (C, H, W) image per row)."""
    C, H, W, _, k, _, Hc, Wc, _, _ = d
    L = Hc * Wc
    for c in range(C):
        for p in range(k):
            for q in range(k):
                out = PT[(c * k + p) * k + q]
                for n in range(nb):
                    image = x[n0 + n]
                    for i in range(Hc):
                        src = _u((c * H + i + p) * W + q)
                        dst = _u(n * L + i * Wc)
                        for j in range(_u(Wc)):
                            out[dst + j] = image[src + j]


@njit(cache=True, nogil=True)
def col2im(GPT, n0, nb, d, gx):
    """Rows n0 .. n0 + nb of gx = ∂C/∂Pᵀ folded back onto the pixels: each
    pixel the sum over the windows that read it (0 for pixels none read)."""
    C, H, W, _, k, _, Hc, Wc, _, _ = d
    L = Hc * Wc
    gx[n0:n0 + nb] = 0
    for c in range(C):
        for p in range(k):
            for q in range(k):
                g = GPT[(c * k + p) * k + q]
                for n in range(nb):
                    image = gx[n0 + n]
                    for i in range(Hc):
                        dst = _u((c * H + i + p) * W + q)
                        src = _u(n * L + i * Wc)
                        for j in range(_u(Wc)):
                            image[dst + j] += g[src + j]


@njit(cache=True, nogil=True)
def pool_forward(ZT, n0, nb, d, b, out, where):
    """For each pool x pool window of the block's conv outputs Zᵀ (F rows):
    out = its maximum + b_f, ``where`` = the window position (r·pool + s)
    of its first maximum in row-major order; rows n0.. of out and where,
    each image's maps in (F, Hp, Wp) order. Branch-free (the comparisons
    are as random as the data), 2 x 2 windows written out."""
    _, _, _, F, _, pool, Hc, Wc, Hp, Wp = d
    L = Hc * Wc
    for n in range(nb):
        a, w = out[n0 + n], where[n0 + n]
        for f in range(F):
            z, bias = ZT[f], b[f]
            for I in range(Hp):
                top = _u(n * L + I * pool * Wc)
                index = _u((f * Hp + I) * Wp)
                if pool == 2:
                    bottom = top + _u(Wc)
                    for J in range(_u(Wp)):
                        best, at = z[top + 2 * J], 0
                        for offset, value in ((1, z[top + 2 * J + 1]), (2, z[bottom + 2 * J]),
                                              (3, z[bottom + 2 * J + 1])):
                            larger = value > best
                            at = offset if larger else at
                            best = value if larger else best
                        a[index + J] = best + bias
                        w[index + J] = at
                    continue
                for J in range(_u(Wp)):
                    corner = top + J * _u(pool)
                    best, at = z[corner], 0
                    for r in range(pool):
                        for s in range(pool):
                            value = z[corner + _u(r * Wc + s)]
                            larger = value > best
                            at = r * pool + s if larger else at
                            best = value if larger else best
                    a[index + J] = best + bias
                    w[index + J] = at


@njit(cache=True, nogil=True)
def pool_backward(delta, where, n0, nb, d, GZT):
    """∂C/∂Zᵀ of the block: δ at the position ``where`` names in each
    window, 0 everywhere else (the positions pooling drops included)."""
    _, _, _, F, _, pool, Hc, Wc, Hp, Wp = d
    L = Hc * Wc
    GZT[:, :nb * L] = 0
    for n in range(nb):
        e, w = delta[n0 + n], where[n0 + n]
        for f in range(F):
            g = GZT[f]
            for I in range(Hp):
                top = _u(n * L + I * pool * Wc)
                index = _u((f * Hp + I) * Wp)
                for J in range(_u(Wp)):
                    r, s = divmod(_u(w[index + J]), _u(pool))
                    g[top + r * _u(Wc) + J * _u(pool) + s] = e[index + J]


# ------------------------------------------------------ a range of images
@njit(cache=True, nogil=True)
def forward_range(x, w, b, out, where, start, stop, d, code, block, PT, ZT, numpy_blas):
    """The layer's forward pass over images start .. stop of x: a = f(pooled
    conv + b) into ``out``, the first maxima's positions into ``where``.
    w: the filters as an (F, C·k·k) matrix; PT, ZT: scratch of
    (C·k·k, block·Hc·Wc) and (F, block·Hc·Wc); ``numpy_blas`` as :func:`gemm`'s."""
    F, ckk = w.shape
    ld = PT.shape[1]
    for n0 in range(start, stop, block):
        nb = min(block, stop - n0)
        im2col(x, n0, nb, d, PT)
        # column-major: Zᵀ (L, F) = Pᵀ (L, ckk) · w (ckk, F)
        gemm(_N, _N, nb * d[6] * d[7], F, ckk, 1.0, PT, ld, w, ckk, 0.0, ZT, ld, numpy_blas)
        pool_forward(ZT, n0, nb, d, b, out, where)
    if code >= 0:
        activate_rows(code, out, start, stop)


@njit(cache=True, nogil=True)
def backward_range(x, w, delta, where, gw, gb, gx, start, stop, d, block, PT, GZT, GPT,
                   numpy_blas):
    """Backprop over images start .. stop: ∂C/∂w into gw (F, C·k·k) and
    ∂C/∂b into gb, summed over the range (overwritten, zero for an empty
    range); with gx of shape (m, n_in), ∂C/∂a^{l-1} of the range into it
    (an empty gx: not wanted)."""
    F, ckk = w.shape
    ld = PT.shape[1]
    L = d[6] * d[7]
    maps = d[8] * d[9]
    gb[:] = 0
    for n in range(start, stop):
        for f in range(F):
            total = gb[f]
            for j in range(f * maps, (f + 1) * maps):
                total += delta[n, j]
            gb[f] = total
    if start >= stop:
        gw[:] = 0
    for n0 in range(start, stop, block):
        nb = min(block, stop - n0)
        im2col(x, n0, nb, d, PT)
        pool_backward(delta, where, n0, nb, d, GZT)
        # column-major: gwᵀ (ckk, F) (+)= P (ckk, L) · ∂Zᵀ (L, F)
        gemm(_T, _N, ckk, F, nb * L, 1.0, PT, ld, GZT, ld, 0.0 if n0 == start else 1.0,
             gw, ckk, numpy_blas)
        if gx.shape[0]:
            # column-major: ∂Pᵀ (L, ckk) = ∂Zᵀ (L, F) · wᵀ (F, ckk)
            gemm(_N, _T, nb * L, ckk, F, 1.0, GZT, ld, w, ckk, 0.0, GPT, ld, numpy_blas)
            col2im(GPT, n0, nb, d, gx)


@njit(cache=True, nogil=True)
def to_channels_last(image, C, H, W, out):
    """out (H, W, C) = image (C, H, W), both flat."""
    for c in range(C):
        for h in range(H):
            for v in range(W):
                out[(h * W + v) * C + c] = image[(c * H + h) * W + v]


@njit(cache=True, nogil=True)
def to_channels_first(image, C, H, W, out):
    """out (C, H, W) = image (H, W, C), both flat."""
    for c in range(C):
        for h in range(H):
            for v in range(W):
                out[(c * H + h) * W + v] = image[(h * W + v) * C + c]


@njit(cache=True, nogil=True)
def backward_sparse_range(x, wq, delta, where, gwq, gb, gx, start, stop, d, xh, gxh):
    """Backprop over images start .. stop as :func:`backward_range`, but
    from the pooled units alone: ∂C/∂z is δ at each window's first maximum
    and 0 at the pool² - 1 other positions, so

        ∂C/∂w_f += δ_{f,I,J} · (the k x k x C input window at that maximum)
        ∂C/∂(that input window) += δ_{f,I,J} · w_f

    one window per pooled unit instead of every conv output: a quarter of
    the products' work for 2 x 2 pooling, and nothing for the units whose δ
    is 0 (ReLU's inactive ones). Images are read channels last, (H, W, C),
    so that a window row is k·C contiguous numbers; ``wq`` and ``gwq`` are
    w and ∂C/∂w in (F, k, k, C) order, xh and gxh one image's scratch.
    Used where k·C is long enough to vectorise (:data:`SPARSE_MIN_RUN`)."""
    C, H, W, F, k, pool, _, _, Hp, Wp = d
    kc = k * C
    want = gx.shape[0] > 0
    gwq[:] = 0
    gb[:] = 0
    for n in range(start, stop):
        to_channels_last(x[n], C, H, W, xh)
        if want:
            gxh[:] = 0
        e, at = delta[n], where[n]
        for f in range(F):
            gwf, wf = gwq[f], wq[f]
            total = gb[f]
            for I in range(Hp):
                for J in range(Wp):
                    index = (f * Hp + I) * Wp + J
                    g = e[index]
                    total += g
                    if g == 0:
                        continue
                    r, s = divmod(at[index], pool)
                    i, j = I * pool + r, J * pool + s
                    for p in range(k):
                        src = _u(((i + p) * W + j) * C)
                        dst = _u(p * kc)
                        if want:
                            for t in range(_u(kc)):
                                gwf[dst + t] += g * xh[src + t]
                                gxh[src + t] += g * wf[dst + t]
                        else:
                            for t in range(_u(kc)):
                                gwf[dst + t] += g * xh[src + t]
            gb[f] = total
        if want:
            to_channels_first(gxh, C, H, W, gx[n])


# ------------------------------------------------------------ chunks
@intrinsic
def atomic_add(typingctx, counter, value):
    """counter[0] += value, atomically; returns the value before."""
    signature = types.int64(counter, types.int64)

    def codegen(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, sig.args[0], array,
                                           [context.get_constant(types.intp, 0)])
        return builder.atomic_rmw("add", pointer, args[1], "seq_cst")

    return signature, codegen


@intrinsic
def atomic_swap_if(typingctx, state, expected, new):
    """state[0] = new if it is ``expected``, atomically; returns the value before."""
    signature = types.int64(state, types.int64, types.int64)

    def codegen(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, sig.args[0], array,
                                           [context.get_constant(types.intp, 0)])
        pair = builder.cmpxchg(pointer, args[1], args[2], "seq_cst", "seq_cst")
        return builder.extract_value(pair, 0)

    return signature, codegen


@njit(cache=True)
def swap_if(state, expected, new):
    """:func:`atomic_swap_if` for Python callers."""
    return atomic_swap_if(state, expected, new)


@njit(cache=True, nogil=True)
def forward_chunks(counter, chunks, x, w, b, out, where, d, code, block, PT, ZT, numpy_blas):
    """:func:`forward_range` over each chunk (a row of ``chunks``: an image
    range) this thread claims from ``counter``, until none is left."""
    while True:
        i = atomic_add(counter, 1)
        if i >= chunks.shape[0]:
            return
        forward_range(x, w, b, out, where, chunks[i, 0], chunks[i, 1], d, code, block, PT, ZT,
                      numpy_blas)


@njit(cache=True, nogil=True)
def backward_chunks(counter, chunks, x, w, delta, where, gws, gbs, gx, d, block, PT, GZT, GPT,
                    numpy_blas):
    """:func:`backward_range` over each chunk this thread claims, chunk i's
    sums into gws[i] and gbs[i]."""
    while True:
        i = atomic_add(counter, 1)
        if i >= chunks.shape[0]:
            return
        backward_range(x, w, delta, where, gws[i], gbs[i], gx, chunks[i, 0], chunks[i, 1], d,
                       block, PT, GZT, GPT, numpy_blas)


@njit(cache=True, nogil=True)
def backward_sparse_chunks(counter, chunks, x, wq, delta, where, gws, gbs, gx, d, xh, gxh):
    """:func:`backward_sparse_range` over each chunk this thread claims."""
    while True:
        i = atomic_add(counter, 1)
        if i >= chunks.shape[0]:
            return
        backward_sparse_range(x, wq, delta, where, gws[i], gbs[i], gx, chunks[i, 0],
                              chunks[i, 1], d, xh, gxh)


# ------------------------------------------------------------ two threads
class BlasThreads:
    """Switches every OpenBLAS this process has loaded -- SciPy's (the one
    :func:`gemm` calls) and NumPy's (the fully connected layers') -- to one
    thread inside a ``with`` block and back to their counts after;
    ``previous`` is SciPy's count. An OpenBLAS left on two threads spins
    while it waits for a busy core: under load, a ch6-conv1 epoch at
    mini-batch 10 measured 1.1 s of wall time with NumPy's OpenBLAS on two
    threads, 0.17 s with it held to one (``docs/log.md``, the 2026-12-07 conv section).
    The layers' second thread is :class:`Helper`'s, chosen by :class:`Plan`."""

    NAMES = tuple((f"{prefix}_get_num_threads{suffix}", f"{prefix}_set_num_threads{suffix}")
                  for prefix in ("scipy_openblas", "openblas") for suffix in ("", "64_"))

    def __init__(self):
        switches, self.scipy = openblas_switches()
        self.switches = list(switches)    # (get, set), SciPy's first
        self.stack = []                   # the counts to restore, innermost block last
        self.previous = 1

    def __enter__(self):
        counts = [get() for get, _ in self.switches]
        for (_, set_), count in zip(self.switches, counts):
            if count != 1:
                set_(1)
        self.stack.append(counts)
        self.previous = self.stack[0][0] if self.scipy else 1
        return self

    def __exit__(self, *exc):
        for (_, set_), count in zip(self.switches, self.stack.pop()):
            if count != 1:
                set_(count)


@functools.cache
def openblas_switches():
    """((get, set), ...): the ctypes thread-count functions of every OpenBLAS
    this process has loaded (:attr:`BlasThreads.NAMES`), SciPy's first; and
    whether SciPy's BLAS is a switchable OpenBLAS. Found once per process
    (a scan of the loaded libraries takes a millisecond; every Python thread
    has its own :class:`BlasThreads`)."""
    from threadpoolctl import ThreadpoolController

    _, scipy_address = cpu_threads.scipy_blas()  # loads SciPy's BLAS first
    switches = []
    for controller in ThreadpoolController().lib_controllers:
        if controller.user_api != "blas" or controller.internal_api != "openblas":
            continue
        library = ctypes.CDLL(controller.filepath)
        for get_name, set_name in BlasThreads.NAMES:
            if hasattr(library, get_name) and hasattr(library, set_name):
                get, set_ = getattr(library, get_name), getattr(library, set_name)
                get.restype, get.argtypes = ctypes.c_int, []
                set_.restype, set_.argtypes = None, [ctypes.c_int]
                scipy = ctypes.cast(set_, ctypes.c_void_p).value == scipy_address
                switches.insert(0 if scipy else len(switches), (get, set_))
                break
    return tuple(switches), bool(scipy_address) and bool(switches)


class Helper:
    """A worker thread that may take part in a compiled (nogil) call: the
    caller posts ``function(*args)`` (:meth:`post`) with a one-element
    ``state`` and runs its own share; the helper runs the posted call only if it gets
    there first -- it swaps ``state`` from 0 (posted) to 1 (started) -- and
    the caller, done with the work it could claim, swaps 0 to 2
    (withdrawn): a helper that never got a CPU is not waited for, and one
    that started is (:meth:`wait`, re-raising what it raised). Idle, the
    thread waits on a queue, using no CPU; it ends once this object is
    collected (with the state of the Python thread that owns it)."""

    def __init__(self):
        self._jobs = queue.SimpleQueue()
        self._done = threading.Semaphore(0)
        self._errors = []
        threading.Thread(target=_serve, args=(self._jobs, self._done, self._errors),
                         name="nn_gpu-conv", daemon=True).start()
        weakref.finalize(self, self._jobs.put, None)

    def post(self, function, args, state):
        self._jobs.put((function, args, state))

    def wait(self):
        """Until the started call has returned; then re-raise what it raised.
        An interrupt (Ctrl-C) while waiting is raised only after that: the
        call writes into the caller's arrays until it returns, and its
        completion left behind would end the next wait early."""
        interrupted = None
        while True:
            try:
                self._done.acquire()
                break
            except BaseException as exc:  # noqa: BLE001  (raised once the call is over)
                interrupted = exc
        error = self._errors.pop() if self._errors else None
        if interrupted is not None:
            raise interrupted
        if error is not None:
            raise error


def _serve(jobs, done, errors):
    """:class:`Helper`'s thread: the posted calls it gets to first, until
    None. (It holds the Helper's queue, not the Helper, so that the Helper
    can be collected and end it.)"""
    while True:
        job = jobs.get()
        if job is None:
            return
        function, args, state = job
        if swap_if(state, 0, 1) != 0:       # withdrawn: the caller did the work
            continue
        try:
            function(*args)
        except BaseException as exc:  # noqa: BLE001  (handed to the caller)
            errors.append(exc)
        done.release()


#: Least forward-product work (FLOPs) of one call for which a second thread
#: is offered a share.
MIN_SPLIT_FLOPS = 2_000_000

#: Chunks of a backward pass: each has its own ∂C/∂w and ∂C/∂b, summed in
#: order after, so that the result never depends on which thread took which.
CHUNKS = 4


def usable_cpus():
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class SpareCores:
    """The CPUs other processes left over lately: the machine's CPUs less
    the others' busy time (Linux's ``/proc/stat`` less this process's CPU
    time) over the last :attr:`WINDOW` seconds or more; None until known,
    or where ``/proc/stat`` cannot be read. Read at most once a window."""

    WINDOW = 0.05

    def __init__(self):
        self.last, self.spare, self.checked = None, None, -1.0

    @staticmethod
    def reading():
        """(now, the machine's busy CPU seconds, this process's), or None."""
        busy = cpu_threads.machine_busy_seconds()
        return None if busy is None else (time.monotonic(), busy, time.process_time())

    def __call__(self):
        now = time.monotonic()
        if now - self.checked < self.WINDOW:
            return self.spare
        self.checked = now
        reading = self.reading()
        if reading is not None and self.last is not None and reading[0] > self.last[0]:
            others = (reading[1] - self.last[1]) - (reading[2] - self.last[2])
            self.spare = (os.cpu_count() or 1) - max(0.0, others) / (reading[0] - self.last[0])
        self.last = reading
        return self.spare


#: Least spare CPUs (:class:`SpareCores`) for which the helper is offered a
#: share when the threads are left to nn_gpu: one for this thread and most
#: of one for the helper. With a core taken by another process the helper
#: would mostly wake up to find its share withdrawn: no gain, some cost.
MIN_SPARE_CPUS = 1.5


def helped(threads, blas_configured, m, flops, spare=None):
    """Whether a call over m images whose forward product is ``flops`` offers
    the helper thread a share: never with ``threads`` = 1 (``NumpyBackend(
    threads=1)``, ``--threads 1``), always with more where there are two
    images; left to nn_gpu (None), while SciPy's BLAS is configured for two
    or more threads (``blas_configured``), the process may run on two or
    more CPUs, the call is worth a hand-over and the other processes leave
    ``spare`` CPUs enough (:data:`MIN_SPARE_CPUS`; None: unknown, offered)."""
    if m < 2 or threads == 1:
        return False
    if threads is not None:
        return True
    return (blas_configured >= 2 and flops >= MIN_SPLIT_FLOPS and usable_cpus() >= 2
            and (spare is None or spare >= MIN_SPARE_CPUS))


def chunk_ranges(m, count):
    """``count`` image ranges covering 0 .. m as evenly as can be, as an (count, 2) array."""
    edges = [m * i // count for i in range(count + 1)]
    return numpy.array([edges[:-1], edges[1:]], numpy.int64).T.copy()


class Plan:
    """What the calls of a layer's passes over m images need besides their
    arrays: the shapes, the chunks, and the scratch of this thread and of
    the helper (shared by every plan of this Python thread with the same
    shapes: a call uses them only while it runs).

    A forward pass is claimed a block of images at a time; a backward pass
    in :data:`CHUNKS` chunks with their own sums, whether one thread or two
    compute them. The helper (where :func:`helped`) claims what this thread
    has not claimed yet, and nothing once this thread has claimed all: on a
    busy machine, where the helper waits for a core, this thread simply does
    all the work, and nothing ever waits for a thread that has no CPU."""

    def __init__(self, layer, dtype, m, helper):
        self.d = dims(layer)
        self.code = ACTIVATIONS[layer.activation]
        self.block = block_images(layer, dtype.itemsize)
        filters, channels, k, _ = layer.filter_shape
        ckk, columns = channels * k * k, self.block * self.d[6] * self.d[7]
        self.helper, slots = helper, range(2 if helper else 1)
        self.blocks = numpy.array([[start, min(start + self.block, m)]   # one block each
                                   for start in range(0, m, self.block)], numpy.int64)
        self.chunks = chunk_ranges(m, min(CHUNKS, m))
        count = self.chunks.shape[0]
        self.sums = (scratch((count, filters, ckk), dtype, "dw"),
                     scratch((count, filters), dtype, "db"))
        self.sparse = k * channels >= SPARSE_MIN_RUN
        if self.sparse:   # w and ∂C/∂w channels last, one image channels last per thread
            self.shape = (filters, channels, k, k)
            self.wq = scratch((filters, ckk), dtype, "wq")
            self.images = [(scratch((layer.n_in,), dtype, (slot, "xh")),
                            scratch((layer.n_in,), dtype, (slot, "dxh"))) for slot in slots]
        self.patches = [scratch((ckk, columns), dtype, (slot, "P")) for slot in slots]
        self.outputs = [scratch((filters, columns), dtype, (slot, "Z")) for slot in slots]
        self.errors = [scratch((ckk, columns), dtype, (slot, "dP")) for slot in slots]

    def forward(self, x, w, b, a, where):
        counter = numpy.zeros(1, numpy.int64)
        run(forward_chunks, [(counter, self.blocks, x, w, b, a, where, self.d, self.code,
                              self.block, P, Z, USE_NUMPY_BLAS)
                             for P, Z in zip(self.patches, self.outputs)])

    def backward(self, x, w, delta, where, gw, gb, gx):
        counter = numpy.zeros(1, numpy.int64)
        gws, gbs = self.sums
        if self.sparse:
            F, C, k, _ = self.shape
            numpy.copyto(self.wq.reshape(F, k, k, C), w.reshape(self.shape).transpose(0, 2, 3, 1))
            run(backward_sparse_chunks, [(counter, self.chunks, x, self.wq, delta, where, gws,
                                          gbs, gx, self.d, xh, gxh) for xh, gxh in self.images])
            numpy.copyto(gw.reshape(self.shape),
                         gws.sum(axis=0).reshape(F, k, k, C).transpose(0, 3, 1, 2))
        else:
            run(backward_chunks, [(counter, self.chunks, x, w, delta, where, gws, gbs, gx,
                                   self.d, self.block, P, dZ, dP, USE_NUMPY_BLAS)
                                  for P, dZ, dP in zip(self.patches, self.outputs, self.errors)])
            numpy.sum(gws, axis=0, out=gw)
        numpy.sum(gbs, axis=0, out=gb)


_local = threading.local()


def _state():
    """This thread's scratch arrays, plans, helper and BLAS switch (new
    after a fork: the helper thread does not survive one)."""
    if getattr(_local, "pid", None) != os.getpid():
        _local.pid, _local.arrays, _local.plans = os.getpid(), {}, {}
        _local.helper, _local.blas, _local.spare = None, None, None
    return _local


def scratch(shape, dtype, slot):
    """A reusable array of this thread, one per (shape, dtype, slot)."""
    arrays = _state().arrays
    key = (shape, dtype.str, slot)
    if key not in arrays:
        arrays[key] = numpy.empty(shape, dtype)
    return arrays[key]


def blas_threads():
    """This thread's :class:`BlasThreads`."""
    state = _state()
    if state.blas is None:
        state.blas = BlasThreads()
    return state.blas


def spare_cores():
    """This thread's :class:`SpareCores`."""
    state = _state()
    if state.spare is None:
        state.spare = SpareCores()
    return state.spare


def plan(layer, dtype, m, threads, blas):
    """The :class:`Plan` of a call of ``layer``'s passes over m images of
    ``dtype``, ``threads`` as the backend sets them (None: chosen here),
    ``blas`` the entered :class:`BlasThreads`."""
    filters, channels, k, _ = layer.filter_shape
    flops = 2 * m * layer.conv_shape[0] * layer.conv_shape[1] * filters * channels * k * k
    helper = helped(threads, blas.previous, m, flops, spare_cores()() if threads is None else None)
    plans = _state().plans
    key = (layer.image_shape, layer.filter_shape, layer.pool, layer.activation, dtype.str, m,
           helper, BLOCK_BYTES, SPARSE_MIN_RUN, CHUNKS)
    if key not in plans:
        plans[key] = Plan(layer, dtype, m, helper)
    return plans[key]


def run(function, calls):
    """``function(*calls[0])`` here; where there is a second call, offered
    to this thread's :class:`Helper` first, and waited for only if the
    helper started it before this thread was done."""
    if len(calls) == 1:
        function(*calls[0])
        return
    state = _state()
    if state.helper is None:
        state.helper = Helper()
    posted = numpy.zeros(1, numpy.int64)
    try:
        state.helper.post(function, calls[1], posted)
        function(*calls[0])
    finally:
        if swap_if(posted, 0, 2) != 0:     # the helper started: let it finish
            state.helper.wait()
