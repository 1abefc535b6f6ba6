"""The network: Nielsen's ``Network`` class on a pluggable array backend.

Conventions (a contract other code depends on): ``sizes`` lists the layer
widths, input first; ``weights[l]`` has shape (n_out, n_in), its entry
w_jk connecting neuron k of one layer to neuron j of the next; ``biases[l]``
has shape (n_out,); a batch of inputs X is (m, n_in), one example per row.
"""

import contextlib
import math
import zipfile

import numpy

from ..backends import NumpyBackend, choose_backend, get_backend
from ..errors import InvalidArgumentError, MemoryBudgetError, ModelFileError
from ..io import memory, npz
from ..io.fileio import NotRegularFileError, input_stream
from ..options import ACTIVATIONS, INITS, choice, fresh_seed, positive_int
from ..options import dtype as check_dtype
from ..options import seed as check_seed
from . import core
from .base import Model
from .costs import get_cost
from .epoch import DenseEpochRunner

#: Why a network built with backend "auto" is on the host before it trains.
AUTO_PENDING = "auto: on the host until training chooses the device for its mini-batch size"
MODEL_FORMAT = "nn_gpu.network"
MODEL_VERSION = 1
#: Bytes per parameter that building a network takes on the host: the
#: float64 draw, its scaled copy, and the array of the network's dtype.
BUILD_BYTES = 24


def initial_parameters(rng, sizes, init):
    """(biases, weights) as float64 host arrays drawn from ``rng``.

    ``"normal"``: every entry N(0, 1), as in the seed notes (network2's "large").
    ``"scaled"``: weights N(0, 1/n_in), so z starts O(1) and does not saturate
    (network2's "default").
    Drawing on the host makes the same seed give the same network on every backend.
    """
    biases = [rng.standard_normal(n_out) for n_out in sizes[1:]]
    weights = [rng.standard_normal((n_out, n_in)) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    if init == "scaled":
        weights = [w / math.sqrt(w.shape[1]) for w in weights]
    return biases, weights


def check_buildable(sizes, extra_bytes_per_parameter=0, advice="choose smaller layer sizes"):
    """Raise :class:`MemoryBudgetError` before building a network ``sizes``
    that cannot fit in the memory available."""
    count = memory.parameter_count(sizes)
    memory.check_fits(count * (BUILD_BYTES + extra_bytes_per_parameter),
                      f"a network of sizes {npz.short(sizes)} ({count:,} parameters)", advice)


def check_outputs(cost, n_out):
    """A softmax over one neuron is always 1: log-likelihood needs two outputs or more."""
    if n_out == 1 and cost.output_activation == "softmax":
        raise InvalidArgumentError(
            f"cost {cost.name!r} puts a softmax on the output layer, which is always 1 for a "
            "single output neuron; use cost 'cross_entropy' or 'quadratic' with one output")


class Network(Model):
    """A feed-forward network trained by mini-batch SGD.

    ``cost`` is ``"quadratic"`` or ``"cross_entropy"`` (sigmoid output layer)
    or ``"log_likelihood"`` (softmax output layer); ``activation`` is the
    hidden layers' ``"sigmoid"``, ``"tanh"`` or ``"relu"``; ``backend`` is
    ``"auto"``, ``"numpy"``, ``"cupy"`` or a backend object; ``dtype`` is
    ``"float32"`` (fast) or ``"float64"`` (exact comparisons); ``seed`` fixes
    the initial parameters and every epoch's shuffle; ``init`` is
    ``"normal"`` (N(0, 1)) or ``"scaled"`` (N(0, 1/n_in)) weights.

    With ``backend="auto"`` the parameters stay on the host until training
    starts: ``sgd`` knows the mini-batch size, and chooses the device and
    path that are estimated fastest for it (:func:`~nn_gpu.backends.choose_backend`,
    as ``nn-gpu train`` does), moving the parameters there;
    :attr:`backend_choice` says which and why.

    A network with one output neuron is a yes/no classifier (the seed notes'
    "is it a nine?"): labels are 0 or 1, the target y is the label itself,
    and a^L > 0.5, that is z^L > 0, means 1.

    It trains with every option of :class:`~nn_gpu.options.TrainingSettings`
    (:meth:`~nn_gpu.model.base.Model.sgd`).
    """

    IDENTITY = ("format", "sizes", "cost", "activation", "dtype")

    def __init__(self, sizes, cost="quadratic", backend="auto", dtype="float32", seed=None,
                 init="normal", activation="sigmoid"):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__") or len(sizes) < 2:
            raise InvalidArgumentError(
                f"sizes must list at least two layer widths (input and output), got {sizes!r}")
        self.sizes = [positive_int(n, "every layer size") for n in sizes]
        self.cost = get_cost(cost)
        check_outputs(self.cost, self.sizes[-1])
        self.activation = choice(activation, ACTIVATIONS, "activation")
        #: The activation of each layer's output: hidden ones, then the cost's.
        self.kinds = (activation,) * (len(self.sizes) - 2) + (self.cost.output_activation,)
        self.dtype = check_dtype(dtype)
        self.init = choice(init, INITS, "init")
        seed = check_seed(seed)
        self.seed = fresh_seed() if seed is None else seed  # drawn, it is known: runs repeat
        check_buildable(self.sizes)
        self._backend_request = backend
        self.backend = (NumpyBackend(reason=AUTO_PENDING) if isinstance(backend, str)
                        and backend == "auto" else get_backend(backend))
        #: The :class:`~nn_gpu.backends.BackendChoice` of the latest training
        #: (backend, path and why), None before the first.
        self.backend_choice = None
        # Host RNG: initial parameters and shuffles, identical on every backend.
        self.rng = numpy.random.default_rng(self.seed)
        biases, weights = initial_parameters(self.rng, self.sizes, init)
        self.biases = [self.backend.asarray(b, self.dtype) for b in biases]
        self.weights = [self.backend.asarray(w, self.dtype) for w in weights]
        #: The settings of the last ``sgd`` run (η as it ended), kept by ``save``
        #: (as the model file's "training" metadata).
        self.last_training = None

    def __repr__(self):
        return (f"Network({self.sizes}, cost={self.cost.name!r}, "
                f"activation={self.activation!r}, backend={self.backend.name!r}, "
                f"dtype={self.dtype.name!r})")

    # ---------------------------------------------------------- the math
    def feedforward(self, X):
        """Output activations a^L, shape (m, n_out), as a backend array."""
        X = self._inputs(X)
        activations = [X] + [self.backend.empty((X.shape[0], n), self.dtype)
                             for n in self.sizes[1:]]
        return core.feedforward(self.backend, self.weights, self.biases, activations, self.kinds)

    def backprop(self, X, Y):
        """(nabla_b, nabla_w): the gradient of the mean per-example cost over
        the rows of X with one-hot targets Y, computed for the whole batch at once."""
        X = self._inputs(X)
        Y = self._targets(X, Y)
        return core.gradient(self.backend, self.cost, self.kinds, self.weights, self.biases, X, Y)

    def count_correct(self, X, labels):
        """Σ [prediction == label] over device data, as a 0-d device array; the
        prediction is argmax a^L, or [a^L > 0.5] for a single output neuron."""
        return core.count_correct(self.backend, self.kinds, self.weights, self.biases, X, labels)

    def predicted_labels(self, X):
        """The predicted class of every row of device X, on the device: argmax
        a^L, or [a^L > 0.5] for one output neuron (scored in chunks)."""
        chunks = [core.predicted_labels(self.backend, z) for _, z in
                  core.scored_chunks(self.backend, self.kinds, self.weights, self.biases, X)]
        return chunks[0] if len(chunks) == 1 else self.backend.xp.concatenate(chunks)

    def count_positives(self, X, labels):
        """For one output neuron: the device counts behind precision and recall
        (see :func:`nn_gpu.model.core.count_positives`)."""
        return core.count_positives(self.backend, self.kinds, self.weights, self.biases, X,
                                    labels)

    def cost_of(self, X, labels, l2=0.0, l1=0.0, train_size=None):
        """Mean cost over device data plus the regularisation terms, each
        scaled by the size of the *training* set (as a 0-d device array)."""
        cost = core.total_cost(self.backend, self.cost, self.kinds, self.weights, self.biases,
                               X, self.one_hot(labels))
        if l2 or l1:
            cost = cost + core.regularization_cost(self.backend, self.weights, l2, l1,
                                                   train_size or X.shape[0])
        return cost

    # ---------------------------------------------------------- training
    def runner(self, training_data, settings):
        """The :class:`~nn_gpu.model.epoch.DenseEpochRunner` the training loop
        runs each epoch (``settings``: a :class:`~nn_gpu.options.TrainingSettings`),
        on the backend chosen for this training."""
        self.choose_backend(settings, examples(training_data))
        return DenseEpochRunner(self, training_data, settings)

    def choose_backend(self, settings, train_size):
        """Choose where a training with ``settings`` on ``train_size``
        examples runs (:func:`nn_gpu.backends.choose_backend`, given what the
        network was built with: "auto", "numpy", "cupy" or a backend object),
        move the parameters there if that is another device, and record the
        choice in :attr:`backend_choice`; return it."""
        plan = core.Plan(cost=self.cost, kinds=self.kinds, eta=settings.eta,
                         train_size=max(1, train_size), **settings.regularisation)
        choice = choose_backend(self._backend_request, plan, self.sizes,
                                settings.mini_batch_size, self.dtype, settings.method)
        if choice.backend.name != self.backend.name:
            host = [self.backend.to_host(a) for a in (*self.weights, *self.biases)]
            device = [choice.backend.asarray(a, self.dtype) for a in host]
            self.weights, self.biases = device[:len(self.weights)], device[len(self.weights):]
        self.backend = choice.backend
        self.backend_choice = choice
        return choice

    # ------------------------------------------------------- persistence
    @staticmethod
    def checkpoint_arrays(model):
        """Name -> shape of every array a checkpoint of the network its
        metadata ``model`` describes may hold (``model`` checked first): the
        parameters, the momentum velocities and the early-stopping snapshot."""
        sizes = check_metadata(model)
        # the parameters, velocities and best weights, each up to 8 bytes
        check_buildable(sizes, 3 * 8, "it cannot be resumed here")
        shapes = {}
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            for prefix in ("", "velocity_", "best_"):
                shapes[f"{prefix}w{l}"] = (n_out, n_in)
                shapes[f"{prefix}b{l}"] = (n_out,)
        return shapes

    def metadata(self):
        return {"format": MODEL_FORMAT, "version": MODEL_VERSION, "sizes": self.sizes,
                "cost": self.cost.name, "activation": self.activation,
                "dtype": self.dtype.name, "init": self.init, "training": self.last_training}

    @classmethod
    def load(cls, path, backend="auto"):
        """Read a network written by :meth:`save` (a path, or a binary file
        object holding what :meth:`write` wrote), onto any backend.

        Any file is safe to try: the result is a Network or a one-line
        :class:`ModelFileError`. Only the members the metadata calls for are
        read, each after its .npy header has been checked against the sizes
        in the metadata, and the network is built last, so a damaged or forged
        file never allocates more than it really holds.
        """
        with model_file_errors(path, "model file", "Network.save / nn-gpu train --save"), \
                input_stream(path, what="model file") as handle, zipfile.ZipFile(handle) as archive:
            names = set(archive.namelist())
            meta = npz.read_metadata(archive, names)
            sizes = check_metadata(meta)
            check_buildable(sizes, 8, "it cannot be loaded here")  # 8: the arrays read
            stored = {}
            for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
                for name, shape in ((f"w{l}", (n_out, n_in)), (f"b{l}", (n_out,))):
                    array = npz.read_npy(archive, names, name, shape, "fiu")
                    if not numpy.isfinite(array).all():
                        raise ValueError(f"array {name} is not finite real numbers")
                    stored[name] = array
        net = cls(sizes, cost=meta["cost"], backend=backend, dtype=meta["dtype"],
                  init=meta.get("init", "normal"), activation=meta.get("activation", "sigmoid"))
        last_training = meta.get("training")
        net.last_training = last_training if isinstance(last_training, dict) else None
        for l in range(len(sizes) - 1):
            net.weights[l] = net.backend.asarray(stored[f"w{l}"], net.dtype)
            net.biases[l] = net.backend.asarray(stored[f"b{l}"], net.dtype)
        return net



@contextlib.contextmanager
def model_file_errors(path, kind, writer):
    """Whatever goes wrong reading the model file ``path`` (a ``kind``, written
    by ``writer``) as one :class:`ModelFileError` line naming it: the one
    wording for every kind of model."""
    try:
        yield
    except FileNotFoundError:
        raise ModelFileError(f"{path}: model file not found") from None
    except KeyError as exc:
        raise ModelFileError(f"{path}: not an nn_gpu {kind} (missing {exc})") from None
    except ValueError as exc:  # InvalidArgumentError included
        message = " ".join(str(exc).split())
        raise ModelFileError(f"{path}: invalid {kind}: {message}") from None
    except MemoryBudgetError as exc:
        raise ModelFileError(f"{path}: declares {exc}") from None
    except (NotRegularFileError, PermissionError) as exc:
        raise ModelFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except Exception:  # noqa: BLE001 - zipfile raises many kinds on damaged bytes
        raise ModelFileError(f"{path}: not a readable nn_gpu model file (.npz written "
                             f"by {writer})") from None


def examples(data):
    """How many examples ``(X, labels)`` holds (0 where it is not such a
    pair: the epoch runner then says what is wrong with it)."""
    try:
        return len(data[1])
    except (TypeError, IndexError, KeyError):
        return 0


# ------------------------------------------------------ reading model files
def check_metadata(meta):
    """The layer sizes, once every setting in ``meta`` has been checked."""
    if meta.get("format") != MODEL_FORMAT:
        raise ValueError(f"format is {npz.short(meta.get('format'))}, expected {MODEL_FORMAT!r}")
    if meta.get("version") != MODEL_VERSION:
        raise ValueError(f"unsupported version {npz.short(meta.get('version'))}")
    for key in ("cost", "dtype", "activation", "init"):
        if key in meta and not isinstance(meta[key], str):
            raise ValueError(f"{key} {npz.short(meta[key])} is not a string")
    cost = get_cost(meta["cost"])
    check_dtype(meta["dtype"])
    choice(meta.get("activation", "sigmoid"), ACTIVATIONS, "activation")
    choice(meta.get("init", "normal"), INITS, "init")
    sizes = meta["sizes"]
    if not isinstance(sizes, list) or len(sizes) < 2 or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes):
        raise ValueError(f"sizes {npz.short(sizes)} is not a list of layer widths")
    check_outputs(cost, sizes[-1])
    return sizes
