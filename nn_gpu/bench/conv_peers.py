"""Chapter 6's networks in PyTorch, layer for layer: the peer that ``nn-gpu
bench --conv --peers``, ``bench/test_conv.py`` and ``bench/gpu_conv.py``
time nn_gpu's conv epoch against. PyTorch is never a dependency:
:class:`~nn_gpu.bench.peers.PeerUnavailable` says why it cannot run here.

:func:`torch_model` writes the ``torch.nn.Sequential`` a PyTorch user
writes for a list of nn_gpu layers:

* ConvPoolLayer -> Conv2d(C, F, k), MaxPool2d(pool), the activation, in
  network3.py's order (Conv2d adds b before pooling, network3.py after:
  b is constant over a map, so the maximum is the same);
* FullyConnectedLayer -> Dropout(p) where it has p_dropout (on its inputs,
  inverted, as ours), Linear, the activation;
* SoftmaxLayer -> Dropout(p) where it has p_dropout, Linear: the logits,
  trained with CrossEntropyLoss (log-softmax + log-likelihood).

Its inputs are nn_gpu's rows of pixels: an Unflatten makes them images
of a conv-pool layer's ``image_shape`` and a Flatten makes rows again, in
(map, row, column) order, ours, wherever the shapes change. Conv2d computes the same correlation as
:class:`~nn_gpu.convnet.layers.ConvPoolLayer` and both store filters as
(F, C, k, k) and weights as (n_out, n_in), so parameters copy across as
they are (:func:`copy_parameters`).
"""

import numpy

from ..convnet.layers import ConvPoolLayer, SoftmaxLayer
from .peers import import_torch

ACTIVATIONS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "ReLU"}


def torch_model(torch, layers):
    """The ``torch.nn.Sequential`` of ``layers`` (PyTorch's default initialisation)."""
    nn, parts, shape = torch.nn, [], None  # shape: the maps the previous module gives, if any
    for layer in layers:
        conv = isinstance(layer, ConvPoolLayer)
        wanted = layer.image_shape if conv else None  # None: rows
        if shape != wanted:
            parts += [nn.Flatten()] if shape is not None else []
            parts += [nn.Unflatten(1, wanted)] if wanted is not None else []
        if conv:
            filters, channels, k, _ = layer.filter_shape
            parts += [nn.Conv2d(channels, filters, k), nn.MaxPool2d(layer.pool)]
        else:
            if layer.p_dropout:
                parts.append(nn.Dropout(layer.p_dropout))
            parts.append(nn.Linear(layer.n_in, layer.n_out))
        if not isinstance(layer, SoftmaxLayer):
            parts.append(getattr(nn, ACTIVATIONS[layer.activation])())
        shape = layer.output_shape if conv else None
    return nn.Sequential(*parts)


def weighted_modules(torch, model):
    """The Conv2d and Linear modules of ``model``: one per nn_gpu layer, in order."""
    return [module for module in model if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))]


def copy_parameters(torch, model, weights, biases):
    """Put nn_gpu's parameters (host arrays, w^l and b^l per layer) into ``model``."""
    with torch.no_grad():
        for module, w, b in zip(weighted_modules(torch, model), weights, biases, strict=True):
            module.weight.copy_(torch.from_numpy(numpy.asarray(w)))
            module.bias.copy_(torch.from_numpy(numpy.asarray(b)))


class TorchConvEpoch:
    """One epoch of ``layers`` in PyTorch per call, trained as
    :meth:`ConvNetwork.sgd <nn_gpu.convnet.network.ConvNetwork.sgd>` trains
    them: the book's initial parameters from ``seed`` (the same draw as
    ``ConvNetwork(layers, seed=seed)``), a fresh shuffle of (X, labels) each
    epoch, consecutive mini-batches (the last may be smaller), autograd,
    ``optim.SGD`` at η with L2 as weight decay λ/n on the weights only (so
    one step is w -> (1 - ηλ/n) w - η ∂C/∂w, ours). On ``device="cuda"`` the
    data is moved there once and each epoch ends with a synchronisation;
    on the CPU, torch gets ``threads`` threads (None: its own setting)."""

    def __init__(self, layers, X, labels, mini_batch_size, eta, l2=0.0, threads=None,
                 device="cpu", seed=0, dtype="float32"):
        torch = self.torch = import_torch(threads if device == "cpu" else None, device)
        self.device, self.mini_batch_size = device, mini_batch_size
        self.model = torch_model(torch, layers).to(device=device, dtype=getattr(torch, dtype))
        rng = numpy.random.default_rng(seed)
        copy_parameters(torch, self.model, *zip(*[layer.initial_parameters(rng)
                                                  for layer in layers]))
        # Copies: the data sets are read-only, and torch shares no read-only array.
        self.X = torch.as_tensor(numpy.array(X, dtype=dtype), device=device)
        self.labels = torch.as_tensor(numpy.array(labels, dtype=numpy.int64), device=device)
        n = self.X.shape[0]
        modules = weighted_modules(torch, self.model)
        self.optimizer = torch.optim.SGD(
            [{"params": [m.weight for m in modules], "weight_decay": l2 / n},
             {"params": [m.bias for m in modules]}], lr=eta)
        self.loss = torch.nn.CrossEntropyLoss()  # the mean over the mini-batch
        self.generator = torch.Generator(device=device).manual_seed(seed)
        count = torch.get_num_threads()
        where = "CUDA" if device == "cuda" else f"CPU, {count} thread{'s' if count != 1 else ''}"
        self.description = (f"PyTorch {torch.__version__} ({where}): nn.Conv2d, MaxPool2d, "
                            "Linear, autograd, optim.SGD, eager")

    def __call__(self):
        torch, n, m = self.torch, self.X.shape[0], self.mini_batch_size
        self.model.train()
        order = torch.randperm(n, generator=self.generator, device=self.device)
        for start in range(0, n, m):
            index = order[start:start + m]
            loss = self.loss(self.model(self.X[index]), self.labels[index])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        if self.device == "cuda":
            torch.cuda.synchronize()  # the epoch is done when the device is
