"""The CPU backend: NumPy arrays, SciPy's fused sigmoid and BLAS update."""

import numpy
from scipy.linalg import blas
from scipy.special import expit

from .base import Backend


class NumpyBackend(Backend):
    name = "numpy"

    # xGEMM computes C = alpha op(A) op(B) + beta C in place, so the weight
    # update needs no gradient buffer and no separate subtraction pass.
    _GEMM = {numpy.dtype(numpy.float32): blas.sgemm, numpy.dtype(numpy.float64): blas.dgemm}

    def __init__(self, reason=""):
        super().__init__(numpy, reason)

    def describe(self):
        return f"NumPy {numpy.__version__} (CPU)"

    def sigmoid(self, z, out):
        # One pass, no overflow warning for large |z| (unlike 1/(1+exp(-z))).
        return expit(z, out=out)

    def linear_sigmoid(self, a_in, w, b, out):
        numpy.matmul(a_in, w.T, out=out)
        numpy.add(out, b, out=out)
        return expit(out, out=out)

    def descend(self, w, b, delta, a_in, grad_w, grad_b):
        gemm = self._GEMM.get(w.dtype)
        if gemm is None or not w.flags.c_contiguous:
            return super().descend(w, b, delta, a_in, grad_w, grad_b)
        # BLAS is column-major: the C-ordered w (n_out, n_in) is the
        # Fortran-ordered w^T (n_in, n_out), and w^T -= a_in^T δ is w -= δ^T a_in.
        gemm(-1.0, a_in.T, delta.T, beta=1.0, c=w.T, trans_b=True, overwrite_c=True)
        numpy.add.reduce(delta, axis=0, out=grad_b)
        numpy.subtract(b, grad_b, out=b)
