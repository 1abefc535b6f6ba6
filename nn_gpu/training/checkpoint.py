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

from ..errors import CheckpointError, MemoryBudgetError
from ..io import npz
from ..io.fileio import atomic_write, check_output, open_input

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

    def check_writable(self):
        """Raise :class:`CheckpointError` now, before any training, if checkpoints
        can never be written here (the directory is created if missing)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            check_output(self.path)
        except FileExistsError:
            raise CheckpointError(f"{self.directory}: is a file, not a directory; give a "
                                  "directory for checkpoints (it is created if missing)") \
                from None
        except OSError as exc:
            raise CheckpointError(f"{self.directory}: checkpoints cannot be written here "
                                  f"({' '.join(str(exc).split())})") from None

    def save(self, model, state, arrays):
        """Write ``arrays`` (name -> host array) and the JSON-able ``model``
        and ``state`` dicts, atomically."""
        self.directory.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "version": VERSION, "model": model, "state": state,
                "config": self.config}
        with atomic_write(self.path) as handle:
            numpy.savez(handle, metadata=numpy.array(json.dumps(meta)), **arrays)

    def read_metadata(self):
        """The checkpoint's metadata alone (format, model, state, config),
        checked as far as it can be without knowing the model."""
        return self._read(None)[0]

    def load(self, model_arrays):
        """(metadata, arrays) of the checkpoint. ``model_arrays(model)`` names
        the arrays a checkpoint of the model its metadata describes may hold,
        with their shapes (the model class answers: ``Network.checkpoint_arrays``);
        only those are read, each after its header's shape and dtype are
        checked (see :mod:`nn_gpu.io.npz`), so a damaged or forged file costs no
        more memory than it holds and ends in one :class:`CheckpointError`."""
        meta, arrays = self._read(model_arrays)
        bad = next((name for name, array in arrays.items()
                    if not numpy.isfinite(array).all()), None)
        if bad is not None:  # training never saves these: it stops when they appear
            raise CheckpointError(f"{self.path}: checkpoint is damaged: array {bad} holds NaN "
                                  "or infinite values; delete it or resume from a good copy")
        return meta, arrays

    def _read(self, model_arrays):
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: no checkpoint here; train with "
                                  f"--checkpoint-dir {self.directory} first")
        try:
            with open_input(self.path, what="checkpoint") as handle, \
                    zipfile.ZipFile(handle) as archive:
                names = set(archive.namelist())
                meta = npz.read_metadata(archive, names)
                if meta.get("format") != FORMAT or meta.get("version") != VERSION:
                    raise CheckpointError(
                        f"{self.path}: not an nn_gpu checkpoint of version {VERSION}")
                if not all(isinstance(meta.get(key), dict) for key in ("model", "state")):
                    raise CheckpointError(f"{self.path}: checkpoint metadata incomplete")
                arrays = {}
                if model_arrays is None:
                    return meta, arrays
                for name, shape in model_arrays(meta["model"]).items():
                    if f"{name}.npy" in names:
                        arrays[name] = npz.read_npy(archive, names, name, shape, "fiu")
                unknown = names - {f"{name}.npy" for name in arrays} - {"metadata.npy"}
                if unknown:
                    raise ValueError(f"unexpected member {npz.short(sorted(unknown)[0])}")
        except CheckpointError:
            raise
        except MemoryBudgetError as exc:
            raise CheckpointError(f"{self.path}: declares {exc}") from None
        except Exception as exc:  # noqa: BLE001 - zipfile/numpy raise many kinds on damaged bytes
            reason = npz.short(" ".join(str(exc).split()) or type(exc).__name__, 120)
            raise CheckpointError(f"{self.path}: damaged or not an nn_gpu checkpoint "
                                  f"({reason}); delete it or resume from a good copy") from None
        return meta, arrays
