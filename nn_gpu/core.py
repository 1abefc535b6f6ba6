"""The batched core: feedforward and backprop for a whole mini-batch at once.

The seed's four equations, with the m examples of a mini-batch as the rows of
each matrix (A^0 = X is m x n_in, w^l is n_l x n_{l-1}):

    Z^l = A^{l-1} (w^l)^T + b^l,   A^l = σ(Z^l)            feedforward
    Δ^L = ∇_a C ⊙ σ'(Z^L)                                   (1)
    Δ^l = (Δ^{l+1} w^{l+1}) ⊙ σ'(Z^l)                       (2)
    ∂C/∂b^l = Σ_rows Δ^l / m,   ∂C/∂w^l = (Δ^l)^T A^{l-1} / m   (3), (4)

Every product is a matrix-matrix product, so one step costs a handful of
GEMMs instead of m matrix-vector loops. A :class:`Workspace` holds every
buffer a step writes, allocated once per training run, so the inner loop
allocates nothing and never reads a value back to the host.
"""


class Workspace:
    """The arrays one mini-batch step writes, for mini-batches of up to
    ``batch_size`` rows. ``deltas[l]`` and ``grad_w[l]`` belong to ``weights[l]``."""

    def __init__(self, backend, sizes, batch_size, dtype):
        self.activations = [backend.empty((batch_size, n), dtype) for n in sizes]
        self.targets = backend.empty((batch_size, sizes[-1]), dtype)
        self.deltas = [backend.empty((batch_size, n), dtype) for n in sizes[1:]]
        self.grad_w = [backend.empty((n_out, n_in), dtype)
                       for n_in, n_out in zip(sizes[:-1], sizes[1:])]
        self.grad_b = [backend.empty((n,), dtype) for n in sizes[1:]]
        self._views = {batch_size: (self.activations, self.targets, self.deltas)}

    def rows(self, m):
        """(activations, targets, deltas) cut to the first m rows.

        Views are made once per m (only the last, partial mini-batch of an
        epoch differs), so a step does no slicing.
        """
        if m not in self._views:
            self._views[m] = ([a[:m] for a in self.activations], self.targets[:m],
                              [d[:m] for d in self.deltas])
        return self._views[m]


def feedforward(backend, weights, biases, activations):
    """Fill activations[1:] from activations[0]; return the output layer a^L."""
    for l, (w, b) in enumerate(zip(weights, biases)):
        backend.linear_sigmoid(activations[l], w, b, out=activations[l + 1])
    return activations[-1]


def backpropagate(backend, weights, activations, deltas):
    """Fill deltas[:-1] from the output error deltas[-1] by equation (2)."""
    for l in range(len(weights) - 1, 0, -1):
        backend.backpropagate_error(deltas[l], weights[l], activations[l], out=deltas[l - 1])


def train_step(backend, cost, weights, biases, workspace, m, eta):
    """One SGD step on the m rows already in the workspace, in place.

    The output error is scaled by η/m up front; since equation (2) is linear
    in δ, every layer's error then carries the factor and the update is a
    plain subtraction w -= δ^T a (no separate scaling pass).
    """
    activations, targets, deltas = workspace.rows(m)
    feedforward(backend, weights, biases, activations)
    cost.output_error(backend, activations[-1], targets, eta / m, out=deltas[-1])
    backpropagate(backend, weights, activations, deltas)
    for l in range(len(weights)):
        backend.descend(weights[l], biases[l], deltas[l], activations[l],
                        workspace.grad_w[l], workspace.grad_b[l])


def train_epoch(backend, cost, weights, biases, X, Y, order, batch_size, eta, workspace):
    """One epoch of mini-batch SGD over the rows of X (inputs) and Y (one-hot
    targets) in the order given by the device index array ``order``.

    The mini-batch rows are gathered on the device into the workspace; the
    last mini-batch may be smaller and is used, not dropped.
    """
    xp = backend.xp
    n = order.shape[0]
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        index = order[start:start + m]
        activations, targets, _ = workspace.rows(m)
        xp.take(X, index, axis=0, out=activations[0])
        xp.take(Y, index, axis=0, out=targets)
        train_step(backend, cost, weights, biases, workspace, m, eta)


def gradient(backend, cost, weights, biases, X, Y):
    """(nabla_b, nabla_w): the gradient of the mean cost over the rows of X."""
    m = X.shape[0]
    sizes = [X.shape[1]] + [w.shape[0] for w in weights]
    workspace = Workspace(backend, sizes, m, X.dtype)
    activations, targets, deltas = workspace.rows(m)
    activations[0][...] = X
    targets[...] = Y
    feedforward(backend, weights, biases, activations)
    cost.output_error(backend, activations[-1], targets, 1.0 / m, out=deltas[-1])
    backpropagate(backend, weights, activations, deltas)
    for l in range(len(weights)):
        backend.weight_gradient(deltas[l], activations[l], workspace.grad_w[l], workspace.grad_b[l])
    return workspace.grad_b, workspace.grad_w


# ---------------------------------------------------------------- scoring
# Scoring runs over whole data sets in chunks, to bound memory; results stay
# on the device as 0-d arrays so the caller decides when to synchronise.

SCORING_CHUNK = 10_000


def output_logits(backend, weights, biases, X):
    """z^L for every row of X (one chunk); the hidden layers as in feedforward."""
    xp = backend.xp
    a = X
    for w, b in zip(weights[:-1], biases[:-1]):
        a = backend.linear_sigmoid(a, w, b, out=backend.empty((a.shape[0], w.shape[0]), a.dtype))
    z = xp.matmul(a, weights[-1].T)
    xp.add(z, biases[-1], out=z)
    return z


def count_correct(backend, weights, biases, X, labels):
    """Σ [argmax_j a^L_j == label] over the rows of X, as a 0-d device array."""
    xp = backend.xp
    correct = xp.zeros((), dtype=xp.int64)
    for start in range(0, X.shape[0], SCORING_CHUNK):
        z = output_logits(backend, weights, biases, X[start:start + SCORING_CHUNK])
        # argmax of a = σ(z) is argmax of z: σ is increasing.
        correct += xp.sum(xp.argmax(z, axis=1) == labels[start:start + SCORING_CHUNK])
    return correct


def total_cost(backend, cost, weights, biases, X, Y):
    """Mean cost over the rows of X, as a 0-d device array."""
    xp = backend.xp
    total = xp.zeros((), dtype=X.dtype)
    for start in range(0, X.shape[0], SCORING_CHUNK):
        z = output_logits(backend, weights, biases, X[start:start + SCORING_CHUNK])
        total += cost.total(backend, z, Y[start:start + SCORING_CHUNK])
    return total / X.shape[0]
