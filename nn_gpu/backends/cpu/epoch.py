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
layers, the three costs, L2 and momentum; what it refuses (dropout, L1...)
runs on the core's loop (:mod:`nn_gpu.backends.capabilities`). Its
interface is three named records (:mod:`.records`). All BLAS calls here go to SciPy's BLAS (Numba's
``np.dot`` uses it too), never alternating with NumPy's in the inner loop:
two OpenBLAS thread pools taking turns spin against each other.

Two things keep it fast where the machine is not idle and memory is slow:
each product gets its own BLAS thread count (:mod:`.threads`), and
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

from .. import measured
from . import small_gemm
from . import threads as cpu_threads
from .float32_exp import exp32
from .prefetch import prefetch_row
from .records import ACTIVATION_CODES, EpochBuffers, EpochCall, EpochConstants

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
def _use_threads(threads, current, switch):
    """Switch SciPy's BLAS to ``threads`` unless it is there already, or not
    to ``switch`` at all (the epoch leaves the threads alone); the new current."""
    if not switch or threads == current:
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
    """σ(x) in compiled code: float32 through :func:`.float32_exp.exp32`, which
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


@njit(cache=True, inline="always")
def _gather(X, Y, order, start, m, x, y, prefetch_rows, asked):
    """x, y = the rows order[start:start + m] of X and Y, prefetching the
    rows after them; the rows asked for so far."""
    n = order.shape[0]
    for i in range(m):
        if prefetch_rows:
            asked = _prefetch_rows(X, Y, order, asked, min(n, start + i + 1 + prefetch_rows))
        _gather_row(x[i], X[order[start + i]])
        y[i, :] = Y[order[start + i]]
    if prefetch_rows:                                        # the next rows, while we compute
        asked = _prefetch_rows(X, Y, order, asked, min(n, start + m + prefetch_rows))
    return asked


@njit(cache=True, inline="always")
def _forward(weights, biases, constants, buffers, call, m, current):
    """a^l = f(a^{l-1} w^T + b) for every layer; the BLAS threads now set."""
    full = m == constants.batch_size
    activations, transposed = buffers.activations, buffers.transposed
    for l in range(len(weights)):
        a = activations[l + 1][:m]
        kernel = constants.kernels[l, 0] if full else 0
        current = _use_threads(call.threads[l, 0] if full else 1, current,
                               constants.switch_threads)
        if full and transposed[l].size:                      # z^T = w a^T
            if kernel:
                small_gemm.call_dot(kernel, weights[l], activations[l], transposed[l])
            else:
                numpy.dot(weights[l], activations[l][:m].T, transposed[l])
            _activate(constants.activation_codes[l], transposed[l].T, a, biases[l])
        else:
            if kernel:
                small_gemm.call_dot(kernel, activations[l], weights[l], a)
            else:
                numpy.dot(activations[l][:m], weights[l].T, a)
            _activate(constants.activation_codes[l], a, a, biases[l])
    return current


@njit(cache=True, inline="always")
def _output_error(a, y, delta, scale, quadratic):
    """δ^L = scale · (a - y), times σ'(z^L) = a(1 - a) for the quadratic cost:
    equation (1), pre-scaled by η/m."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            error = scale * (a[i, j] - y[i, j])
            delta[i, j] = error * a[i, j] * (1.0 - a[i, j]) if quadratic else error


@njit(cache=True, inline="always")
def _backpropagate(weights, constants, buffers, call, m, current):
    """δ^l = (δ^{l+1} w^{l+1}) ⊙ f'(z^l): equation (2), down to the first
    layer; the BLAS threads now set."""
    full = m == constants.batch_size
    deltas, activations = buffers.deltas, buffers.activations
    for l in range(len(weights) - 1, 0, -1):
        delta = deltas[l - 1][:m]
        current = _use_threads(call.threads[l, 1] if full else 1, current,
                               constants.switch_threads)
        numpy.dot(deltas[l][:m], weights[l], delta)
        a = activations[l][:m]
        code = constants.activation_codes[l - 1]
        for i in range(m):
            for j in range(a.shape[1]):
                delta[i, j] *= _derivative(code, a[i, j])
    return current


def _update_layer(velocities, l, w, b, delta, a_in, kernel, decay, momentum, blas):
    """One layer's SGD step from δ (already η/m Σ ∇C) and its input a_in:
    equations (3), (4) with L2 ``decay``, and momentum where ``velocities``
    holds them (None: plain SGD). ``kernel``: the shape kernel of this
    update's w (0: the BLAS); ``blas``: _gemm_update's scratch."""


@overload(_update_layer, inline="always")
def _update_layer_of(velocities, l, w, b, delta, a_in, kernel, decay, momentum, blas):
    if isinstance(velocities, types.NoneType):
        return _plain_update
    return _momentum_update


def _plain_update(velocities, l, w, b, delta, a_in, kernel, decay, momentum, blas):
    """b -= Σ_rows δ; w = decay·w - δ^T a_in, in one product."""
    m = delta.shape[0]
    for i in range(m):
        for j in range(b.shape[0]):
            b[j] -= delta[i, j]
    if kernel:
        small_gemm.call_update(kernel, w, delta, a_in, -1.0, decay)
    else:
        _gemm_update(w, delta, a_in, -1.0, decay, *blas)


def _momentum_update(velocities, l, w, b, delta, a_in, kernel, decay, momentum, blas):
    """v = μv - δ^T a_in - (1 - decay)·w, w += v (and alike for b, undecayed)."""
    v, vb = velocities[l]
    m = delta.shape[0]
    for j in range(b.shape[0]):
        vb[j] *= momentum
        for i in range(m):
            vb[j] -= delta[i, j]
        b[j] += vb[j]
    if kernel:
        small_gemm.call_update(kernel, v, delta, a_in, -1.0, momentum)
    else:
        _gemm_update(v, delta, a_in, -1.0, momentum, *blas)
    for j in range(w.shape[0]):
        for k in range(w.shape[1]):
            v[j, k] -= (1.0 - decay) * w[j, k]
            w[j, k] += v[j, k]


@njit(cache=True, inline="always")
def _update(weights, biases, constants, buffers, call, m, current, blas):
    """Every layer's SGD step (equations (3), (4)); the BLAS threads now set."""
    full = m == constants.batch_size
    for l in range(len(weights)):
        current = _use_threads(call.threads[l, 2] if full else 1, current,
                               constants.switch_threads)
        kernel = constants.kernels[l, 1] if full else 0
        _update_layer(buffers.velocities, l, weights[l], biases[l], buffers.deltas[l][:m],
                      buffers.activations[l][:m], kernel, call.decay, constants.momentum, blas)
    return current


@njit(cache=True)
def sgd_epoch(X, Y, order, weights, biases, constants, buffers, call):
    """One epoch over the rows ``order`` of X/Y, updating ``weights`` and
    ``biases`` (tuples of arrays) in place.

    X holds the inputs, or their uint8 pixel codes (:func:`pixel_codes`).
    ``constants`` (:class:`.records.EpochConstants`), ``buffers``
    (:class:`.records.EpochBuffers`) and ``call``
    (:class:`.records.EpochCall`) say the rest. Where the constants say so,
    SciPy's BLAS threads are set per product and left as the last product
    had them: :class:`CompiledEpoch` restores them after each call.
    """
    n = order.shape[0]
    blas = (numpy.empty(6, numpy.int32), numpy.empty(2, weights[0].dtype),
            numpy.array([ord("N"), ord("T")], numpy.uint8))
    layers = len(weights)
    current = asked = 0
    for start in range(0, n, constants.batch_size):
        m = min(constants.batch_size, n - start)
        y = buffers.targets[:m]
        asked = _gather(X, Y, order, start, m, buffers.activations[0][:m], y,
                        constants.prefetch_rows, asked)
        current = _forward(weights, biases, constants, buffers, call, m, current)
        _output_error(buffers.activations[layers][:m], y, buffers.deltas[layers - 1][:m],
                      call.eta / m, constants.quadratic_error)
        current = _backpropagate(weights, constants, buffers, call, m, current)
        current = _update(weights, biases, constants, buffers, call, m, current, blas)


def epoch_kernels(sizes, batch_size, dtype, use=True):
    """:class:`.records.EpochConstants`' ``kernels``: per layer, the
    addresses of the kernels of its shape for the forward product and the
    update of a full mini-batch, where :func:`.small_gemm.chosen` names them
    (and ``use``), else 0 (the BLAS). The kernels themselves stay in
    small_gemm's cache."""
    name = numpy.dtype(dtype).name
    chosen = small_gemm.chosen(sizes, batch_size, name) if use else []
    addresses = numpy.zeros((len(sizes) - 1, 2), numpy.int64)
    for l, (forward, update) in enumerate(chosen):
        n_in, n_out = sizes[l], sizes[l + 1]
        if forward and batch_size <= measured.TRANSPOSED_FORWARD_MAX_ROWS:   # z^T = w a^T
            addresses[l, 0] = small_gemm.dot_nt(n_out, batch_size, n_in, name).address
        elif forward:                                                        # z = a w^T
            addresses[l, 0] = small_gemm.dot_nt(batch_size, n_out, n_in, name).address
        if update:
            addresses[l, 1] = small_gemm.update(n_out, n_in, batch_size, name).address
    return addresses


def transposed_buffers(sizes, batch_size, dtype):
    """:class:`.records.EpochBuffers`' ``transposed``: z^T buffers of the
    forward products up to :data:`~nn_gpu.backends.measured.TRANSPOSED_FORWARD_MAX_ROWS`
    rows, else empty ones (the plain layout)."""
    rows = batch_size if batch_size <= measured.TRANSPOSED_FORWARD_MAX_ROWS else 0
    return tuple(numpy.empty((n, rows), dtype) for n in sizes[1:])


class CompiledEpoch:
    """:func:`sgd_epoch` as the backend's ``compiled_epoch`` for one training
    run: it keeps the uint8 codes of the run's inputs (made once, when they
    are pixel values), makes the run's records once, and chooses the BLAS
    threads of each call -- and puts SciPy's BLAS back to its threads after
    each call, so nothing outside the call sees them changed.

    ``plan``: the run's :class:`nn_gpu.model.core.Plan` (its activations,
    cost and momentum are the run's constants). ``threads`` None: one thread
    for small products, and for the large ones whichever of one thread and
    the BLAS's configured count :class:`~.threads.ThreadChoice` finds
    faster; an int: that many for every product. ``small_gemm``: whether
    products that :func:`.small_gemm.chosen` names skip the BLAS for kernels
    of their shape -- in runs on at least
    :data:`~nn_gpu.backends.measured.KERNEL_MIN_EXAMPLES` examples.
    ``prefetch_rows`` (attribute): the rows prefetched ahead of the gather,
    :data:`~nn_gpu.backends.measured.PREFETCH_ROWS`; the benchmarks set 0 to
    time the epoch without.
    """

    def __init__(self, plan, threads=None, small_gemm=True):
        self.codes = numpy.array([ACTIVATION_CODES[kind] for kind in plan.kinds], numpy.int64)
        self.quadratic_error = plan.error_form == "quadratic"
        self.momentum = float(plan.momentum)
        self.threads = threads
        self.choice = None
        self._records = None
        self.small_gemm = small_gemm and plan.train_size >= measured.KERNEL_MIN_EXAMPLES
        self.prefetch_rows = measured.PREFETCH_ROWS

    def inputs(self, X, cache=None):
        """What the gather reads of the training set X, passed to each call
        in X's place: its pixel codes where it has them (a quarter of the
        bytes), else X. ``cache(key, make)``, where given, keeps the codes
        with the data set X comes from: encoding MNIST's training set takes
        longer than a small network's epoch."""
        key = ("pixel_codes", X.dtype.name)
        codes = pixel_codes(X) if cache is None else cache(key, lambda: pixel_codes(X))
        return X if codes is None else codes

    def constants(self, sizes, batch_size, dtype):
        """The run's :class:`.records.EpochConstants` (the shape kernels are
        compiled here)."""
        _, switch = cpu_threads.scipy_blas()
        return EpochConstants(
            batch_size=batch_size, activation_codes=self.codes,
            quadratic_error=self.quadratic_error, momentum=self.momentum,
            prefetch_rows=self.prefetch_rows,
            kernels=epoch_kernels(sizes, batch_size, dtype, self.small_gemm),
            switch_threads=switch is not None)

    @staticmethod
    def buffers(sizes, batch_size, dtype, workspace):
        """The run's :class:`.records.EpochBuffers`: ``workspace``'s arrays,
        and the z^T buffers of :func:`transposed_buffers`."""
        velocities = (None if workspace.velocity_w is None
                      else tuple(zip(workspace.velocity_w, workspace.velocity_b)))
        return EpochBuffers(activations=(workspace.inputs[:batch_size], *workspace.hidden),
                            deltas=tuple(workspace.deltas),
                            targets=workspace.targets[:batch_size],
                            transposed=transposed_buffers(sizes, batch_size, dtype),
                            velocities=velocities)

    def records(self, sizes, batch_size, dtype, workspace):
        """(constants, buffers) of the run, made once for ``workspace`` (each
        call of an epoch passes the same; the benchmarks may change
        :attr:`prefetch_rows` between calls)."""
        key = (workspace, batch_size, numpy.dtype(dtype), self.prefetch_rows)
        if self._records is None or self._records[0] != key:
            self._records = (key, self.constants(sizes, batch_size, dtype),
                             self.buffers(sizes, batch_size, dtype, workspace))
        return self._records[1:]

    def thread_tables(self, sizes, batch_size):
        """(thread table of the segment, of its probe or None, the
        ThreadChoice to tell the times or None)."""
        _, switch = cpu_threads.scipy_blas()
        configured = cpu_threads.configured_threads()
        layers = len(sizes) - 1
        if switch is None:      # not an OpenBLAS we can switch: threads as configured
            return numpy.zeros((layers, 3), numpy.int32), None, None
        if self.threads is not None:
            return numpy.full((layers, 3), self.threads, numpy.int32), None, None
        top = numpy.array(cpu_threads.thread_table(sizes, batch_size, configured), numpy.int32)
        if top.max() <= 1:      # nothing large enough to share out
            return top, None, None
        if self.choice is None or self.choice.choices[1] != configured:
            self.choice = cpu_threads.ThreadChoice(configured, cpu_threads.IdleCores())
        probe = self.choice.probe()
        return (numpy.minimum(top, self.choice.best),
                None if probe is None else numpy.minimum(top, probe), self.choice)

    def __call__(self, plan, weights, biases, X, Y, order, batch_size, workspace):
        """Train the steps of ``order``; X is what :meth:`inputs` made of the
        training set."""
        sizes = [X.shape[1]] + [w.shape[0] for w in weights]
        dtype = weights[0].dtype
        table, probe, choice = self.thread_tables(sizes, batch_size)
        constants, buffers = self.records(sizes, batch_size, dtype, workspace)
        parts = [(order, table)]
        if probe is not None:   # the probe: the segment's first quarter of steps (at least one)
            rows = batch_size * max(1, order.shape[0] // batch_size // 4)
            parts = [(order[:rows], probe), (order[rows:], table)]
        params = (tuple(weights), tuple(biases))
        with cpu_threads.blas_threads_kept():
            for part, threads in parts:
                if part.shape[0]:
                    started = time.perf_counter()
                    sgd_epoch(X, Y, part, *params, constants, buffers,
                              EpochCall(float(plan.eta), float(plan.decay), threads))
                    if choice is not None:
                        choice.record(int(threads.max()),
                                      (time.perf_counter() - started) / part.shape[0])
        return True
