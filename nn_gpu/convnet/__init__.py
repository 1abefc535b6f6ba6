"""Chapter 6 of the book: convolutional networks (network3.py's layers) on
the library's backends, batched over whole mini-batches.

    >>> from nn_gpu.convnet import ConvNetwork, ConvPoolLayer, FullyConnectedLayer, SoftmaxLayer
    >>> net = ConvNetwork([ConvPoolLayer((1, 28, 28), (20, 1, 5, 5)),
    ...                    FullyConnectedLayer(20 * 12 * 12, 100),
    ...                    SoftmaxLayer(100, 10)], seed=1)
"""

from .layers import ConvPoolLayer, FullyConnectedLayer, SoftmaxLayer, layer_from_spec
from .network import ConvNetwork

__all__ = ["ConvNetwork", "ConvPoolLayer", "FullyConnectedLayer", "SoftmaxLayer",
           "layer_from_spec"]
