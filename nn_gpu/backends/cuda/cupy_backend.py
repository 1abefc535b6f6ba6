"""The GPU backend: CuPy arrays, cuBLAS GEMMs and fused elementwise kernels,
and a whole epoch in one kernel where the network fits it (:mod:`.epoch`).

Only what is faster on a GPU is overridden here; everything else is the
generic code of :class:`~nn_gpu.backends.base.Backend` running on ``cupy``.
Each kernel's NumPy twin is the base-class method of the same name; the tests
compare the two on every CI run (through a NumPy-backed stand-in for CuPy,
``tests/fake_cupy.py``) and on a GPU. Nothing here reads a value back to the
host, so a training epoch queues its work without synchronising.
"""

from .. import capabilities
from ..base import Backend
from . import counter_stream

# σ(z) = e^{min(z,0)} / (1 + e^{-|z|}): never overflows (as Backend.sigmoid).
_SIGMOID = "T e = exp(-fabs(z)); a = (z >= 0 ? (T)1 : e) / ((T)1 + e)"
# a = f(z) with z = (GEMM result already in a) + b, in one pass per activation.
_BIAS_ACTIVATIONS = {
    "sigmoid": "T z = a + b; " + _SIGMOID,
    "tanh": "a = tanh(a + b)",
    # z < 0 ? 0 : z lets NaN through, as numpy.maximum(z, 0) does (CUDA's max drops it).
    "relu": "T z = a + b; a = z < (T)0 ? (T)0 : z",
}
# d *= f'(z), written in a = f(z).
_DERIVATIVES = {
    "sigmoid": "d = d * a * (1 - a)",
    "tanh": "d = d * (1 - a * a)",
    "relu": "d = a > 0 ? d : (T)0",
}
_SIGN = "(T)((p > 0) - (p < 0))"
# Under Numba's CUDA simulator each CUDA thread is a Python thread: keep few.
SIMULATED_THREADS = 8


class CupyBackend(Backend):
    name = "cupy"

    def __init__(self, reason=""):
        import cupy
        import cupy.cublas

        super().__init__(cupy, reason)
        self._gemm = cupy.cublas.gemm
        self._ones = {}
        kernel = cupy.ElementwiseKernel
        self._bias_activation = {
            kind: kernel("T b", "T a", body, f"nn_gpu_bias_{kind}")
            for kind, body in _BIAS_ACTIVATIONS.items()}
        self._times_derivative = {
            kind: kernel("T a", "T d", body, f"nn_gpu_times_{kind}_prime")
            for kind, body in _DERIVATIVES.items()}
        self._sigmoid = kernel("T z", "T a", _SIGMOID, "nn_gpu_sigmoid")
        self._quadratic_error = kernel(
            "T a, T y, T k", "T d", "d = (a - y) * a * (1 - a) * k",
            "nn_gpu_quadratic_output_error")
        self._difference_error = kernel(
            "T a, T y, T k", "T d", "d = (a - y) * k", "nn_gpu_difference_output_error")
        self._sgd = kernel(
            "T g, T decay, T l1", "T p", f"p = p * decay - l1 * {_SIGN} - g", "nn_gpu_sgd")
        self._sgd_momentum = kernel(
            "T g, T mu, T decay, T l1", "T p, T v",
            f"v = mu * v - g - (1 - decay) * p - l1 * {_SIGN}; p = p + v",
            "nn_gpu_sgd_momentum")
        # What update_layer adds around its GEMMs.
        self._decay_l1 = kernel("T decay, T l1", "T p", f"p = p * decay - l1 * {_SIGN}",
                                "nn_gpu_decay_l1")
        self._momentum_step = kernel(
            "T decay, T l1", "T p, T v", f"v = v - (1 - decay) * p - l1 * {_SIGN}; p = p + v",
            "nn_gpu_momentum_step")
        self._dropout = kernel("uint64 key, float64 p, T keep_scale", "T m",
                               counter_stream.KERNEL, "nn_gpu_dropout")

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

    def compiled_epoch(self, plan):
        """The fused one-kernel epoch (numba-cuda) where the capability table
        lets it run this training (it runs it where :func:`.epoch.why_not_fused`
        finds nothing against, else leaves it to the cuBLAS path); None
        where it cannot, or numba-cuda is missing."""
        from .epoch import FusedEpoch

        if capabilities.refusal("fused_gpu", plan) or not numba_cuda_usable():
            return None
        from numba import config

        if config.ENABLE_CUDASIM:  # Numba's CUDA simulator: host arrays, a thread per thread
            return FusedEpoch(threads=SIMULATED_THREADS, virtual=True, empty=self.empty)
        return FusedEpoch(device=self._numba_device, empty=self.empty)

    def _numba_device(self):
        """(view, stream): numba-cuda's view of a CuPy array, and CuPy's
        current stream as numba-cuda's."""
        from numba import cuda

        stream_ptr = self.xp.cuda.get_current_stream().ptr
        stream = cuda.external_stream(stream_ptr) if stream_ptr else cuda.default_stream()
        # sync=False: CuPy's arrays carry its stream, on which the kernel is queued anyway;
        # the default (True) would make every launch wait for the device.
        return (lambda array: cuda.as_cuda_array(array, sync=False)), stream

    def random_generator(self, seed):
        # Dropout masks come from a counter-based stream, saved in checkpoints as two ints.
        return counter_stream.CounterStream(seed)

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

    def update_layer(self, delta, a_in, w, b, grad_w, grad_b, velocity_w=None, velocity_b=None,
                     momentum=0.0, decay=1.0, l1=0.0):
        """Each parameter's gradient GEMM writes straight into its update:
        w ← decay·w - δ^T a (alpha = -1, beta = decay) and b ← b - δ^T 1 (the
        bias gradient is a GEMM with a column of ones), two launches where
        the generic form takes five; momentum adds one kernel for p += v."""
        t = w.dtype.type
        ones = self._column_of_ones(delta.shape[0], delta.dtype)
        if velocity_w is None:
            if l1:
                self._decay_l1(t(decay), t(l1), w)
            self._gemm("T", "N", delta, a_in, out=w, alpha=-1.0, beta=1.0 if l1 else decay)
            self._gemm("T", "N", delta, ones, out=b[:, None], alpha=-1.0, beta=1.0)
            return
        self._gemm("T", "N", delta, a_in, out=velocity_w, alpha=-1.0, beta=momentum)
        self._momentum_step(t(decay), t(l1), w, velocity_w)
        self._gemm("T", "N", delta, ones, out=velocity_b[:, None], alpha=-1.0, beta=momentum)
        self.xp.add(b, velocity_b, out=b)

    def _column_of_ones(self, m, dtype):
        key = (m, dtype)
        if key not in self._ones:
            self._ones[key] = self.xp.ones((m, 1), dtype)
        return self._ones[key]

    def dropout_mask(self, rng, p, out):
        t = out.dtype.type
        key = self.xp.uint64(rng.next_key())  # a host scalar (keys pass 2^63: say uint64)
        return self._dropout(key, float(p), t(1.0 / (1.0 - p)), out)


def numba_cuda_usable():
    """Whether numba-cuda can launch kernels here (it may be absent or
    unable to find the CUDA libraries CuPy uses)."""
    try:
        from numba import cuda

        return cuda.is_available()
    except Exception:  # ImportError, or a broken CUDA toolkit lookup
        return False
