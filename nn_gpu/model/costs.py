"""Cost functions C, each with the output layer it belongs to and the output
error δ^L that backprop starts from.

Like network2.py's cost classes: ``total`` is the cost summed over the rows of
a batch (computed from z^L, so it stays finite when outputs saturate), and
``output_error`` is equation (1) of the seed notes for that cost. Both work on
whole mini-batches (one example per row). ``output_error_form`` names that
equation for the compiled epochs, which write it in their own code:
``"quadratic"`` for (a - y) ⊙ σ'(z), ``"difference"`` for a - y. Only a class
that sets it itself is compiled: a subclass with its own ``output_error``
trains through the generic core, which calls it.
"""

from ..errors import InvalidArgumentError


class QuadraticCost:
    """C_x = ½‖a^L - y‖² on sigmoid outputs, so δ^L = (a^L - y) ⊙ σ'(z^L)."""

    name = "quadratic"
    output_activation = "sigmoid"
    output_error_form = "quadratic"

    @staticmethod
    def total(backend, z, y):
        """Σ_x ½‖σ(z_x) - y_x‖² as a 0-d device array."""
        xp = backend.xp
        a = backend.sigmoid(z, out=xp.empty_like(z))
        xp.subtract(a, y, out=a)
        return 0.5 * xp.sum(a * a)

    @staticmethod
    def output_error(backend, a, y, scale, out):
        return backend.quadratic_output_error(a, y, scale, out)


class CrossEntropyCost:
    """C_x = -Σ_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)] on sigmoid outputs,
    so δ^L = a^L - y: σ'(z^L) cancels and saturated outputs still learn."""

    name = "cross_entropy"
    output_activation = "sigmoid"
    output_error_form = "difference"

    @staticmethod
    def total(backend, z, y):
        """The cost written in z: since ln σ(z) = -softplus(-z) and
        ln(1 - σ(z)) = -softplus(z), C_x = Σ_j softplus(z_j) - y_j z_j, which
        never takes the log of a saturated 0 or 1."""
        xp = backend.xp
        return xp.sum(xp.logaddexp(0.0, z) - y * z)

    @staticmethod
    def output_error(backend, a, y, scale, out):
        return backend.difference_output_error(a, y, scale, out)


class LogLikelihoodCost:
    """C_x = -ln a^L_y on softmax outputs a_j = e^{z_j} / Σ_k e^{z_k} (the
    book's chapter 3), so again δ^L = a^L - y."""

    name = "log_likelihood"
    output_activation = "softmax"
    output_error_form = "difference"

    @staticmethod
    def total(backend, z, y):
        """-ln a_y = logsumexp(z) - z_y, with the row maximum taken out first."""
        xp = backend.xp
        top = xp.max(z, axis=1, keepdims=True)
        log_sum = xp.log(xp.sum(xp.exp(z - top), axis=1)) + top[:, 0]
        return xp.sum(log_sum - xp.sum(y * z, axis=1))

    @staticmethod
    def output_error(backend, a, y, scale, out):
        return backend.difference_output_error(a, y, scale, out)


COSTS = {cost.name: cost for cost in (QuadraticCost, CrossEntropyCost, LogLikelihoodCost)}


def get_cost(name):
    try:
        return COSTS[name]
    except KeyError:
        raise InvalidArgumentError(
            f"unknown cost {name!r}; choose one of {', '.join(COSTS)}") from None
