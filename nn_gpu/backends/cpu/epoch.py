"""A whole batched SGD epoch compiled for the CPU with Numba.

At small mini-batches the NumPy core spends more time dispatching its ~25
calls per step than multiplying (a mini-batch-10 GEMM is ~6 µs). Compiled,
the loop costs almost nothing beyond the GEMMs: the gathers, σ, the output
error and σ' become tight loops fused with each other, and each weight update
w -= δ^T a is a single BLAS call with beta = 1 (no gradient buffer, no
subtraction pass).

The math is exactly that of :mod:`nn_gpu.model.core` (equations (1)-(4), δ^L
pre-scaled by η/m); the tests hold this kernel to the generic core and to
the per-example reference. It covers the sigmoid, tanh and relu hidden
layers, the three costs, L2 and momentum; dropout and L1 run on the core's
loop. All BLAS calls here go to SciPy's BLAS (Numba's
``np.dot`` uses it too), never alternating with NumPy's in the inner loop:
two OpenBLAS thread pools taking turns spin against each other.

Two things keep it fast where the machine is not idle and memory is slow:
each product gets its own BLAS thread count (:mod:`.cpu_threads`), and
MNIST-like inputs (every x = k/255, k a byte) are gathered from a uint8 copy
and converted in the gather, reading a quarter of the bytes for the same
float values, and the rows of the next gather, known from the shuffle, are
prefetched while the current step computes (:mod:`.prefetch`). At small
mini-batches the forward products and the small weight updates skip the
BLAS: kernels compiled for the run's exact shapes (:mod:`.small_gemm`) are
1.3-2.8x faster there.
"""

import ctypes
import math
import time

import llvmlite.binding
import numpy
from numba import njit, types
from numba.extending import get_cython_function_address, overload

from . import small_gemm
from . import threads as cpu_threads
from .float32_exp import exp32
from .prefetch import prefetch_row

# SciPy's Fortran xGEMM (every argument by pointer), registered by name so that
# compiled code calling it can be cached on disk (a ctypes pointer cannot).
_GEMM_SIGNATURE = types.void(*[types.voidptr] * 13)
for _name in ("sgemm", "dgemm"):
    llvmlite.binding.add_symbol(f"nn_gpu_{_name}",
                                get_cython_function_address("scipy.linalg.cython_blas", _name))
_sgemm = types.ExternalFunction("nn_gpu_sgemm", _GEMM_SIGNATURE)
_dgemm = types.ExternalFunction("nn_gpu_dgemm", _GEMM_SIGNATURE)

# SciPy's BLAS's set_num_threads(int), or a stand-in the epoch never calls
# (it switches threads only when told the BLAS can be switched).
_NO_SWITCH = ctypes.CFUNCTYPE(None, ctypes.c_int)(lambda threads: None)
_, _set_threads_address = cpu_threads.scipy_blas()
llvmlite.binding.add_symbol("nn_gpu_blas_set_threads", _set_threads_address
                            or ctypes.cast(_NO_SWITCH, ctypes.c_void_p).value)
_set_blas_threads = types.ExternalFunction("nn_gpu_blas_set_threads", types.void(types.intc))


#: Up to this many rows, a forward product is computed as z^T = w a^T:
#: OpenBLAS is faster with the mini-batch as the product's N than as its M
#: there ((10, 784)·(784, 30): 22 against 36 µs; from 100 rows the plain
#: layout wins; ``bench/RESULTS.md``).
TRANSPOSED_FORWARD_MAX_ROWS = 32

#: Smallest training set (examples) whose runs compile their shape kernels
#: (:mod:`.small_gemm`). Compiling is not free and not cached on disk: ~2.5 s
#: for [784, 30, 10] at mini-batch 10 (five epochs of 50,000 images took
#: 4.1-5.2 s with the kernels, 2.3 s without), against ~70 ms saved per such
#: epoch. MNIST-sized runs make them; the small sets of tests and demos,
#: which could never earn them back, do not.
KERNEL_MIN_EXAMPLES = 20_000

#: Rows of the shuffle whose inputs and targets the epoch prefetches ahead of
#: the gather: all of the next mini-batch up to this size while the current
#: one computes, and inside a larger gather this many rows ahead of the row it
#: copies. 10 to 64 measured alike; 12-39% off the [784, 30, 10] epochs, up to
#: 9% off the [784, 100, 10] ones (``bench/RESULTS.md``).
PREFETCH_ROWS = 16

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
def _use_threads(threads, current, restore):
    """Switch SciPy's BLAS to ``threads`` unless it is there already, or
    ``restore`` is 0 (the epoch leaves the threads alone); the new current."""
    if restore == 0 or threads == current:
        return current
    _set_blas_threads(threads)
    return threads


@njit(cache=True)
def _pixel(code):
    """The float32 value load_mnist gives a pixel byte: k/255, correctly rounded."""
    return numpy.float32(numpy.float32(code) / numpy.float32(255))


@njit(cache=True)
def _gather_row(dst, src):
    """dst = src, or the pixel values of src's uint8 codes."""
    if src.itemsize == 1:
        for j in range(src.shape[0]):
            dst[j] = _pixel(src[j])
    else:
        dst[:] = src


@njit(cache=True)
def _prefetch_rows(X, Y, order, asked, until):
    """Prefetch the rows order[asked:until] of X and Y; the rows asked for so
    far (``until``, or ``asked`` if it is ahead of it)."""
    for g in range(asked, until):
        prefetch_row(X[order[g]])
        prefetch_row(Y[order[g]])
    return max(asked, until)


@njit(cache=True)
def _encode_pixels(X, codes):
    """Fill ``codes`` with k such that X == _pixel(k) elementwise; False as
    soon as an entry is not such a pixel value."""
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            k = round(X[i, j] * 255.0)
            if not 0 <= k <= 255:
                return False
            code = numpy.uint8(k)
            if _pixel(code) != X[i, j]:
                return False
            codes[i, j] = code
    return True


def pixel_codes(X):
    """X as uint8 codes k with X == k/255 exactly as :func:`nn_gpu.data.mnist.load_mnist`
    computes it (float32, then X's dtype), or None if X is not such data."""
    if X.ndim != 2 or X.dtype.kind != "f" or not X.flags.c_contiguous:
        return None
    codes = numpy.empty(X.shape, numpy.uint8)
    return codes if _encode_pixels(X, codes) else None


def _sigmoid(x):
    """σ(x) in compiled code: float32 through :func:`.exp32`, which
    vectorises, float64 through ``math.exp``."""


@overload(_sigmoid)
def _sigmoid_of(x):
    if x == types.float32:
        return lambda x: numpy.float32(1) / (numpy.float32(1) + exp32(-x))
    return lambda x: 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, error_model="numpy")
def _sigmoid_in_place(c, b, bias_per_row):
    """c = σ(c + b), b along c's columns, or along its rows where
    ``bias_per_row``: in place (LLVM leaves a loop from one array into another
    scalar when they may be the same), and with no zero-division check
    (1 + e^-x >= 1): the loop it vectorises."""
    for i in range(c.shape[0]):
        for j in range(c.shape[1]):
            c[i, j] = _sigmoid(c[i, j] + (b[i] if bias_per_row else b[j]))


@njit(cache=True)
def _activate(code, z, a, b):
    """a = f(z + b), row by row (softmax over each row); z may be a itself,
    or the transpose of the product as BLAS wrote it (σ overwrites that)."""
    if code == 0:                                  # σ along contiguous rows
        if z.strides[0] < z.strides[1]:            # z^T as BLAS wrote it
            _sigmoid_in_place(z.T, b, True)
            a[:] = z
        else:
            if z.ctypes.data != a.ctypes.data:
                a[:] = z
            _sigmoid_in_place(a, b, False)
        return
    for i in range(a.shape[0]):
        if code == 3:
            top = -numpy.inf
            for j in range(a.shape[1]):
                a[i, j] = z[i, j] + b[j]
                top = max(top, a[i, j])
            total = 0.0
            for j in range(a.shape[1]):
                a[i, j] = math.exp(a[i, j] - top)
                total += a[i, j]
            for j in range(a.shape[1]):
                a[i, j] /= total
            continue
        for j in range(a.shape[1]):
            x = z[i, j] + b[j]
            if code == 1:
                a[i, j] = math.tanh(x)
            else:
                a[i, j] = max(x, 0.0)


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
              quadratic, kinds, decay, momentum, velocity_w, velocity_b, threads, restore,
              transposed, kernels, ahead):
    """One epoch over the rows ``order`` of X/Y, updating weights and biases in place.

    X holds the inputs, or their uint8 pixel codes (:func:`pixel_codes`).
    ``threads[l]`` gives SciPy's BLAS threads for layer l's forward, backprop
    and update products of a full mini-batch (a smaller last one runs on one
    thread); at the end the BLAS is set back to ``restore`` threads. With
    ``restore`` 0 the thread count is never touched. ``transposed[l]``
    (n_{l+1}, batch_size), where given (non-empty), receives layer l's product
    of a full mini-batch as z^T = w a^T: the faster layout for few rows
    (:data:`TRANSPOSED_FORWARD_MAX_ROWS`). ``kernels[l]`` holds the addresses
    of the kernels of layer l's shape (:func:`epoch_kernels`) for that product
    and for a full mini-batch's update of w (or of its velocity), 0 where the
    BLAS makes it. ``ahead``: the rows of ``order`` prefetched ahead of the
    gather (:data:`PREFETCH_ROWS`; 0: none).

    ``activations[l]`` (batch_size, n_l), ``deltas[l]`` (batch_size, n_{l+1})
    and ``targets`` (batch_size, n_L) are scratch; ``kinds`` holds each
    layer's activation code; ``quadratic`` selects the quadratic cost's δ^L,
    else δ^L = a - y (cross-entropy, log-likelihood). ``decay`` = 1 - ηλ₂/n;
    with ``momentum`` > 0 the velocities are updated and added instead.
    """
    n = order.shape[0]
    layers = len(weights)
    ints = numpy.empty(6, numpy.int32)
    scalars = numpy.empty(2, weights[0].dtype)
    trans = numpy.array([ord("N"), ord("T")], numpy.uint8)
    current = asked = 0
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        full = m == batch_size
        x, y = activations[0][:m], targets[:m]
        for i in range(m):                                   # gather the mini-batch
            if ahead:
                asked = _prefetch_rows(X, Y, order, asked, min(n, start + i + 1 + ahead))
            _gather_row(x[i], X[order[start + i]])
            y[i, :] = Y[order[start + i]]
        if ahead:                                            # the next rows, while we compute
            asked = _prefetch_rows(X, Y, order, asked, min(n, start + m + ahead))
        for l in range(layers):                              # a^l = f(a^{l-1} w^T + b)
            a = activations[l + 1][:m]
            current = _use_threads(threads[l, 0] if full else 1, current, restore)
            if full and transposed[l].size:
                if kernels[l, 0]:
                    small_gemm.call_dot(kernels[l, 0], weights[l], activations[l], transposed[l])
                else:
                    numpy.dot(weights[l], activations[l][:m].T, transposed[l])
                _activate(kinds[l], transposed[l].T, a, biases[l])
            else:
                if full and kernels[l, 0]:
                    small_gemm.call_dot(kernels[l, 0], activations[l], weights[l], a)
                else:
                    numpy.dot(activations[l][:m], weights[l].T, a)
                _activate(kinds[l], a, a, biases[l])
        scale = eta / m                                      # (1), scaled by η/m
        a, delta = activations[layers][:m], deltas[layers - 1][:m]
        for i in range(m):
            for j in range(a.shape[1]):
                error = scale * (a[i, j] - y[i, j])
                delta[i, j] = error * a[i, j] * (1.0 - a[i, j]) if quadratic else error
        for l in range(layers - 1, 0, -1):                   # (2)
            delta = deltas[l - 1][:m]
            current = _use_threads(threads[l, 1] if full else 1, current, restore)
            numpy.dot(deltas[l][:m], weights[l], delta)
            a = activations[l][:m]
            for i in range(m):
                for j in range(a.shape[1]):
                    delta[i, j] *= _derivative(kinds[l - 1], a[i, j])
        for l in range(layers):                              # (3), (4): the SGD update
            delta, w, b = deltas[l][:m], weights[l], biases[l]
            current = _use_threads(threads[l, 2] if full else 1, current, restore)
            own = full and kernels[l, 1] != 0
            if momentum == 0.0:
                for i in range(m):
                    for j in range(b.shape[0]):
                        b[j] -= delta[i, j]
                if own:
                    small_gemm.call_update(kernels[l, 1], w, delta, activations[l], -1.0, decay)
                else:
                    _gemm_update(w, delta, activations[l][:m], -1.0, decay, ints, scalars, trans)
                continue
            v, vb = velocity_w[l], velocity_b[l]
            for j in range(b.shape[0]):
                vb[j] *= momentum
                for i in range(m):
                    vb[j] -= delta[i, j]
                b[j] += vb[j]
            if own:
                small_gemm.call_update(kernels[l, 1], v, delta, activations[l], -1.0, momentum)
            else:
                _gemm_update(v, delta, activations[l][:m], -1.0, momentum, ints, scalars, trans)
            for j in range(w.shape[0]):
                for k in range(w.shape[1]):
                    v[j, k] -= (1.0 - decay) * w[j, k]
                    w[j, k] += v[j, k]
    _use_threads(restore, current, restore)


def epoch_kernels(sizes, batch_size, dtype, use=True):
    """:func:`sgd_epoch`'s ``kernels``: per layer, the addresses of the
    kernels of its shape for the forward product and the update of a full
    mini-batch, where :func:`.small_gemm.chosen` names them (and ``use``), else
    0 (the BLAS). The kernels themselves stay in small_gemm's cache."""
    name = numpy.dtype(dtype).name
    chosen = small_gemm.chosen(sizes, batch_size, name) if use else []
    addresses = numpy.zeros((len(sizes) - 1, 2), numpy.int64)
    for l, (forward, update) in enumerate(chosen):
        n_in, n_out = sizes[l], sizes[l + 1]
        if forward and batch_size <= TRANSPOSED_FORWARD_MAX_ROWS:     # z^T = w a^T
            addresses[l, 0] = small_gemm.dot_nt(n_out, batch_size, n_in, name).address
        elif forward:                                                   # z = a w^T
            addresses[l, 0] = small_gemm.dot_nt(batch_size, n_out, n_in, name).address
        if update:
            addresses[l, 1] = small_gemm.update(n_out, n_in, batch_size, name).address
    return addresses


class CompiledEpoch:
    """:func:`sgd_epoch` as the backend's ``compiled_epoch`` for one training
    run: it keeps the uint8 codes of the run's inputs (made once, when they
    are pixel values) and chooses the BLAS threads of each call.

    ``quadratic``: whether δ^L is the quadratic cost's (else a - y).
    ``threads`` None: one thread for small products, and for the large ones
    whichever of one thread and the BLAS's configured count
    :class:`~.cpu_threads.ThreadChoice` finds faster; an int: that many for
    every product. ``small_gemm``: whether products that
    :func:`.small_gemm.chosen` names skip the BLAS for kernels of their shape
    -- in runs on at least :data:`KERNEL_MIN_EXAMPLES` examples.
    ``ahead`` (attribute): the rows prefetched ahead of the gather,
    :data:`PREFETCH_ROWS`; the benchmarks set 0 to time the epoch without.
    """

    def __init__(self, plan, quadratic, threads=None, small_gemm=True):
        self.kinds = numpy.array([ACTIVATION_CODES[kind] for kind in plan.kinds], numpy.int64)
        self.quadratic = quadratic
        self.threads = threads
        self.choice = None
        self._inputs = (None, None)
        self._transposed = {}
        self.small_gemm = small_gemm and plan.train_size >= KERNEL_MIN_EXAMPLES
        self._kernels = {}
        self.ahead = PREFETCH_ROWS

    def inputs(self, X):
        """What the gather reads for X: its pixel codes where it has them."""
        if self._inputs[0] is not X:
            codes = pixel_codes(X)
            self._inputs = (X, X if codes is None else codes)
        return self._inputs[1]

    def transposed(self, sizes, batch_size, dtype):
        """The z^T buffers of the forward products (empty ones: plain layout)."""
        key = (tuple(sizes), batch_size, dtype)
        if key not in self._transposed:
            rows = batch_size if batch_size <= TRANSPOSED_FORWARD_MAX_ROWS else 0
            self._transposed[key] = tuple(numpy.empty((n, rows), dtype) for n in sizes[1:])
        return self._transposed[key]

    def kernels(self, sizes, batch_size, dtype):
        """:func:`epoch_kernels` for this run, made once."""
        key = (tuple(sizes), batch_size, dtype)
        if key not in self._kernels:
            self._kernels[key] = epoch_kernels(sizes, batch_size, dtype, self.small_gemm)
        return self._kernels[key]

    def thread_tables(self, sizes, batch_size):
        """(thread table of the segment, of its probe or None, threads to
        restore, the ThreadChoice to tell the times or None)."""
        _, switch = cpu_threads.scipy_blas()
        configured = cpu_threads.configured_threads()
        layers = len(sizes) - 1
        if switch is None:      # not an OpenBLAS we can switch: threads as configured
            return numpy.zeros((layers, 3), numpy.int32), None, 0, None
        if self.threads is not None:
            return numpy.full((layers, 3), self.threads, numpy.int32), None, configured, None
        top = numpy.array(cpu_threads.thread_table(sizes, batch_size, configured), numpy.int32)
        if top.max() <= 1:      # nothing large enough to share out
            return top, None, configured, None
        if self.choice is None or self.choice.choices[1] != configured:
            self.choice = cpu_threads.ThreadChoice(configured, cpu_threads.IdleCores())
        probe = self.choice.probe()
        return (numpy.minimum(top, self.choice.best),
                None if probe is None else numpy.minimum(top, probe), configured, self.choice)

    def __call__(self, plan, weights, biases, X, Y, order, batch_size, workspace):
        sizes = [X.shape[1]] + [w.shape[0] for w in weights]
        table, probe, restore, choice = self.thread_tables(sizes, batch_size)
        transposed = self.transposed(sizes, batch_size, weights[0].dtype)
        kernels = self.kernels(sizes, batch_size, weights[0].dtype)
        parts = [(order, table)]
        if probe is not None:   # the probe: the segment's first quarter of steps (at least one)
            rows = batch_size * max(1, order.shape[0] // batch_size // 4)
            parts = [(order[:rows], probe), (order[rows:], table)]
        for part, threads in parts:
            if part.shape[0]:
                started = time.perf_counter()
                self._run(plan, weights, biases, X, Y, part, batch_size, workspace, threads,
                          restore, transposed, kernels)
                if choice is not None:
                    choice.record(int(threads.max()),
                                       (time.perf_counter() - started) / part.shape[0])
        return True

    def _run(self, plan, weights, biases, X, Y, order, batch_size, workspace, threads, restore,
             transposed, kernels):
        momentum = workspace.velocity_w is not None
        sgd_epoch(self.inputs(X), Y, order, tuple(weights), tuple(biases),
                  (workspace.inputs[:batch_size], *workspace.hidden),
                  tuple(workspace.deltas), workspace.targets[:batch_size],
                  batch_size, float(plan.eta), self.quadratic, self.kinds, float(plan.decay),
                  float(plan.momentum),
                  tuple(workspace.velocity_w if momentum else workspace.grad_w),
                  tuple(workspace.velocity_b if momentum else workspace.grad_b),
                  threads, restore, transposed, kernels, self.ahead)
