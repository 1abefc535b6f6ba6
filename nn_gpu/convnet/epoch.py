"""The convolutional network's epoch: every SGD step of
:class:`~nn_gpu.convnet.network.ConvNetwork`, with a fresh dropout mask on
the input of each layer that has ``p_dropout``.

Each step is w -> (1 - ηλ/n) w - (η/m) Σ_x ∇C_x, biases without the decay,
layer by layer from the top as backprop reaches it.
"""

from ..io import memory
from ..model.epoch import EpochRunner
from ..options import dtype as check_dtype
from .layers import ConvPoolLayer


def step_bytes(layers, rows, itemsize):
    """About the bytes one SGD step over ``rows`` examples holds at once:
    per layer, the im2col matrix and pre-pooling outputs of a conv-pool
    layer, and the activations, errors and masks of every layer, forward
    and backward."""
    per_row = 0
    for layer in layers:
        if isinstance(layer, ConvPoolLayer):
            pre_pooling = layer.pool ** 2 * layer.n_out
            per_row += 2 * (layer.patch_bytes(itemsize) + pre_pooling * itemsize)
        per_row += 4 * (layer.n_in + layer.n_out) * itemsize
    return rows * per_row


def check_trainable(layers, mini_batch_size, dtype, what="the network"):
    """Raise :class:`~nn_gpu.errors.MemoryBudgetError` before training
    ``layers`` in mini-batches that cannot fit in the memory available."""
    nbytes = step_bytes(layers, mini_batch_size, check_dtype(dtype).itemsize)
    memory.check_fits(nbytes, f"training {what} in mini-batches of {mini_batch_size}",
                      "choose smaller layers or mini-batches")


class ConvEpochRunner(EpochRunner):
    """The training set on the device, checked once; each call trains one
    epoch of ``net`` (see :class:`~nn_gpu.model.epoch.EpochRunner`)."""

    def __init__(self, net, training_data, settings):
        check_trainable(net.layers, settings.mini_batch_size, net.dtype)
        super().__init__(net, training_data, settings,
                         dropout=any(layer.p_dropout for layer in net.layers))
        self.decay = 1.0

    def _step(self, l, grad_w, grad_b):
        backend = self.net.backend
        backend.sgd_update(self.net.weights[l], grad_w, decay=self.decay)
        backend.sgd_update(self.net.biases[l], grad_b)

    def train_segment(self, order, eta):
        net, backend, xp = self.net, self.net.backend, self.net.backend.xp
        self.decay = 1.0 - eta * self.settings["l2"] / self.train_size
        for start in range(0, order.shape[0], self.mini_batch_size):
            index = order[start:start + self.mini_batch_size]
            m = index.shape[0]
            masks = [None if not layer.p_dropout else
                     backend.dropout_mask(self.rng, layer.p_dropout,
                                          backend.empty((m, layer.n_in), net.dtype))
                     for layer in net.layers]
            net._backward(xp.take(self.X, index, axis=0), xp.take(self.Y, index, axis=0),
                          eta / m, masks, self._step)
