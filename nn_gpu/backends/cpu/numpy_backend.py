"""The CPU backend: NumPy arrays and NumPy's BLAS, SciPy's fused sigmoid, and
a whole batched epoch compiled with Numba (:mod:`.epoch`).

The primitives below serve everything but the training epoch (scoring,
``backprop``) and any cost the compiled epoch does not know. They put every
GEMM through NumPy: SciPy ships its own OpenBLAS with its own thread pool,
and alternating the two in one loop makes the pools spin against each other
on the same cores (a 2-thread mini-batch-100 step takes ~50x as long:
9.5 ms against 0.2 ms, ``docs/log.md``, 2026-11-25). The compiled epoch,
conversely, uses only SciPy's BLAS.
"""

import numpy

from ...errors import InvalidArgumentError
from .. import capabilities
from ..base import Backend


class NumpyBackend(Backend):
    name = "numpy"

    def __init__(self, reason="", threads=None, small_gemm=True):
        """``threads``: BLAS threads of every product of the compiled epoch
        (default None: chosen per product, see :mod:`.threads`).
        ``small_gemm``: let the compiled epoch use kernels compiled for the
        run's shapes where they beat the BLAS (:mod:`.small_gemm`); False:
        the BLAS for every product."""
        super().__init__(numpy, reason)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise InvalidArgumentError(f"threads must be a positive integer or None, "
                                       f"got {threads!r}")
        self.threads = threads
        self.small_gemm = bool(small_gemm)
        from scipy.special import expit  # here, not at import: `import nn_gpu` needs only numpy

        self._expit = expit

    def describe(self):
        return f"NumPy {numpy.__version__} (CPU)"

    def compiled_epoch(self, plan):
        """The compiled CPU epoch, where the capability table says it runs this training."""
        if capabilities.refusal("compiled_cpu", plan):
            return None
        from .epoch import CompiledEpoch  # compiled on first call, then cached

        return CompiledEpoch(plan, self.threads, self.small_gemm)

    def sigmoid(self, z, out):
        # One pass, no overflow warning for large |z| (unlike 1/(1+exp(-z))).
        return self._expit(z, out=out)

    def linear_activation(self, a_in, w, b, out, kind="sigmoid"):
        numpy.matmul(a_in, w.T, out=out)
        numpy.add(out, b, out=out)
        return self.activate(kind, out, out)

    def weight_gradient(self, delta, a_in, grad_w, grad_b):
        numpy.matmul(delta.T, a_in, out=grad_w)
        numpy.add.reduce(delta, axis=0, out=grad_b)  # half the overhead of numpy.sum
        return grad_w, grad_b
