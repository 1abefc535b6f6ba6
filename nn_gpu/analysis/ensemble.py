"""Several trained networks voting: the book's ensemble of five chapter-6
networks (99.67%).

Each network votes for the digit its output is largest on; the digit with
the most votes wins, a tie going to the digit with the larger sum of all the
networks' outputs. Models may be any mix of :class:`~nn_gpu.Network` and
:class:`~nn_gpu.convnet.ConvNetwork` on one backend.
"""

import zipfile

from ..errors import InvalidArgumentError, ModelFileError
from ..io import npz
from ..io.fileio import input_stream
from ..model.network import Network


def load_model(path, backend="auto"):
    """The model in ``path``, a :class:`~nn_gpu.Network` or a
    :class:`~nn_gpu.convnet.ConvNetwork` as its metadata says."""
    from ..convnet.network import MODEL_FORMAT, ConvNetwork

    try:
        # A non-regular file (a FIFO would hang) is left for Network.load to refuse.
        with input_stream(path, what="model file") as handle, zipfile.ZipFile(handle) as archive:
            convolutional = npz.read_metadata(archive, set(archive.namelist())).get(
                "format") == MODEL_FORMAT
    except Exception:  # noqa: BLE001 - Network.load says what is wrong, in one line
        convolutional = False
    return (ConvNetwork if convolutional else Network).load(path, backend=backend)


def votes(nets, X):
    """(m, 10) device array: per row, votes·(N + 1) + Σ outputs over the N
    networks, so its argmax is the most-voted digit, ties to the larger sum."""
    if not nets:
        raise InvalidArgumentError("an ensemble needs at least one model")
    backend = nets[0].backend
    xp = backend.xp
    total = None
    for net in nets:
        a = net.feedforward(X)
        vote = xp.arange(a.shape[1]) == xp.argmax(a, axis=1)[:, None]
        score = vote * (len(nets) + 1.0) + a
        total = score if total is None else total + score
    return total


def predict(nets, X):
    """The ensemble's digit for each row of X (host array)."""
    return nets[0].backend.to_host(nets[0].backend.xp.argmax(votes(nets, X), axis=1))


def accuracy(nets, data):
    """(correct, total) of the ensemble's votes on ``(X, labels)``."""
    X, labels = data
    for net in nets[1:]:
        if net.sizes[0] != nets[0].sizes[0] or net.sizes[-1] != nets[0].sizes[-1]:
            raise ModelFileError("the ensemble's models must share their input and output sizes")
    predicted = predict(nets, X)
    return int((predicted == labels).sum()), len(labels)
