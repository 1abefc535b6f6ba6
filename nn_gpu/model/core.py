"""The batched core: feedforward and backprop for a whole mini-batch at once.

The seed's four equations, with the m examples of a mini-batch as the rows of
each matrix (A^0 = X is m x n_in, w^l is n_l x n_{l-1}):

    Z^l = A^{l-1} (w^l)^T + b^l,   A^l = f(Z^l)             feedforward
    Δ^L = ∇_a C ⊙ f'(Z^L)                                   (1)
    Δ^l = (Δ^{l+1} w^{l+1}) ⊙ f'(Z^l)                       (2)
    ∂C/∂b^l = Σ_rows Δ^l / m,   ∂C/∂w^l = (Δ^l)^T A^{l-1} / m   (3), (4)

f is the hidden activation (sigmoid, tanh or relu) and, on the output layer,
the one the cost belongs to (sigmoid, or softmax for log-likelihood). Every
product is a matrix-matrix product, so one step costs a handful of GEMMs
instead of m matrix-vector loops. A :class:`Workspace` holds every buffer a
step writes, allocated once per training run, so the inner loop never reads a
value back to the host.
"""

from dataclasses import dataclass

from ..training.scores import POSITIVE_COUNTS


@dataclass(frozen=True)
class Plan:
    """Everything one SGD epoch needs to know besides the arrays.

    ``kinds[l]`` is the activation of layer l's output; ``l2``/``l1`` are λ
    of the regularisation terms (λ/2n)Σw² and (λ/n)Σ|w|, n = ``train_size``
    (the size of the training set, whatever set a cost is reported on);
    ``dropout`` is the probability of dropping a hidden unit.
    """

    cost: type
    kinds: tuple
    eta: float
    train_size: int
    momentum: float = 0.0
    l2: float = 0.0
    l1: float = 0.0
    dropout: float = 0.0

    @property
    def error_form(self):
        """The cost's ``output_error_form`` where its own class sets it (a
        compiled epoch can write that δ^L), else None."""
        return vars(self.cost).get("output_error_form")

    @property
    def decay(self):
        """The L2 weight decay factor 1 - ηλ₂/n of one step."""
        return 1.0 - self.eta * self.l2 / self.train_size

    @property
    def l1_step(self):
        """ηλ₁/n: how far one step moves each weight towards 0 for L1."""
        return self.eta * self.l1 / self.train_size


class Workspace:
    """The arrays SGD steps write, for mini-batches of up to ``batch_size`` rows.

    Mini-batches are gathered from the shuffled training set a *chunk* of
    several at a time (one gather instead of one per step), into
    ``inputs``/``targets``; each step then works on fixed views of the chunk.
    ``deltas[l]``, ``grad_w[l]`` and the velocities belong to ``weights[l]``.
    With dropout, ``hidden`` holds f(z) of the hidden layers, ``masks`` the
    dropout masks and ``dropped`` the masked activations the next layer sees.
    """

    CHUNK_ROWS = 1024  # about 3 MB of float32 inputs: one gather per ~1000 examples

    def __init__(self, backend, sizes, batch_size, dtype, momentum=False, dropout=False):
        self.batch_size = batch_size
        self.chunk_rows = batch_size * max(1, self.CHUNK_ROWS // batch_size)
        self.inputs = backend.empty((self.chunk_rows, sizes[0]), dtype)
        self.targets = backend.empty((self.chunk_rows, sizes[-1]), dtype)
        self.hidden = [backend.empty((batch_size, n), dtype) for n in sizes[1:]]
        self.deltas = [backend.empty((batch_size, n), dtype) for n in sizes[1:]]
        shapes = [(n_out, n_in) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
        self.grad_w = [backend.empty(shape, dtype) for shape in shapes]
        self.grad_b = [backend.empty((n,), dtype) for n in sizes[1:]]
        self.velocity_w = [backend.zeros(shape, dtype) for shape in shapes] if momentum else None
        self.velocity_b = [backend.zeros((n,), dtype) for n in sizes[1:]] if momentum else None
        hidden_sizes = sizes[1:-1] if dropout else []
        self.masks = [backend.empty((batch_size, n), dtype) for n in hidden_sizes]
        self.dropped = [backend.empty((batch_size, n), dtype) for n in hidden_sizes]
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

    def dropout_views(self, m):
        """(masks, dropped) of the hidden layers cut to m rows, made once per m."""
        key = ("dropout", m)
        if key not in self._slots:
            self._slots[key] = ([mask[:m] for mask in self.masks],
                                [dropped[:m] for dropped in self.dropped])
        return self._slots[key]


def feedforward(backend, weights, biases, activations, kinds):
    """Fill activations[1:] from activations[0]; return the output layer a^L."""
    for l, (w, b) in enumerate(zip(weights, biases)):
        backend.linear_activation(activations[l], w, b, out=activations[l + 1], kind=kinds[l])
    return activations[-1]


def backpropagate(backend, weights, activations, deltas, kinds, masks=None):
    """Fill deltas[:-1] from the output error deltas[-1] by equation (2);
    with dropout ``masks``, a dropped unit passes no error back."""
    for l in range(len(weights) - 1, 0, -1):
        backend.backpropagate_error(deltas[l], weights[l], activations[l], out=deltas[l - 1],
                                    kind=kinds[l - 1])
        if masks is not None:
            backend.xp.multiply(deltas[l - 1], masks[l - 1], out=deltas[l - 1])


def train_step(backend, plan, weights, biases, workspace, activations, targets, deltas,
               rng=None):
    """One SGD step on the mini-batch in ``activations[0]``/``targets``, in place.

    The output error is scaled by η/m up front; since equation (2) is linear
    in δ, every layer's error then carries the factor and ``grad_w`` is
    already the step (η/m) Σ_x ∇C_x.
    """
    m = targets.shape[0]
    masks = None
    if plan.dropout:
        masks, dropped = workspace.dropout_views(m)
        inputs = _feedforward_with_dropout(backend, plan, weights, biases, activations, masks,
                                           dropped, rng)
    else:
        inputs = activations
        feedforward(backend, weights, biases, activations, plan.kinds)
    plan.cost.output_error(backend, activations[-1], targets, plan.eta / m, out=deltas[-1])
    backpropagate(backend, weights, activations, deltas, plan.kinds, masks)
    momentum = workspace.velocity_w is not None
    for l in range(len(weights)):
        backend.update_layer(deltas[l], inputs[l], weights[l], biases[l], workspace.grad_w[l],
                             workspace.grad_b[l], workspace.velocity_w[l] if momentum else None,
                             workspace.velocity_b[l] if momentum else None, plan.momentum,
                             plan.decay, plan.l1_step)


def _feedforward_with_dropout(backend, plan, weights, biases, activations, masks, dropped,
                              rng):
    """Feedforward where each hidden layer's f(z) (kept in ``activations`` for
    f') reaches the next layer multiplied by a fresh inverted-dropout mask,
    through ``dropped``. Returns the inputs each layer saw, for the weight
    gradients."""
    inputs = [activations[0]]
    for l, (w, b) in enumerate(zip(weights, biases)):
        backend.linear_activation(inputs[l], w, b, out=activations[l + 1], kind=plan.kinds[l])
        if l < len(masks):
            backend.dropout_mask(rng, plan.dropout, masks[l])
            backend.xp.multiply(activations[l + 1], masks[l], out=dropped[l])
            inputs.append(dropped[l])
    return inputs


def train_epoch(backend, plan, weights, biases, X, Y, order, batch_size, workspace, rng=None):
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
            train_step(backend, plan, weights, biases, workspace, activations, targets, deltas,
                       rng)


def gradient(backend, cost, kinds, weights, biases, X, Y):
    """(nabla_b, nabla_w): the gradient of the mean cost over the rows of X."""
    m = X.shape[0]
    sizes = [X.shape[1]] + [w.shape[0] for w in weights]
    workspace = Workspace(backend, sizes, m, X.dtype)
    activations, targets, deltas = workspace.slot(0, m)
    activations[0][...] = X
    targets[...] = Y
    feedforward(backend, weights, biases, activations, kinds)
    cost.output_error(backend, activations[-1], targets, 1.0 / m, out=deltas[-1])
    backpropagate(backend, weights, activations, deltas, kinds)
    for l in range(len(weights)):
        backend.weight_gradient(deltas[l], activations[l], workspace.grad_w[l], workspace.grad_b[l])
    return workspace.grad_b, workspace.grad_w


# ---------------------------------------------------------------- scoring
# Scoring runs over whole data sets in chunks, to bound memory; results stay
# on the device as 0-d arrays so the caller decides when to synchronise.

SCORING_CHUNK = 10_000


def output_logits(backend, kinds, weights, biases, X):
    """z^L for every row of X (one chunk); the hidden layers as in feedforward.
    Weights large enough to overflow give ±inf or NaN in z, without NumPy's
    warnings: z is the result, and what reads it decides (a prediction is
    still an argmax; the training loop stops on a cost that is not finite)."""
    xp = backend.xp
    a = X
    with backend.ignoring_float_errors():
        for w, b, kind in zip(weights[:-1], biases[:-1], kinds):
            a = backend.linear_activation(
                a, w, b, out=backend.empty((a.shape[0], w.shape[0]), a.dtype), kind=kind)
        z = xp.matmul(a, weights[-1].T)
        xp.add(z, biases[-1], out=z)
    return z


def scored_chunks(backend, kinds, weights, biases, X):
    """``(rows, z^L)`` for each chunk of at most SCORING_CHUNK rows of X: the
    one loop every score (accuracy, cost, predictions) runs over a data set."""
    for start in range(0, X.shape[0], SCORING_CHUNK):
        rows = slice(start, start + SCORING_CHUNK)
        yield rows, output_logits(backend, kinds, weights, biases, X[rows])


def predicted_labels(backend, z):
    """The class each row of z^L stands for: argmax_j a^L_j, which is argmax_j
    z^L_j (sigmoid and softmax are increasing in z_j); for a single output
    neuron, [a^L > 0.5] = [z^L > 0] (σ(z) > 1/2 exactly when z > 0)."""
    xp = backend.xp
    if z.shape[1] == 1:
        return (z[:, 0] > 0).astype(xp.int64)
    return xp.argmax(z, axis=1)


def count_correct(backend, kinds, weights, biases, X, labels):
    """Σ [predicted label == label] over the rows of X, as a 0-d device array."""
    xp = backend.xp
    correct = xp.zeros((), dtype=xp.int64)
    for rows, z in scored_chunks(backend, kinds, weights, biases, X):
        correct += xp.sum(predicted_labels(backend, z) == labels[rows])
    return correct


def count_positives(backend, kinds, weights, biases, X, labels):
    """For one output neuron: {"true_positives", "predicted_positives",
    "actual_positives"} over the rows of X, as 0-d device arrays.

    precision = true/predicted ("when it says yes, how often is it right")
    and recall = true/actual ("how many of the yeses does it find").
    """
    xp = backend.xp
    counts = {key: xp.zeros((), dtype=xp.int64) for key in POSITIVE_COUNTS}
    for rows, z in scored_chunks(backend, kinds, weights, biases, X):
        said_yes = predicted_labels(backend, z) == 1
        is_yes = labels[rows] == 1
        counts["true_positives"] += xp.sum(said_yes & is_yes)
        counts["predicted_positives"] += xp.sum(said_yes)
        counts["actual_positives"] += xp.sum(is_yes)
    return counts


def total_cost(backend, cost, kinds, weights, biases, X, Y):
    """Mean cost over the rows of X, as a 0-d device array."""
    xp = backend.xp
    total = xp.zeros((), dtype=X.dtype)
    for rows, z in scored_chunks(backend, kinds, weights, biases, X):
        total += cost.total(backend, z, Y[rows])
    return total / X.shape[0]


def regularization_cost(backend, weights, l2, l1, train_size):
    """(λ₂/2n) Σ w² + (λ₁/n) Σ |w| over every weight (biases are not
    regularised), n the training-set size; a 0-d device array."""
    xp = backend.xp
    total = xp.zeros((), dtype=weights[0].dtype)
    for w in weights:
        if l2:
            total += l2 / (2 * train_size) * xp.sum(w * w)
        if l1:
            total += l1 / train_size * xp.sum(xp.abs(w))
    return total
