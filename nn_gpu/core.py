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
    """The arrays SGD steps write, for mini-batches of up to ``batch_size`` rows.

    Mini-batches are gathered from the shuffled training set a *chunk* of
    several at a time (one gather instead of one per step), into
    ``inputs``/``targets``; each step then works on fixed views of the chunk.
    ``deltas[l]`` and ``grad_w[l]`` belong to ``weights[l]``.
    """

    CHUNK_ROWS = 1024  # about 3 MB of float32 inputs: one gather per ~1000 examples

    def __init__(self, backend, sizes, batch_size, dtype):
        self.batch_size = batch_size
        self.chunk_rows = batch_size * max(1, self.CHUNK_ROWS // batch_size)
        self.inputs = backend.empty((self.chunk_rows, sizes[0]), dtype)
        self.targets = backend.empty((self.chunk_rows, sizes[-1]), dtype)
        self.hidden = [backend.empty((batch_size, n), dtype) for n in sizes[1:]]
        self.deltas = [backend.empty((batch_size, n), dtype) for n in sizes[1:]]
        self.grad_w = [backend.empty((n_out, n_in), dtype)
                       for n_in, n_out in zip(sizes[:-1], sizes[1:])]
        self.grad_b = [backend.empty((n,), dtype) for n in sizes[1:]]
        self._slots = {}

    def slot(self, start, m):
        """(activations, targets, deltas) of the m-row mini-batch at row
        ``start`` of the chunk; activations[0] is its input rows.

        Views are made once and reused every epoch, so a step does no slicing.
        """
        key = (start, m)
        if key not in self._slots:
            self._slots[key] = (
                [self.inputs[start:start + m]] + [h[:m] for h in self.hidden],
                self.targets[start:start + m],
                [d[:m] for d in self.deltas])
        return self._slots[key]


def feedforward(backend, weights, biases, activations):
    """Fill activations[1:] from activations[0]; return the output layer a^L."""
    for l, (w, b) in enumerate(zip(weights, biases)):
        backend.linear_sigmoid(activations[l], w, b, out=activations[l + 1])
    return activations[-1]


def backpropagate(backend, weights, activations, deltas):
    """Fill deltas[:-1] from the output error deltas[-1] by equation (2)."""
    for l in range(len(weights) - 1, 0, -1):
        backend.backpropagate_error(deltas[l], weights[l], activations[l], out=deltas[l - 1])


def train_step(backend, cost, weights, biases, workspace, activations, targets, deltas, eta):
    """One SGD step on the mini-batch in ``activations[0]``/``targets``, in place.

    The output error is scaled by η/m up front; since equation (2) is linear
    in δ, every layer's error then carries the factor and the update is a
    plain subtraction w -= δ^T a (no separate scaling pass).
    """
    m = targets.shape[0]
    feedforward(backend, weights, biases, activations)
    cost.output_error(backend, activations[-1], targets, eta / m, out=deltas[-1])
    backpropagate(backend, weights, activations, deltas)
    for l in range(len(weights)):
        backend.descend(weights[l], biases[l], deltas[l], activations[l],
                        workspace.grad_w[l], workspace.grad_b[l])


def train_epoch(backend, cost, weights, biases, X, Y, order, batch_size, eta, workspace):
    """One epoch of mini-batch SGD over the rows of X (inputs) and Y (one-hot
    targets) in the order given by the device index array ``order``.

    Rows are gathered on the device a chunk at a time; the last mini-batch
    may be smaller and is used, not dropped. (A backend may replace this loop
    by a compiled one: :meth:`nn_gpu.backends.base.Backend.compiled_epoch`.)
    """
    xp = backend.xp
    n = order.shape[0]
    for chunk_start in range(0, n, workspace.chunk_rows):
        rows = min(workspace.chunk_rows, n - chunk_start)
        index = order[chunk_start:chunk_start + rows]
        xp.take(X, index, axis=0, out=workspace.inputs[:rows])
        xp.take(Y, index, axis=0, out=workspace.targets[:rows])
        for start in range(0, rows, batch_size):
            activations, targets, deltas = workspace.slot(start, min(batch_size, rows - start))
            train_step(backend, cost, weights, biases, workspace, activations, targets, deltas, eta)


def gradient(backend, cost, weights, biases, X, Y):
    """(nabla_b, nabla_w): the gradient of the mean cost over the rows of X."""
    m = X.shape[0]
    sizes = [X.shape[1]] + [w.shape[0] for w in weights]
    workspace = Workspace(backend, sizes, m, X.dtype)
    activations, targets, deltas = workspace.slot(0, m)
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
