"""The per-example reference for convolutional networks: one image at a
time, every sum written out as a loop.

It shares nothing with :mod:`nn_gpu.convnet.layers` but the layer
descriptions: no im2col, no strided views, no batching; it works on host
NumPy float64 arrays, images as (maps, rows, columns). It is slow on purpose
and exists so the tests can hold the batched layers to the definitions.
"""

import numpy


def _f(kind, z):
    if kind == "sigmoid":
        return 1.0 / (1.0 + numpy.exp(-z))
    if kind == "tanh":
        return numpy.tanh(z)
    if kind == "relu":
        return numpy.maximum(z, 0.0)
    e = numpy.exp(z - z.max())  # softmax
    return e / e.sum()


def _f_prime(kind, z):
    if kind == "sigmoid":
        s = _f("sigmoid", z)
        return s * (1.0 - s)
    if kind == "tanh":
        return 1.0 - numpy.tanh(z) ** 2
    return (z > 0).astype(float)  # relu


def _conv_pool_forward(layer, w, b, a):
    """z_{f,i,j} = Σ_{c,p,q} w_{f,c,p,q} a_{c,i+p,j+q}; u = max over each
    pool x pool window (first maximum in row-major order); returns (u + b,
    where each window's maximum was)."""
    filters, channels, k, _ = layer.filter_shape
    ho, wo = layer.conv_shape
    _, hp, wp = layer.output_shape
    pool = layer.pool
    z = numpy.zeros((filters, ho, wo))
    for f in range(filters):
        for i in range(ho):
            for j in range(wo):
                total = 0.0
                for c in range(channels):
                    for p in range(k):
                        for q in range(k):
                            total += w[f, c, p, q] * a[c, i + p, j + q]
                z[f, i, j] = total
    pooled = numpy.zeros((filters, hp, wp))
    where = {}
    for f in range(filters):
        for I in range(hp):
            for J in range(wp):
                best = None
                for r in range(pool):
                    for s in range(pool):
                        value = z[f, I * pool + r, J * pool + s]
                        if best is None or value > best:
                            best, where[f, I, J] = value, (I * pool + r, J * pool + s)
                pooled[f, I, J] = best + b[f]
    return pooled, where


def _conv_pool_backward(layer, w, a, delta, where):
    """(∂C/∂w, ∂C/∂b, ∂C/∂a^{l-1}) from δ = ∂C/∂(u + b) of one image."""
    filters, channels, k, _ = layer.filter_shape
    grad_z = numpy.zeros((filters, *layer.conv_shape))
    for (f, I, J), (i, j) in where.items():
        grad_z[f, i, j] = delta[f, I, J]
    grad_b = numpy.array([delta[f].sum() for f in range(filters)])
    grad_w = numpy.zeros(layer.filter_shape)
    grad_a = numpy.zeros(a.shape)
    ho, wo = layer.conv_shape
    for f in range(filters):
        for i in range(ho):
            for j in range(wo):
                for c in range(channels):
                    for p in range(k):
                        for q in range(k):
                            grad_w[f, c, p, q] += grad_z[f, i, j] * a[c, i + p, j + q]
                            grad_a[c, i + p, j + q] += grad_z[f, i, j] * w[f, c, p, q]
    return grad_w, grad_b, grad_a


def backprop_example(layers, weights, biases, x, label, masks=None):
    """(nabla_b, nabla_w, cost) of C = -ln a^L_label for one example x
    (a flat host vector); ``masks[l]`` is the dropout mask (already divided
    by 1 - p) on layer l's input, or None."""
    masks = masks or [None] * len(layers)
    a, inputs, zs, wheres = numpy.asarray(x, float), [], [], []
    for layer, w, b, mask in zip(layers, weights, biases, masks):
        if mask is not None:
            a = a * mask
        inputs.append(a)
        if layer.kind == "conv_pool":
            z, where = _conv_pool_forward(layer, w, b, a.reshape(layer.image_shape))
            z = z.ravel()
        else:
            z, where = w @ a + b, None
        zs.append(z)
        wheres.append(where)
        a = _f(layer.activation, z)
    cost = -numpy.log(a[label])
    delta = a - numpy.eye(len(a))[label]  # equation (1) for softmax + log-likelihood
    nabla_b, nabla_w = [None] * len(layers), [None] * len(layers)
    for l in range(len(layers) - 1, -1, -1):
        layer, w = layers[l], weights[l]
        if layer.kind == "conv_pool":
            grad_w, grad_b, grad_in = _conv_pool_backward(
                layer, w, inputs[l].reshape(layer.image_shape),
                delta.reshape(layer.output_shape), wheres[l])
            grad_in = grad_in.ravel()
        else:
            grad_w, grad_b, grad_in = numpy.outer(delta, inputs[l]), delta, w.T @ delta
        nabla_w[l], nabla_b[l] = grad_w, grad_b
        if l > 0:
            if masks[l] is not None:
                grad_in = grad_in * masks[l]
            delta = grad_in * _f_prime(layers[l - 1].activation, zs[l - 1])
    return nabla_b, nabla_w, cost
