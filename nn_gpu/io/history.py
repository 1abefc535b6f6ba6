"""The ``nn-gpu train --history`` document: written after every epoch, read
back by ``nn-gpu plot curves``, in this one module.

It is JSON: ``{"config": {...the run's options...}, "epochs": [{...}, ...]}``
with, after an early-stopped run, ``"kept_weights": {"epoch", "test_accuracy"}``.
Each epoch entry holds :data:`HISTORY_KEYS` where measured, then every other
``*_accuracy`` / ``*_cost`` (and a detector's ``*_precision`` / ``*_recall``)
of the epoch's record, then ``stopped``.
"""

import json
import math
from pathlib import Path

from ..errors import NNGpuError
from .fileio import read_input, write_json


class HistoryError(NNGpuError, ValueError):
    """A history file (``nn-gpu train --history``) is missing or malformed."""


#: The per-epoch keys of the history file, in this order, then every other
#: ``*_accuracy`` / ``*_cost`` the record holds, then ``stopped``.
HISTORY_KEYS = ("epoch", "validation_accuracy", "test_accuracy", "train_cost", "seconds", "eta")
#: A history file larger than this is not one `train --history` wrote; epochs
#: beyond MAX_EPOCH neither.
MAX_HISTORY_BYTES, MAX_EPOCH = 1 << 26, 10**7


def history_entry(record):
    """The history file's entry for one epoch's record from ``Network.sgd``."""
    keys = [key for key in HISTORY_KEYS if key in record]
    keys += sorted(key for key in record if key not in keys
                   and key.endswith(("_accuracy", "_cost", "_precision", "_recall")))
    keys += ["stopped"] if "stopped" in record else []
    return {key: record[key] for key in keys}


def write_history(path, document):
    """Replace the history file atomically: a crash or Ctrl-C keeps the last good copy."""
    write_json(path, document)


def load_history(path):
    """Read and check a history file written by ``nn-gpu train --history``."""
    path = Path(path)
    try:
        text = read_input(path, MAX_HISTORY_BYTES, "history file").decode("utf-8")
    except FileNotFoundError:
        raise HistoryError(f"{path}: history file not found") from None
    except UnicodeDecodeError:
        raise HistoryError(f"{path}: not a JSON history file (not UTF-8 text)") from None
    except OSError as exc:  # a directory, a FIFO, a device, too large, no permission
        raise HistoryError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        history = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HistoryError(f"{path}: not a JSON history file ({exc.msg} at line {exc.lineno} "
                           f"column {exc.colno})") from None
    except RecursionError:
        raise HistoryError(f"{path}: not a history file: its JSON is nested too deeply") \
            from None
    return check_history(history, str(path))


def check_history(history, where="history"):
    """``history`` if it is a ``{"config": {...}, "epochs": [...]}`` document
    with at least one epoch; else a one-line :class:`HistoryError`."""
    origin = "(write one with `nn-gpu train --history FILE`)"
    if not isinstance(history, dict) or "epochs" not in history:
        raise HistoryError(f"{where}: not a training history: expected a JSON object with "
                           f"\"epochs\" {origin}")
    epochs = history["epochs"]
    if not isinstance(epochs, list):
        raise HistoryError(f"{where}: \"epochs\" must be a list, got {type(epochs).__name__}")
    if not epochs:
        raise HistoryError(f"{where}: no epochs recorded yet (the run wrote its history "
                           "before finishing its first epoch)")
    if not isinstance(history.get("config", {}), dict):
        raise HistoryError(f"{where}: \"config\" must be a JSON object")
    for i, entry in enumerate(epochs, 1):
        if not isinstance(entry, dict):
            raise HistoryError(f"{where}: epoch entry {i} is not a JSON object")
        epoch = entry.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= MAX_EPOCH:
            raise HistoryError(f"{where}: epoch entry {i}: \"epoch\" must be a whole number "
                               f"from 0 to {MAX_EPOCH:,}, got {_shown(epoch)} {origin}")
        for key, value in entry.items():
            if value is None or not key.endswith(("_accuracy", "_cost")):
                continue  # None: not measured, left out of the plot
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise HistoryError(f"{where}: epoch entry {i}: {key} is not a number "
                                   f"({_shown(value)})")
            if key.endswith("_accuracy") and not 0 <= value <= 1:
                raise HistoryError(f"{where}: epoch entry {i}: {key} must be a fraction "
                                   f"from 0 to 1, got {_shown(value)}")
            if key.endswith("_cost") and not math.isfinite(value):
                raise HistoryError(f"{where}: epoch entry {i}: {key} must be a finite "
                                   f"number, got {_shown(value)}")
    return history


def _shown(value):
    """A JSON value, cut short for a one-line message."""
    text = "missing" if value is None else json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
