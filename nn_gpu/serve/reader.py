"""The model behind ``nn-gpu serve``: what it reads in an uploaded image.

A :class:`Reader` holds the digit classifier and the whole-digit check,
loaded once when the server starts: the model file is never read again, so
one that is replaced or removed while the server runs changes nothing until
it is restarted. The networks are used by one request at a time (a lock):
their feedforward is not made to be shared among threads, and decoding one
image at a time also bounds the memory a burst of uploads can take. An
image is decoded from memory (a ``BytesIO``): nothing is written to disk.
"""

import io
import json
import threading

import numpy

from ..convnet.network import ConvNetwork
from ..reading.images import check_model, to_mnist
from ..model.metrics import probabilities
from ..reading.reader import read_number


def grey_levels(x):
    """A (784,) input in [0, 1] as 784 ints 0-255 (255 ink), row by row:
    what the page draws as the network's view."""
    return [int(v) for v in numpy.round(numpy.clip(numpy.asarray(x, dtype=float), 0, 1) * 255)]


def upload(data, name):
    """The uploaded bytes as a binary stream named ``name`` in messages."""
    stream = io.BytesIO(data)
    stream.name = name
    return stream


class Reader:
    """Reads numbers and single digits with ``net`` (a Network or a
    ConvNetwork for 28x28 digits) and the whole-digit ``check`` (or None),
    for any number of threads, one at a time. ``model`` names the model
    file in :meth:`about`."""

    def __init__(self, net, check=None, model="model"):
        check_model(net)  # InvalidArgumentError: not a model for digit images
        self.net, self.check, self.model = net, check, str(model)
        self._lock = threading.Lock()

    def about(self):
        """What the page says about the model: its file, layer sizes, kind,
        and whether the whole-digit check is used."""
        return {"model": self.model, "sizes": [int(n) for n in self.net.sizes],
                "kind": "convolutional" if isinstance(self.net, ConvNetwork) else "fully connected",
                "check": self.check is not None}

    def read(self, data, name, views=False):
        """The JSON text ``nn-gpu read --json`` prints for the image in the
        bytes ``data`` named ``name``; with ``views``, its object has one more
        key, "views": each digit as the classifier saw it (:func:`grey_levels`).
        Raises :class:`~nn_gpu.reading.images.ImageError` for what is no number."""
        with self._lock, numpy.errstate(all="ignore"):
            reading = read_number(self.net, upload(data, name), self.check)
        line = reading.json_line(name)
        if not views:
            return line
        document = json.loads(line)
        document["views"] = [grey_levels(x) for x in reading.inputs]
        return json.dumps(document)

    def digit(self, data, name):
        """One digit, as ``nn-gpu predict`` classifies it: a dict of the
        image's ``file`` name, the ``digit`` (for a one-digit detector: 1 for
        yes), each class's ``probabilities``, the output layer's
        ``activations`` and the ``input`` the network saw (:func:`grey_levels`)."""
        with self._lock, numpy.errstate(all="ignore"):
            x = to_mnist(upload(data, name))[None, :]
            outputs = self.net.backend.to_host(self.net.feedforward(x))
            probs = probabilities(self.net, x)[0]
        return {"file": name, "digit": int(numpy.argmax(probs)),
                "probabilities": [round(float(p), 4) for p in probs],
                "activations": [round(float(a), 4) for a in numpy.asarray(outputs)[0]],
                "input": grey_levels(x[0])}
