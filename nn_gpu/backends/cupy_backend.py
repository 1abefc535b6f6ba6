"""The GPU backend: CuPy arrays, cuBLAS GEMMs and fused elementwise kernels.

Only what is faster on a GPU is overridden here; everything else is the
generic code of :class:`~nn_gpu.backends.base.Backend` running on ``cupy``.
Each kernel's NumPy twin is the base-class method of the same name, and the
GPU tests compare the two. Nothing here reads a value back to the host, so a
training epoch queues its work without synchronising.
"""

from .base import Backend


class CupyBackend(Backend):
    name = "cupy"

    def __init__(self, reason=""):
        import cupy

        super().__init__(cupy, reason)
        kernel = cupy.ElementwiseKernel
        # z^l = a^{l-1} w^T arrives in `a` from the GEMM; add b^l and apply σ in one pass.
        self._bias_sigmoid = kernel(
            "T b", "T a", "a = 1 / (1 + exp(-(a + b)))", "nn_gpu_bias_sigmoid")
        self._sigmoid = kernel(
            "T z", "T a", "a = 1 / (1 + exp(-z))", "nn_gpu_sigmoid")
        self._quadratic_error = kernel(
            "T a, T y, T k", "T d", "d = k * (a - y) * a * (1 - a)",
            "nn_gpu_quadratic_output_error")
        self._cross_entropy_error = kernel(
            "T a, T y, T k", "T d", "d = k * (a - y)",
            "nn_gpu_cross_entropy_output_error")
        # (δ w) arrives in `d` from the GEMM; multiply by σ'(z) = a(1 - a) in place.
        self._times_sigmoid_prime = kernel(
            "T a", "T d", "d = d * a * (1 - a)", "nn_gpu_times_sigmoid_prime")

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

    def sigmoid(self, z, out):
        return self._sigmoid(z, out)

    def linear_sigmoid(self, a_in, w, b, out):
        self.xp.matmul(a_in, w.T, out=out)
        return self._bias_sigmoid(b, out)

    def quadratic_output_error(self, a, y, scale, out):
        return self._quadratic_error(a, y, a.dtype.type(scale), out)

    def cross_entropy_output_error(self, a, y, scale, out):
        return self._cross_entropy_error(a, y, a.dtype.type(scale), out)

    def backpropagate_error(self, delta, w, a, out):
        self.xp.matmul(delta, w, out=out)
        return self._times_sigmoid_prime(a, out)
