"""The layers of the book's chapter 6 (``network3.py``), batched over a whole
mini-batch on any backend.

A layer is a description (shapes, activation, dropout); its parameters
(w^l, b^l) live in the network, as with :class:`nn_gpu.Network`. Every layer
reads and writes its activations as one row per example, ``(m, n)``, the
maps of a convolutional layer flattened map by map, row by row (Theano's
(map, row, column) order, so ``reshape(m, maps, rows, columns)`` recovers
the images).

Each layer has three methods over a mini-batch:

* ``forward(backend, w, b, a_in, mask)`` -> (a^l, cache): feedforward,
  keeping what backprop needs;
* ``delta(backend, cache, grad_a)``: δ^l = ∂C/∂a^l ⊙ f'(z^l), equation (2)
  finished in place, f' written in a^l = f(z^l);
* ``gradients(backend, w, cache, delta, grad_w, grad_b, want_input)``:
  equations (3) and (4) summed over the mini-batch, and ∂C/∂a^{l-1}, the
  first factor of the layer below's equation (2), when ``want_input``.

As in network3.py, dropout belongs to the layer it feeds: a fully connected
or softmax layer with ``p_dropout`` drops each of its *inputs* with that
probability while training. We use inverted dropout (kept inputs scaled by
1/(1-p) in training, nothing at evaluation) where network3.py scales the
weights by (1-p) at evaluation; the two agree in expectation.
"""

import contextlib
import math

import numpy

from ..errors import InvalidArgumentError
from ..options import ACTIVATIONS, choice, positive_int, shape, unit_interval


class FullyConnectedLayer:
    """a^l = f(z^l), z^l = a^{l-1} (w^l)^T + b^l over the rows of a mini-batch:
    the chapter-3 layer, with w^l of shape (n_out, n_in).

    Backprop, with Δ^l the m x n_out matrix of the rows' δ^l:

        Δ^l = ∂C/∂A^l ⊙ f'(Z^l)                  (2), second half
        ∂C/∂b^l = Σ_rows Δ^l                      (3)
        ∂C/∂w^l = (Δ^l)^T A^{l-1}                 (4)
        ∂C/∂A^{l-1} = Δ^l w^l                      (2), first half, for layer l-1

    With dropout, A^{l-1} is the masked input, and a dropped input passes no
    error back (the mask multiplies ∂C/∂A^{l-1} too).
    """

    kind = "fully_connected"

    def __init__(self, n_in, n_out, activation="sigmoid", p_dropout=0.0):
        self.n_in = positive_int(n_in, "n_in")
        self.n_out = positive_int(n_out, "n_out")
        self.activation = choice(activation, ACTIVATIONS, "activation")
        self.p_dropout = unit_interval(p_dropout, "p_dropout")

    def __repr__(self):
        return f"{type(self).__name__}({self.spec()})"

    def spec(self):
        """The layer as a JSON-able dict (saved in model files)."""
        return {"kind": self.kind, "n_in": self.n_in, "n_out": self.n_out,
                "activation": self.activation, "p_dropout": self.p_dropout}

    @property
    def weight_shape(self):
        return (self.n_out, self.n_in)

    def initial_parameters(self, rng):
        """(w, b) on the host: network3.py's w ~ N(0, 1/n_out), b ~ N(0, 1)."""
        return (rng.normal(0.0, math.sqrt(1.0 / self.n_out), self.weight_shape),
                rng.normal(0.0, 1.0, self.n_out))

    def forward(self, backend, w, b, a_in, mask=None):
        xp = backend.xp
        if mask is not None:
            a_in = a_in * mask
        with one_blas_thread(backend):
            a = xp.matmul(a_in, w.T)
        xp.add(a, b, out=a)
        backend.activate(self.activation, a, out=a)
        return a, (a_in, a, mask)

    def delta(self, backend, cache, grad_a):
        return backend.times_derivative(self.activation, cache[1], out=grad_a)

    def gradients(self, backend, w, cache, delta, grad_w, grad_b, want_input):
        a_in, _, mask = cache
        with one_blas_thread(backend):
            backend.weight_gradient(delta, a_in, grad_w, grad_b)
            if not want_input:
                return None
            grad_in = backend.xp.matmul(delta, w)
        if mask is not None:
            backend.xp.multiply(grad_in, mask, out=grad_in)
        return grad_in


class SoftmaxLayer(FullyConnectedLayer):
    """The output layer: a^L = softmax(z^L), trained with the log-likelihood
    cost C = -ln a^L_y, for which δ^L = a^L - y (equation (1)). Its weights
    start at 0, as in network3.py."""

    kind = "softmax"

    def __init__(self, n_in, n_out, p_dropout=0.0):
        super().__init__(n_in, n_out, p_dropout=p_dropout)
        self.activation = "softmax"

    def spec(self):
        spec = super().spec()
        del spec["activation"]
        return spec

    def initial_parameters(self, rng):
        return numpy.zeros(self.weight_shape), numpy.zeros(self.n_out)


class ConvPoolLayer:
    """A convolutional layer followed by max-pooling, as network3.py's.

    Input: m images of ``image_shape`` = (C, H, W): C feature maps a^{l-1}_c.
    Filters w^l of ``filter_shape`` = (F, C, k, k), one bias b^l_f per output
    map. For output map f, with valid convolutions of stride 1 (written, like
    every framework, as a correlation; Theano flips the filter, which only
    mirrors what it learns):

        z_{f,i,j} = Σ_{c,p,q} w^l_{f,c,p,q} a^{l-1}_{c,i+p,j+q}     0 <= i < H-k+1
        u_{f,I,J} = max over the pool x pool window (I,J) of z_f     (rows left over dropped)
        a^l_{f,I,J} = f(u_{f,I,J} + b^l_f)

    (network3.py adds b after pooling; f being increasing, pooling f(z + b)
    would give the same a^l.) With δ^l_{f,I,J} = ∂C/∂(u + b)_{f,I,J}:

        δ^l = ∂C/∂a^l ⊙ f'(u + b)                                   (2), second half
        ∂C/∂z_{f,i,j} = δ^l_{f,I,J} if (i,j) is the first maximum of its window, else 0
        ∂C/∂b^l_f = Σ_{I,J} δ^l_{f,I,J}                             (3)
        ∂C/∂w^l_{f,c,p,q} = Σ_{i,j} ∂C/∂z_{f,i,j} a^{l-1}_{c,i+p,j+q}  (4)
        ∂C/∂a^{l-1}_{c,y,x} = Σ_{f,p,q} ∂C/∂z_{f,y-p,x-q} w^l_{f,c,p,q}  (2), first half

    Batched, each is a matrix product over the whole mini-batch ("im2col"):
    the k x k windows of every image are laid out as the rows of a matrix P
    (C·k·k columns), a sliding-window view copied once, so Z = P (w^l)^T with
    w^l as an F x C·k·k matrix; ∂C/∂w^l = (∂C/∂Z)^T P; and ∂C/∂P = (∂C/∂Z) w^l
    is folded back onto the input pixels by k·k strided additions
    ("col2im"). P's rows are ordered by position in the pooling window
    first, (r, s, image, I, J) for z at (I·pool + r, J·pool + s): Z is then
    pool² contiguous blocks of m·Hp·Wp rows, and max-pooling and its
    backprop are elementwise passes over whole blocks. (Conv outputs that
    pooling drops are never computed.) The buffers hold one mini-batch (or
    one scoring chunk), never a whole data set. This lowering is what the
    CuPy backend runs (``_forward_lowered``, ``_gradients_lowered``).

    On the NumPy backend the same math runs compiled, a few images at a time
    so that it stays in the cache, and backprop from the pooled units alone
    where a filter row is long (:mod:`.kernels`; ``_forward_compiled``,
    ``_gradients_compiled``; the lowering is their tests' twin).
    """

    kind = "conv_pool"

    def __init__(self, image_shape, filter_shape, pool=2, activation="sigmoid"):
        image_shape = shape(image_shape, 3, "image_shape", ("maps", "rows", "columns"))
        filter_shape = shape(filter_shape, 4, "filter_shape",
                             ("filters", "maps", "rows", "columns"))
        self.pool = positive_int(pool, "pool")
        channels, height, width = image_shape
        filters, maps, k, k2 = filter_shape
        if maps != channels or k != k2:
            raise InvalidArgumentError(
                f"filter_shape {list(filter_shape)} must be (filters, {channels}, k, k): square "
                f"filters over the {channels} input map(s) of image_shape")
        if k > min(height, width) or (min(height, width) - k + 1) < self.pool:
            raise InvalidArgumentError(
                f"filter_shape and pool: {k}x{k} filters and {self.pool}x{self.pool} pooling "
                f"do not fit the {height}x{width} images of image_shape")
        self.image_shape, self.filter_shape = image_shape, filter_shape
        self.activation = choice(activation, ACTIVATIONS, "activation")
        self.conv_shape = (height - k + 1, width - k + 1)
        self.output_shape = (filters, self.conv_shape[0] // pool, self.conv_shape[1] // pool)
        self.n_in = math.prod(image_shape)
        self.n_out = math.prod(self.output_shape)
        self.p_dropout = 0.0  # none in convolutional layers, as in network3.py

    def __repr__(self):
        return f"ConvPoolLayer({self.spec()})"

    def spec(self):
        return {"kind": self.kind, "image_shape": list(self.image_shape),
                "filter_shape": list(self.filter_shape), "pool": self.pool,
                "activation": self.activation}

    @property
    def weight_shape(self):
        return self.filter_shape

    def initial_parameters(self, rng):
        """network3.py's w ~ N(0, 1/n) with n = F·k·k / pool² (the inputs a
        pooled unit's gradient reaches), b ~ N(0, 1)."""
        filters, _, k, _ = self.filter_shape
        n = filters * k * k / self.pool ** 2
        return rng.normal(0.0, math.sqrt(1.0 / n), self.filter_shape), rng.normal(0.0, 1.0, filters)

    def patch_bytes(self, itemsize):
        """Bytes of the im2col matrix P for one image."""
        channels, _, _ = self.image_shape
        _, hp, wp = self.output_shape
        return self.pool ** 2 * hp * wp * channels * self.filter_shape[2] ** 2 * itemsize

    # ---------------------------------------------------------- lowering
    def _images(self, a_in):
        """The (m, n_in) rows as an (m, H, W, C) view, channels last."""
        channels, height, width = self.image_shape
        return a_in.reshape(a_in.shape[0], channels, height, width).transpose(0, 2, 3, 1)

    def _windows(self, backend, images):
        """An (r, s, image, I, J, c, p, q) view (no copy) of (m, H, W, C)
        ``images``: pixel (I·pool + r + p, J·pool + s + q) of map c, i.e.
        P's entries, rows grouped by position (r, s) in the pooling window."""
        m, _, _, channels = images.shape
        pool, k, (_, hp, wp) = self.pool, self.filter_shape[2], self.output_shape
        sn, sh, sw, sc = images.strides
        return backend.xp.lib.stride_tricks.as_strided(
            images, shape=(pool, pool, m, hp, wp, channels, k, k),
            strides=(sh, sw, sn, pool * sh, pool * sw, sc, sh, sw))

    # ---------------------------------------------------------- the math
    def forward(self, backend, w, b, a_in, mask=None):
        if compiled_here(backend, w, a_in):
            return self._forward_compiled(backend, w, b, a_in)
        return self._forward_lowered(backend, w, b, a_in)

    def gradients(self, backend, w, cache, delta, grad_w, grad_b, want_input):
        if len(cache) == 4:  # (x, where, a, "compiled"): the compiled forward pass's
            return self._gradients_compiled(backend, w, cache, delta, grad_w, grad_b,
                                            want_input)
        return self._gradients_lowered(backend, w, cache, delta, grad_w, grad_b, want_input)

    def delta(self, backend, cache, grad_a):
        return backend.times_derivative(self.activation, cache[2], out=grad_a)

    # ------------------------------------------------- compiled, on the CPU
    def _forward_compiled(self, backend, w, b, a_in):
        """The forward pass by :mod:`.kernels`, a block of images at a time;
        the cache holds the input and each window's first maximum."""
        from . import kernels  # here: Numba only where the CPU runs the layer

        x = numpy.ascontiguousarray(a_in)
        a = numpy.empty((x.shape[0], self.n_out), x.dtype)
        where = numpy.empty(a.shape, numpy.int8)
        with kernels.blas_threads() as blas:
            plan = kernels.plan(self, x.dtype, x.shape[0], backend.threads, blas)
            plan.forward(x, w.reshape(w.shape[0], -1), b, a, where)
        return a, (x, where, a, "compiled")

    def _gradients_compiled(self, backend, w, cache, delta, grad_w, grad_b, want_input):
        """Backprop by :mod:`.kernels` into grad_w and grad_b (contiguous,
        as the network keeps them)."""
        from . import kernels

        x, where, _, _ = cache
        delta = numpy.ascontiguousarray(delta)
        m = delta.shape[0]
        grad_in = numpy.empty((m if want_input else 0, self.n_in), delta.dtype)
        with kernels.blas_threads() as blas:
            plan = kernels.plan(self, delta.dtype, m, backend.threads, blas)
            plan.backward(x, w.reshape(w.shape[0], -1), delta, where,
                          grad_w.reshape(w.shape[0], -1), grad_b, grad_in)
        return grad_in if want_input else None

    # ---------------------------------------- lowered to NumPy/CuPy arrays
    def _forward_lowered(self, backend, w, b, a_in):
        """The forward pass over the whole mini-batch's im2col matrix (the
        CuPy backend's, and the compiled kernels' twin)."""
        xp = backend.xp
        m, pool = a_in.shape[0], self.pool
        filters, channels, k, _ = self.filter_shape
        P = xp.ascontiguousarray(self._windows(backend, self._images(a_in)))
        P = P.reshape(-1, channels * k * k)
        z = xp.matmul(P, w.reshape(filters, -1).T).reshape(pool * pool, -1, filters)
        # Max-pooling as pool² - 1 elementwise passes over whole blocks,
        # remembering which block held each window's first maximum.
        pooled = z[0].copy()
        first_max = xp.zeros(pooled.shape, dtype=xp.int8)
        for offset in range(1, pool * pool):
            larger = z[offset] > pooled
            xp.maximum(pooled, z[offset], out=pooled)
            xp.copyto(first_max, offset, where=larger)
        a = xp.empty((m, self.n_out), dtype=a_in.dtype)
        maps = a.reshape(m, *self.output_shape).transpose(0, 2, 3, 1)  # (m, Hp, Wp, F) view
        xp.add(pooled.reshape(maps.shape), b, out=maps)
        backend.activate(self.activation, a, out=a)
        return a, (P, first_max, a)

    def _gradients_lowered(self, backend, w, cache, delta, grad_w, grad_b, want_input):
        """Backprop through the lowered forward pass's cache."""
        xp = backend.xp
        P, first_max, _ = cache
        m, pool = delta.shape[0], self.pool
        filters, channels, k, _ = self.filter_shape
        _, hp, wp = self.output_shape
        delta_maps = xp.ascontiguousarray(  # rows (image, I, J), like first_max
            delta.reshape(m, *self.output_shape).transpose(0, 2, 3, 1)).reshape(-1, filters)
        xp.sum(delta_maps, axis=0, out=grad_b)
        # ∂C/∂z: δ in the block of each window's first maximum, 0 in the others.
        grad_z = xp.empty((pool * pool, *delta_maps.shape), dtype=delta.dtype)
        for offset in range(pool * pool):
            xp.multiply(first_max == offset, delta_maps, out=grad_z[offset])
        grad_z = grad_z.reshape(-1, filters)
        xp.matmul(grad_z.T, P, out=grad_w.reshape(filters, -1))
        if not want_input:
            return None
        grad_P = xp.matmul(grad_z, w.reshape(filters, -1)).reshape(
            pool, pool, m, hp, wp, channels, k, k)
        channels, height, width = self.image_shape
        images = xp.zeros((m, height, width, channels), dtype=delta.dtype)
        sn, sh, sw, sc = images.strides
        for p in range(k):  # col2im: for each (p, q), the windows' pixels cover the grid once
            for q in range(k):
                target = xp.lib.stride_tricks.as_strided(  # a view: += writes into images
                    images[:, p:, q:], shape=(pool, pool, m, hp, wp, channels),
                    strides=(sh, sw, sn, pool * sh, pool * sw, sc))
                target += grad_P[..., p, q]
        grad_in = xp.empty((m, self.n_in), dtype=delta.dtype)
        self._images(grad_in)[...] = images
        return grad_in


def one_blas_thread(backend):
    """On the NumPy backend, a context holding the BLAS to one thread
    (:class:`.kernels.BlasThreads`: a multi-threaded BLAS on a busy machine
    spins waiting for cores; the conv layers' second thread is their own);
    elsewhere nothing."""
    if backend.name != "numpy":
        return contextlib.nullcontext()
    from . import kernels

    return kernels.blas_threads()


def compiled_here(backend, w, a):
    """Whether the conv-pool passes run compiled (:mod:`.kernels`): on the
    NumPy backend, float32 or float64 throughout."""
    return (backend.name == "numpy" and type(a) is numpy.ndarray and a.ndim == 2
            and a.dtype == w.dtype and a.dtype.type in (numpy.float32, numpy.float64))


LAYER_KINDS = {cls.kind: cls for cls in (ConvPoolLayer, FullyConnectedLayer, SoftmaxLayer)}


def layer_from_spec(spec):
    """A layer from the dict its ``spec()`` wrote (model files are data:
    everything is checked, nothing is evaluated)."""
    if not isinstance(spec, dict) or spec.get("kind") not in LAYER_KINDS:
        raise InvalidArgumentError(f"not a layer description: {spec!r:.80}")
    arguments = {key: value for key, value in spec.items() if key != "kind"}
    try:
        return LAYER_KINDS[spec["kind"]](**arguments)
    except TypeError:
        raise InvalidArgumentError(f"layer description with unknown or missing fields: "
                                   f"{spec!r:.80}") from None
