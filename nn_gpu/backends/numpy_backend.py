"""The CPU backend: NumPy arrays and NumPy's BLAS, with SciPy's fused sigmoid.

Every GEMM goes through NumPy. SciPy ships its own OpenBLAS with its own
thread pool; calling both in alternation makes the two pools spin against
each other on the same cores (a 2-thread mini-batch-100 step went from
0.2 ms to 9.5 ms), so ``scipy.linalg.blas`` is deliberately not used here.
"""

import numpy
from scipy.special import expit

from .base import Backend


class NumpyBackend(Backend):
    name = "numpy"

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

    def weight_gradient(self, delta, a_in, grad_w, grad_b):
        numpy.matmul(delta.T, a_in, out=grad_w)
        numpy.add.reduce(delta, axis=0, out=grad_b)  # half the overhead of numpy.sum
        return grad_w, grad_b
