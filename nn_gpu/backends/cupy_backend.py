"""The GPU backend: CuPy arrays, cuBLAS GEMMs and fused elementwise kernels.

Only what is faster on a GPU is overridden here; everything else is the
generic code of :class:`~nn_gpu.backends.base.Backend` running on ``cupy``.
Each kernel's NumPy twin is the base-class method of the same name, and the
GPU tests compare the two. Nothing here reads a value back to the host, so a
training epoch queues its work without synchronising.
"""

from .base import Backend

# a = f(z) with z = (GEMM result already in a) + b, in one pass per activation.
_BIAS_ACTIVATIONS = {
    "sigmoid": "a = 1 / (1 + exp(-(a + b)))",
    "tanh": "a = tanh(a + b)",
    "relu": "a = max(a + b, (T)0)",
}
# d *= f'(z), written in a = f(z).
_DERIVATIVES = {
    "sigmoid": "d = d * a * (1 - a)",
    "tanh": "d = d * (1 - a * a)",
    "relu": "d = a > 0 ? d : (T)0",
}
_SIGN = "(T)((p > 0) - (p < 0))"


class CupyBackend(Backend):
    name = "cupy"

    def __init__(self, reason=""):
        import cupy

        super().__init__(cupy, reason)
        kernel = cupy.ElementwiseKernel
        self._bias_activation = {
            kind: kernel("T b", "T a", body, f"nn_gpu_bias_{kind}")
            for kind, body in _BIAS_ACTIVATIONS.items()}
        self._times_derivative = {
            kind: kernel("T a", "T d", body, f"nn_gpu_times_{kind}_prime")
            for kind, body in _DERIVATIVES.items()}
        self._sigmoid = kernel("T z", "T a", "a = 1 / (1 + exp(-z))", "nn_gpu_sigmoid")
        self._quadratic_error = kernel(
            "T a, T y, T k", "T d", "d = k * (a - y) * a * (1 - a)",
            "nn_gpu_quadratic_output_error")
        self._difference_error = kernel(
            "T a, T y, T k", "T d", "d = k * (a - y)", "nn_gpu_difference_output_error")
        self._sgd = kernel(
            "T g, T decay, T l1", "T p", f"p = p * decay - l1 * {_SIGN} - g", "nn_gpu_sgd")
        self._sgd_momentum = kernel(
            "T g, T mu, T decay, T l1", "T p, T v",
            f"v = mu * v - g - (1 - decay) * p - l1 * {_SIGN}; p = p + v",
            "nn_gpu_sgd_momentum")
        self._dropout = kernel(
            "T u, T p, T keep_scale", "T m", "m = u >= p ? keep_scale : (T)0", "nn_gpu_dropout")

    def describe(self):
        cupy = self.xp
        device = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(device.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        return f"CuPy {cupy.__version__} on {name} (device {device.id})"

    def to_host(self, array):
        return self.xp.asnumpy(array)

    def synchronize(self):
        self.xp.cuda.get_current_stream().synchronize()

    def random_generator(self, seed):
        # Dropout masks are drawn on the device (CuPy's own generator).
        return self.xp.random.RandomState(seed)

    def sigmoid(self, z, out):
        return self._sigmoid(z, out)

    def linear_activation(self, a_in, w, b, out, kind="sigmoid"):
        self.xp.matmul(a_in, w.T, out=out)
        if kind in self._bias_activation:
            return self._bias_activation[kind](b, out)
        self.xp.add(out, b, out=out)
        return self.activate(kind, out, out)

    def times_derivative(self, kind, a, out):
        return self._times_derivative[kind](a, out)

    def quadratic_output_error(self, a, y, scale, out):
        return self._quadratic_error(a, y, a.dtype.type(scale), out)

    def difference_output_error(self, a, y, scale, out):
        return self._difference_error(a, y, a.dtype.type(scale), out)

    def backpropagate_error(self, delta, w, a, out, kind="sigmoid"):
        self.xp.matmul(delta, w, out=out)
        return self.times_derivative(kind, a, out)

    def sgd_update(self, param, grad, velocity=None, momentum=0.0, decay=1.0, l1=0.0):
        t = param.dtype.type
        if velocity is None:
            return self._sgd(grad, t(decay), t(l1), param)
        self._sgd_momentum(grad, t(momentum), t(decay), t(l1), param, velocity)
        return param

    def dropout_mask(self, rng, p, out):
        u = rng.random_sample(out.shape, dtype=out.dtype)
        t = out.dtype.type
        return self._dropout(u, t(p), t(1.0 / (1.0 - p)), out)
