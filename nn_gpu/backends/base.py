"""The array-backend interface and its generic implementation.

A backend is one object that owns everything device-specific: the array
module ``xp``, host<->device transfer, synchronisation and the few primitives
the training loop spends its time in. The network and the training core only
ever talk to a backend, so the same code runs on NumPy and on CuPy.

The methods here are written against ``xp`` alone. They are the portable
definition of each primitive: :class:`~nn_gpu.backends.cpu.numpy_backend.NumpyBackend`
and :class:`~nn_gpu.backends.cuda.cupy_backend.CupyBackend` override the hot ones
with faster forms, and the tests compare those overrides with these
definitions.

Notation (the seed notes, with examples as rows): for a mini-batch of m
examples, ``a`` is (m, n_l) of activations a^l, ``w`` is w^l of shape
(n_l, n_{l-1}), ``b`` is b^l of shape (n_l,), ``delta`` is the error δ^l of
shape (m, n_l).
"""

import numpy


class Backend:
    """Generic backend over any NumPy-compatible array module ``xp``."""

    name = "generic"

    def __init__(self, xp, reason=""):
        self.xp = xp
        #: Why this backend was chosen (filled in by ``get_backend("auto")``).
        self.reason = reason

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"

    def describe(self):
        """One line naming the library and device, for logs and benchmarks."""
        return self.name

    def memory_space(self):
        """Where this backend's arrays live, as a key: arrays prepared for one
        backend serve every backend with the same key (a data set keeps its
        device copies under it)."""
        return self.name

    # ----------------------------------------------------------- arrays
    def asarray(self, array, dtype=None):
        """Host (or device) array -> array on this backend's device."""
        return self.xp.asarray(array, dtype=dtype)

    def to_host(self, array):
        """Device array -> NumPy array (an explicit, synchronising copy)."""
        return array

    def synchronize(self):
        """Wait until queued device work is done (a no-op on the host)."""

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        return self.xp.zeros(shape, dtype=dtype)

    def ignoring_float_errors(self):
        """A context in which overflow and NaN raise no warnings: for code that
        checks its results for NaN/inf itself (training stops with an error
        naming the epoch). CuPy never warns; NumPy is told not to."""
        return numpy.errstate(all="ignore")

    def compiled_epoch(self, plan):
        """A native replacement for :func:`nn_gpu.model.core.train_epoch` for the
        training described by ``plan`` (a :class:`nn_gpu.model.core.Plan`), called
        as ``epoch(plan, weights, biases, X, Y, order, batch_size, workspace)``
        (train_epoch's arguments without ``backend`` and ``rng``: it never
        runs dropout), which returns whether it trained (False: run the core
        for this call); or None to run the core's loop over this backend's
        primitives, as it must for any plan it does not fully know. Its
        ``inputs(X, cache)`` prepares what it will read of the training set
        once, through ``cache(key, make)`` (the data set's cache)."""
        return None

    def random_generator(self, seed):
        """The generator dropout masks are drawn from (here: NumPy's, on the host)."""
        return numpy.random.default_rng(seed)

    # ------------------------------------------------------- primitives
    def sigmoid(self, z, out):
        """out = σ(z) = 1 / (1 + e^{-z}), computed as e^{min(z,0)} / (1 + e^{-|z|})
        so that e^{...} never overflows and tiny σ keep their relative precision."""
        xp = self.xp
        positive = z >= 0
        xp.abs(z, out=out)
        xp.negative(out, out=out)
        xp.exp(out, out=out)                       # e = e^{-|z|}, in (0, 1]
        numerator = xp.where(positive, 1.0, out)   # e^{min(z,0)}
        xp.add(out, 1.0, out=out)
        xp.divide(numerator, out, out=out)
        return out

    def activate(self, kind, z, out):
        """out = f(z) for f = sigmoid, tanh, relu, or softmax (over each row:
        e^{z_j - max z} / Σ_k e^{z_k - max z}, which cannot overflow)."""
        xp = self.xp
        if kind == "sigmoid":
            return self.sigmoid(z, out)
        if kind == "tanh":
            return xp.tanh(z, out=out)
        if kind == "relu":
            return xp.maximum(z, 0, out=out)
        if kind == "softmax":
            xp.subtract(z, xp.max(z, axis=1, keepdims=True), out=out)
            xp.exp(out, out=out)
            xp.divide(out, xp.sum(out, axis=1, keepdims=True), out=out)
            return out
        raise ValueError(f"unknown activation {kind!r}")

    def linear_activation(self, a_in, w, b, out, kind="sigmoid"):
        """out = f(a_in w^T + b): one layer's feedforward, a^l = f(z^l)."""
        self.xp.matmul(a_in, w.T, out=out)
        self.xp.add(out, b, out=out)
        return self.activate(kind, out, out=out)

    def times_derivative(self, kind, a, out):
        """out *= f'(z), written in a = f(z): σ' = a(1 - a), tanh' = 1 - a²,
        relu' = [a > 0]."""
        xp = self.xp
        if kind == "sigmoid":
            xp.multiply(out, a, out=out)
            xp.multiply(out, 1.0 - a, out=out)
        elif kind == "tanh":
            xp.multiply(out, 1.0 - a * a, out=out)
        elif kind == "relu":
            xp.multiply(out, a > 0, out=out)
        else:
            raise ValueError(f"no derivative for activation {kind!r}")
        return out

    def quadratic_output_error(self, a, y, scale, out):
        """out = scale * (a - y) ⊙ σ'(z^L), with σ'(z) = a(1 - a): equation (1)
        for C = ½‖a - y‖² on sigmoid outputs."""
        xp = self.xp
        xp.subtract(a, y, out=out)
        xp.multiply(out, a, out=out)
        xp.multiply(out, 1.0 - a, out=out)
        xp.multiply(out, scale, out=out)
        return out

    def difference_output_error(self, a, y, scale, out):
        """out = scale * (a - y): equation (1) for cross-entropy on sigmoid
        outputs and log-likelihood on softmax outputs, where f'(z^L) cancels."""
        xp = self.xp
        xp.subtract(a, y, out=out)
        xp.multiply(out, scale, out=out)
        return out

    def backpropagate_error(self, delta, w, a, out, kind="sigmoid"):
        """out = (δ^{l+1} w^{l+1}) ⊙ f'(z^l), f' written in a^l: equation (2)."""
        self.xp.matmul(delta, w, out=out)
        return self.times_derivative(kind, a, out)

    def weight_gradient(self, delta, a_in, grad_w, grad_b):
        """grad_w = δ^T a^{l-1}, grad_b = Σ_rows δ: equations (4) and (3)
        summed over the mini-batch."""
        self.xp.matmul(delta.T, a_in, out=grad_w)
        self.xp.sum(delta, axis=0, out=grad_b)
        return grad_w, grad_b

    def sgd_update(self, param, grad, velocity=None, momentum=0.0, decay=1.0, l1=0.0):
        """One step for one parameter array, in place. ``grad`` holds
        (η/m) Σ_x ∇C_x; ``decay`` = 1 - ηλ₂/n and ``l1`` = ηλ₁/n carry the
        L2 and L1 terms (n: the training-set size).

        Plain SGD:  p ← decay·p - l1·sign(p) - grad
        Momentum:   v ← μv - grad - (1 - decay)·p - l1·sign(p);  p ← p + v
        """
        xp = self.xp
        if velocity is None:
            if decay != 1.0:
                xp.multiply(param, decay, out=param)
            if l1:
                xp.subtract(param, l1 * xp.sign(param), out=param)
            xp.subtract(param, grad, out=param)
            return param
        xp.multiply(velocity, momentum, out=velocity)
        xp.subtract(velocity, grad, out=velocity)
        if decay != 1.0:
            xp.subtract(velocity, (1.0 - decay) * param, out=velocity)
        if l1:
            xp.subtract(velocity, l1 * xp.sign(param), out=velocity)
        xp.add(param, velocity, out=param)
        return param

    def update_layer(self, delta, a_in, w, b, grad_w, grad_b, velocity_w=None, velocity_b=None,
                     momentum=0.0, decay=1.0, l1=0.0):
        """One layer's SGD step from its error δ and input a_in: the
        gradients (3), (4) into grad_w/grad_b, then :meth:`sgd_update` of w
        (with L2 ``decay`` and ``l1``) and of b (unregularised). A backend may
        fuse these (CuPy writes each gradient GEMM straight into the update)."""
        self.weight_gradient(delta, a_in, grad_w, grad_b)
        self.sgd_update(w, grad_w, velocity_w, momentum, decay, l1)
        self.sgd_update(b, grad_b, velocity_b, momentum)

    def dropout_mask(self, rng, p, out):
        """out = [u >= p] / (1 - p) for u uniform on [0, 1): inverted dropout,
        so that a kept unit's expected output is unchanged and nothing needs
        rescaling at evaluation."""
        u = self.asarray(rng.random(out.shape), out.dtype)
        self.xp.greater_equal(u, p, out=out)  # 1.0 where kept
        self.xp.multiply(out, 1.0 / (1.0 - p), out=out)
        return out
