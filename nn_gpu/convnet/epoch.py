"""The convolutional network's epoch: every SGD step of
:class:`~nn_gpu.convnet.network.ConvNetwork`, with a fresh dropout mask on
the input of each layer that has ``p_dropout``.

Each step is w -> (1 - ηλ/n) w - (η/m) Σ_x ∇C_x, biases without the decay,
layer by layer from the top as backprop reaches it.
"""

from ..model.epoch import EpochRunner


class ConvEpochRunner(EpochRunner):
    """The training set on the device, checked once; each call trains one
    epoch of ``net`` (see :class:`~nn_gpu.model.epoch.EpochRunner`)."""

    def __init__(self, net, training_data, settings):
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
