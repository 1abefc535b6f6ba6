"""The array-backend interface and its generic implementation.

A backend is one object that owns everything device-specific: the array
module ``xp``, host<->device transfer, synchronisation and the few primitives
the training loop spends its time in. The network and the training core only
ever talk to a backend, so the same code runs on NumPy and on CuPy.

The methods here are written against ``xp`` alone. They are the portable
definition of each primitive: :class:`~nn_gpu.backends.numpy_backend.NumpyBackend`
and :class:`~nn_gpu.backends.cupy_backend.CupyBackend` override the hot ones
with faster forms, and the tests compare those overrides with these
definitions.

Notation (the seed notes, with examples as rows): for a mini-batch of m
examples, ``a`` is (m, n_l) of activations a^l, ``w`` is w^l of shape
(n_l, n_{l-1}), ``b`` is b^l of shape (n_l,), ``delta`` is the error δ^l of
shape (m, n_l).
"""


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

    def compiled_epoch(self, cost_name):
        """A native replacement for :func:`nn_gpu.core.train_epoch` with the
        same arguments after ``backend, cost``, or None to run the core's loop
        over this backend's primitives."""
        return None

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

    def linear_sigmoid(self, a_in, w, b, out):
        """out = σ(a_in w^T + b): one layer's feedforward, a^l = σ(z^l)."""
        self.xp.matmul(a_in, w.T, out=out)
        self.xp.add(out, b, out=out)
        return self.sigmoid(out, out=out)

    def quadratic_output_error(self, a, y, scale, out):
        """out = scale * (a - y) ⊙ σ'(z^L), with σ'(z) = a(1 - a): equation (1)
        for C = ½‖a - y‖²."""
        xp = self.xp
        xp.subtract(a, y, out=out)
        xp.multiply(out, a, out=out)
        xp.multiply(out, 1.0 - a, out=out)
        xp.multiply(out, scale, out=out)
        return out

    def cross_entropy_output_error(self, a, y, scale, out):
        """out = scale * (a - y): equation (1) for the cross-entropy cost,
        where σ'(z^L) cancels."""
        xp = self.xp
        xp.subtract(a, y, out=out)
        xp.multiply(out, scale, out=out)
        return out

    def backpropagate_error(self, delta, w, a, out):
        """out = (δ^{l+1} w^{l+1}) ⊙ σ'(z^l), σ'(z^l) = a^l(1 - a^l): equation (2)."""
        xp = self.xp
        xp.matmul(delta, w, out=out)
        xp.multiply(out, a, out=out)
        xp.multiply(out, 1.0 - a, out=out)
        return out

    def weight_gradient(self, delta, a_in, grad_w, grad_b):
        """grad_w = δ^T a^{l-1}, grad_b = Σ_rows δ: equations (4) and (3)
        summed over the mini-batch."""
        self.xp.matmul(delta.T, a_in, out=grad_w)
        self.xp.sum(delta, axis=0, out=grad_b)
        return grad_w, grad_b

    def descend(self, w, b, delta, a_in, grad_w, grad_b):
        """w -= δ^T a^{l-1}; b -= Σ_rows δ, in place.

        ``delta`` arrives already scaled by η/m, so this is the whole SGD
        update of one layer. ``grad_w``/``grad_b`` are scratch buffers.
        """
        self.weight_gradient(delta, a_in, grad_w, grad_b)
        self.xp.subtract(w, grad_w, out=w)
        self.xp.subtract(b, grad_b, out=b)
