"""The CPU backend: NumPy arrays, with SciPy's fused sigmoid."""

import numpy
from scipy.special import expit

from .base import Backend


class NumpyBackend(Backend):
    name = "numpy"

    def __init__(self, reason=""):
        super().__init__(numpy, reason)

    def sigmoid(self, z, out):
        # One pass, no overflow warning for large |z| (unlike 1/(1+exp(-z))).
        return expit(z, out=out)

    def describe(self):
        return f"NumPy {numpy.__version__} (CPU)"
