"""Errors a user can act on.

Everything nn_gpu raises on purpose derives from :class:`NNGpuError`, so the
command line can print the one-line message and exit non-zero instead of a
traceback. Messages say which file or argument is wrong and what to do.
"""


class NNGpuError(Exception):
    """Base class of every error meant for the user's eyes."""


class DataError(NNGpuError):
    """A data file (MNIST IDX) is missing or malformed."""


class ModelFileError(NNGpuError):
    """A saved model file cannot be read back."""


class BackendUnavailableError(NNGpuError):
    """The requested array backend cannot run on this machine."""


class InvalidArgumentError(NNGpuError, ValueError):
    """An argument passed to the API or CLI is out of range or malformed."""


class CheckpointError(NNGpuError):
    """A checkpoint is missing, damaged, or belongs to another run."""


class TrainingDivergedError(NNGpuError):
    """The cost or the weights became NaN or infinite."""


class TrainingStuckError(TrainingDivergedError):
    """Training went nowhere: the accuracy stayed at chance and the cost did
    not move (see :mod:`nn_gpu.training.loop`). A kind of divergence, so
    that code handling a diverged run handles it too."""


class MemoryBudgetError(NNGpuError):
    """A request (a network's size, a file's declared contents) needs more
    memory than this machine has available: refused before allocating."""
