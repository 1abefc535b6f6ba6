"""Checkpoints: everything needed to continue a training run bit for bit.

One file, ``checkpoint.npz`` in the checkpoint directory, replaced atomically
after every epoch (a crash mid-write leaves the previous one whole). It holds
the parameters, the momentum velocities, the early-stopping snapshot, and as
JSON metadata the model's description, the run's settings and the state of
the loop: epochs done, η, the validation watcher, the history so far and the
state of every random generator (shuffles, dropout masks). Loading checks
all of it and reports a damaged or foreign file as one :class:`CheckpointError`.
"""

import json
import zipfile
from pathlib import Path

import numpy

from . import npz
from .errors import CheckpointError
from .fileio import atomic_write
from .network import check_metadata

FILE_NAME = "checkpoint.npz"
FORMAT = "nn_gpu.checkpoint"
VERSION = 1


class Checkpoint:
    """The checkpoint of one run in ``directory``; ``config`` is whatever the
    caller wants back on resume (the CLI keeps its resolved options there)."""

    def __init__(self, directory, config=None):
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self.config = config

    def exists(self):
        return self.path.is_file()

    def save(self, model, state, arrays):
        """Write ``arrays`` (name -> host array) and the JSON-able ``model``
        and ``state`` dicts, atomically."""
        self.directory.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "version": VERSION, "model": model, "state": state,
                "config": self.config}
        with atomic_write(self.path) as handle:
            numpy.savez(handle, metadata=numpy.array(json.dumps(meta)), **arrays)

    def load(self):
        """(metadata, arrays) of the checkpoint. Only the arrays its model
        can have are read, each after its header's shape and dtype are checked
        (see :mod:`nn_gpu.npz`), so a damaged or forged file costs no more
        memory than it holds and ends in one :class:`CheckpointError`."""
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: no checkpoint here; train with "
                                  f"--checkpoint-dir {self.directory} first")
        try:
            with zipfile.ZipFile(self.path) as archive:
                names = set(archive.namelist())
                meta = npz.read_metadata(archive, names)
                if meta.get("format") != FORMAT or meta.get("version") != VERSION:
                    raise CheckpointError(
                        f"{self.path}: not an nn_gpu checkpoint of version {VERSION}")
                if not all(isinstance(meta.get(key), dict) for key in ("model", "state")):
                    raise CheckpointError(f"{self.path}: checkpoint metadata incomplete")
                arrays = {}
                for name, shape in model_arrays(meta["model"]).items():
                    if f"{name}.npy" in names:
                        arrays[name] = npz.read_npy(archive, names, name, shape, "fiu")
                unknown = names - {f"{name}.npy" for name in arrays} - {"metadata.npy"}
                if unknown:
                    raise ValueError(f"unexpected member {npz.short(sorted(unknown)[0])}")
        except CheckpointError:
            raise
        except Exception as exc:  # noqa: BLE001 - zipfile/numpy raise many kinds on damaged bytes
            reason = npz.short(" ".join(str(exc).split()) or type(exc).__name__, 120)
            raise CheckpointError(f"{self.path}: damaged or not an nn_gpu checkpoint "
                                  f"({reason}); delete it or resume from a good copy") from None
        return meta, arrays


def model_arrays(model):
    """Name -> shape of every array a checkpoint of ``model`` (its metadata,
    checked here) may hold: a :class:`~nn_gpu.Network` or a ConvNetwork."""
    from .convnet.network import MODEL_FORMAT as CONV_FORMAT, conv_checkpoint_arrays

    if model.get("format") == CONV_FORMAT:
        return conv_checkpoint_arrays(model)
    return expected_arrays(check_metadata(model))


def expected_arrays(sizes):
    """Name -> shape of every array a checkpoint of a network ``sizes`` may hold."""
    shapes = {}
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        for prefix in ("", "velocity_", "best_"):
            shapes[f"{prefix}w{l}"] = (n_out, n_in)
            shapes[f"{prefix}b{l}"] = (n_out,)
    return shapes
