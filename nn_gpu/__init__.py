"""nn_gpu: the feed-forward networks of Nielsen's *Neural Networks and Deep
Learning*, trained by mini-batch SGD with a batched core, on NumPy or CuPy.

    >>> import nn_gpu
    >>> training, validation, test = nn_gpu.load_mnist()
    >>> net = nn_gpu.Network([784, 30, 10], seed=1)
    >>> history = net.sgd(training, 30, 10, 3.0, test_data=test)

``import nn_gpu`` never imports CuPy; asking for the ``"cupy"`` backend does.
"""

from .backends import cupy_status, get_backend
from .data.dataset import Dataset
from .data.mnist import load_mnist
from .errors import NNGpuError
from .model.network import Network
from .model.perceptron import Perceptron
from .version import __version__

__all__ = ["Dataset", "Network", "NNGpuError", "Perceptron", "cupy_status", "get_backend",
           "load_mnist", "__version__"]
