"""The CPU backend: NumPy arrays and NumPy's BLAS, SciPy's fused sigmoid, and
a whole batched epoch compiled with Numba (:mod:`.cpu_epoch`).

The primitives below serve everything but the training epoch (scoring,
``backprop``) and any cost the compiled epoch does not know. They put every
GEMM through NumPy: SciPy ships its own OpenBLAS with its own thread pool,
and alternating the two in one loop makes the pools spin against each other
on the same cores (a 2-thread mini-batch-100 step went from 0.2 ms to
9.5 ms). The compiled epoch, conversely, uses only SciPy's BLAS.
"""

import numpy

from ..costs import CrossEntropyCost, LogLikelihoodCost, QuadraticCost
from .base import Backend

#: The costs the compiled epoch knows, and whether its output error is the
#: quadratic cost's δ^L = (a - y) ⊙ σ'(z) (True) or a - y (False: cross-entropy
#: with sigmoid outputs, log-likelihood with softmax). Any other cost, even
#: one with a known name, trains through the generic core, which asks the cost.
COMPILED_COSTS = {QuadraticCost: True, CrossEntropyCost: False, LogLikelihoodCost: False}


class NumpyBackend(Backend):
    name = "numpy"

    def __init__(self, reason=""):
        super().__init__(numpy, reason)
        from scipy.special import expit  # here, not at import: `import nn_gpu` needs only numpy

        self._expit = expit

    def describe(self):
        return f"NumPy {numpy.__version__} (CPU)"

    def compiled_epoch(self, plan):
        if plan.dropout or plan.l1 or plan.cost not in COMPILED_COSTS:
            return None
        from .cpu_epoch import ACTIVATION_CODES, sgd_epoch  # compiled on first call, then cached

        if not all(kind in ACTIVATION_CODES for kind in plan.kinds):
            return None
        kinds = numpy.array([ACTIVATION_CODES[kind] for kind in plan.kinds], numpy.int64)
        quadratic = COMPILED_COSTS[plan.cost]

        def epoch(plan, weights, biases, X, Y, order, batch_size, workspace):
            momentum = workspace.velocity_w is not None
            sgd_epoch(X, Y, order, tuple(weights), tuple(biases),
                      (workspace.inputs[:batch_size], *workspace.hidden),
                      tuple(workspace.deltas), workspace.targets[:batch_size],
                      batch_size, float(plan.eta), quadratic, kinds, float(plan.decay),
                      float(plan.momentum),
                      tuple(workspace.velocity_w if momentum else workspace.grad_w),
                      tuple(workspace.velocity_b if momentum else workspace.grad_b))
        return epoch

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
