"""Nielsen's per-example algorithm, kept as the reference.

This is network.py's ``update_mini_batch``/``backprop``: a loop over the
examples of a mini-batch, each pushed through the network as a vector, the
gradients summed. It is slow by design (m matrix-vector products where the
batched core does one matrix-matrix product) and written independently of
:mod:`nn_gpu.model.core`, so the tests can hold the fast path to it and the
benchmarks can measure the speed-up against it. Vectors are 1-D arrays.
"""


def sigmoid_prime(backend, z):
    """σ'(z) = σ(z)(1 - σ(z))."""
    s = backend.sigmoid(z, out=backend.xp.empty_like(z))
    return s * (1 - s)


def cost_derivative_delta(cost_name, a, y, z, backend):
    """δ^L for one example, equation (1): ∇_a C ⊙ σ'(z^L)."""
    if cost_name == "quadratic":  # C = ½‖a - y‖², ∇_a C = a - y
        return (a - y) * sigmoid_prime(backend, z)
    if cost_name == "cross_entropy":  # the σ'(z) factor cancels
        return a - y
    raise ValueError(f"no per-example reference for cost {cost_name!r}")


def backprop_example(backend, cost_name, weights, biases, x, y):
    """(nabla_b, nabla_w) for a single example x (n_in,) with target y (n_out,)."""
    xp = backend.xp
    activation, activations, zs = x, [x], []
    for w, b in zip(weights, biases):
        z = xp.dot(w, activation) + b
        zs.append(z)
        activation = backend.sigmoid(z, out=xp.empty_like(z))
        activations.append(activation)
    nabla_b = [None] * len(weights)
    nabla_w = [None] * len(weights)
    delta = cost_derivative_delta(cost_name, activations[-1], y, zs[-1], backend)
    nabla_b[-1] = delta
    nabla_w[-1] = xp.outer(delta, activations[-2])           # equation (4)
    for l in range(2, len(weights) + 1):
        delta = xp.dot(weights[-l + 1].T, delta) * sigmoid_prime(backend, zs[-l])  # (2)
        nabla_b[-l] = delta                                   # equation (3)
        nabla_w[-l] = xp.outer(delta, activations[-l - 1])
    return nabla_b, nabla_w


def update_mini_batch(backend, cost_name, weights, biases, X, Y, indices, eta):
    """One SGD step: sum the per-example gradients of rows ``indices``, then
    w -= (η/m) Σ ∇C_x, in place."""
    xp = backend.xp
    nabla_b = [xp.zeros_like(b) for b in biases]
    nabla_w = [xp.zeros_like(w) for w in weights]
    for i in indices:
        delta_b, delta_w = backprop_example(backend, cost_name, weights, biases, X[i], Y[i])
        for nb, db in zip(nabla_b, delta_b):
            nb += db
        for nw, dw in zip(nabla_w, delta_w):
            nw += dw
    step = eta / len(indices)
    for w, nw in zip(weights, nabla_w):
        w -= step * nw
    for b, nb in zip(biases, nabla_b):
        b -= step * nb


def train_epoch(backend, cost_name, weights, biases, X, Y, order, batch_size, eta):
    """One epoch in the order given by the host index array ``order``."""
    for start in range(0, len(order), batch_size):
        indices = [int(i) for i in order[start:start + batch_size]]
        update_mini_batch(backend, cost_name, weights, biases, X, Y, indices, eta)
