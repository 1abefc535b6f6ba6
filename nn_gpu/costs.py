"""Cost functions C, each with the output error δ^L that backprop starts from.

Like network2.py's cost classes: ``total`` is the cost summed over the rows of
a batch, ``output_error`` is equation (1) of the seed notes for that cost.
Both work on whole mini-batches (one example per row).
"""

from .errors import InvalidArgumentError


class QuadraticCost:
    """C_x = ½‖a^L - y‖², so δ^L = (a^L - y) ⊙ σ'(z^L)."""

    name = "quadratic"

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
    """C_x = -Σ_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)], so δ^L = a^L - y."""

    name = "cross_entropy"

    @staticmethod
    def total(backend, z, y):
        """The cost written in z: since ln σ(z) = -softplus(-z) and
        ln(1 - σ(z)) = -softplus(z), C_x = Σ_j softplus(z_j) - y_j z_j, which
        never takes the log of a saturated 0 or 1."""
        xp = backend.xp
        return xp.sum(xp.logaddexp(0.0, z) - y * z)

    @staticmethod
    def output_error(backend, a, y, scale, out):
        return backend.cross_entropy_output_error(a, y, scale, out)


COSTS = {cost.name: cost for cost in (QuadraticCost, CrossEntropyCost)}


def get_cost(name):
    try:
        return COSTS[name]
    except KeyError:
        raise InvalidArgumentError(
            f"unknown cost {name!r}; choose one of {', '.join(COSTS)}") from None
