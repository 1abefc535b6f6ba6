"""Load MNIST from the four gzipped IDX files published by LeCun et al.

The loader is deliberately strict: a truncated download or a wrong file
otherwise shows up much later as a shape error deep inside training, so every
problem is reported here as a one-line :class:`DataError` that names the file,
says what is wrong with it and what to do about it.
"""

from __future__ import annotations

import math
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError, InvalidArgumentError
from ..io.fileio import NotRegularFileError, read_input
from ..options import digit as check_digit
from .dataset import Dataset

DATA_ENV_VAR = "NN_GPU_DATA"

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
# The one home of MNIST's shapes: 28x28 images (784 network inputs), 10 digits.
ROWS = COLS = 28
PIXELS = ROWS * COLS
NUM_CLASSES = 10
# Nielsen's book holds out the last 10,000 training images for validation,
# leaving 50,000 to train on.
VALIDATION_SIZE = 10_000
TRAINING_SIZE = 50_000

_GZIP_MAGIC = b"\x1f\x8b"
# Deflate cannot expand data more than 1032-fold: a header promising more
# than that times the file's size is refused before anything is decompressed.
_MAX_DEFLATE_RATIO = 1032
#: The largest IDX file read, compressed (MNIST's largest is 9.9 MB) and
#: decompressed (47 MB): a path to /dev/zero or to a sparse 8 GB file is
#: refused before it is read, whatever its header promises.
MAX_FILE_BYTES = 1 << 28
MAX_PAYLOAD_BYTES = 1 << 30
_REFETCH = "delete it and run `nn-gpu download` again"


def check_sizes(sizes, what, detector=False):
    """Layer sizes that fit MNIST: 784 inputs and 10 outputs, or 1 for a
    ``detector`` of one digit (:func:`one_vs_rest`); say so otherwise."""
    outputs = 1 if detector else NUM_CLASSES
    if len(sizes) >= 2 and sizes[0] == PIXELS and sizes[-1] == outputs:
        return sizes
    last = ("1 (one output neuron: is it the digit or not)" if detector
            else f"{NUM_CLASSES} (digits)")
    raise InvalidArgumentError(
        f"{what} {list(sizes)} do not fit MNIST: the first layer must be {PIXELS} "
        f"({ROWS}x{COLS} pixels) and the last {last}")


def resolve_data_dir(path: str | os.PathLike | None = None) -> Path:
    """Return the MNIST directory: ``path``, else $NN_GPU_DATA, else a per-user dir.

    The per-user default follows the XDG convention
    (``$XDG_DATA_HOME/nn_gpu/mnist``, normally ``~/.local/share/nn_gpu/mnist``)
    so that ``nn-gpu download`` and training agree without any configuration.
    Empty environment variables count as unset.
    """
    if path is None or str(path) == "":
        path = os.environ.get(DATA_ENV_VAR) or None
    return per_user_data_dir() if path is None else Path(path).expanduser()


def per_user_data_dir() -> Path:
    """``$XDG_DATA_HOME/nn_gpu/mnist`` (normally ``~/.local/share/nn_gpu/mnist``)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return (Path(base) / "nn_gpu" / "mnist").expanduser()


def _where(directory: Path) -> str:
    """What to do when MNIST is not in ``directory``."""
    return (f"put the four files {', '.join(FILES.values())} in {directory}, fetch them with "
            f"`nn-gpu download --data {directory}`, or point --data or {DATA_ENV_VAR} at "
            "a directory that has them")


def _fail(path: Path, what: str, fix: str = _REFETCH) -> DataError:
    return DataError(f"{path}: {what}; {fix}")


def _gunzip(raw: bytes, limit: int) -> bytes:
    """The first ``limit`` bytes the gzip stream ``raw`` (one member or more)
    decompresses to, or all of them if there are fewer.

    Memory grows only with the bytes produced, so a small file that expands
    to gigabytes (a "gzip bomb") costs no more than ``limit``. Raises
    ``zlib.error`` for corrupt data (a bad CRC-32 or length included) and
    ``EOFError`` for a stream cut short.
    """
    parts, size = [], 0
    while size < limit:
        member = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer
        part = member.decompress(raw, limit - size)
        parts.append(part)
        size += len(part)
        if not member.eof:
            if size < limit:  # the input ran out inside the member
                raise EOFError("compressed file ended before the end-of-stream marker")
            break
        raw = member.unused_data  # a further member, or trailing garbage (zlib.error)
        if not raw:
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _read_idx(path: str | os.PathLike, magic: int, ndims: int) -> tuple[list[int], np.ndarray]:
    """Decompress one IDX file and return its dimensions and flat uint8 payload.

    The header is decompressed and checked first; the payload is then
    decompressed in one piece (MNIST is ~55 MB uncompressed), never beyond
    the size the header declares (plus one byte, to tell a longer file), so
    neither a header promising 2**31 images nor a small file expanding to
    gigabytes allocates more than the data really holds. numpy views the
    bytes without copying.
    """
    path = Path(path)
    try:
        raw = read_input(path, MAX_FILE_BYTES, "MNIST file")
    except FileNotFoundError:
        raise _fail(path, "file not found", _where(path.parent)) from None
    except NotRegularFileError as exc:
        raise _fail(path, exc.strerror, "replace it with the MNIST file (`nn-gpu download "
                                        f"--data {path.parent}` fetches it)") from None
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc})",
                    "check the path and its permissions") from None
    if raw[:2] != _GZIP_MAGIC:
        raise _fail(path, "not a gzip file (MNIST files are gzipped IDX)", _REFETCH)

    header_size = 4 * (1 + ndims)
    try:
        header = _gunzip(raw, header_size)
        if len(header) >= 4:
            found = int.from_bytes(header[:4], "big")
            if found != magic:
                raise _fail(path, f"wrong IDX magic number: expected {magic}, found {found}",
                            "check that this is the right MNIST file, or " + _REFETCH)
        if len(header) < header_size:
            raise _fail(path, f"IDX header too short: {len(header)} bytes, "
                              f"expected {header_size}")
        dims = [int.from_bytes(header[i:i + 4], "big") for i in range(4, header_size, 4)]
        expected = math.prod(dims)
        shape = " x ".join(map(str, dims))
        if expected > _MAX_DEFLATE_RATIO * len(raw):
            raise _fail(path, f"data is shorter than the header says: {len(raw)} compressed "
                              f"bytes cannot hold the {expected} bytes of {shape}")
        if expected > MAX_PAYLOAD_BYTES:
            raise _fail(path, f"its header declares {shape}: {expected} bytes, more than "
                              f"any MNIST file holds (at most {MAX_PAYLOAD_BYTES})")
        data = _gunzip(raw, header_size + expected + 1)
    except (EOFError, zlib.error) as exc:
        reason = str(exc) or type(exc).__name__
        raise _fail(path, f"truncated or corrupt gzip stream ({reason})") from None

    actual = len(data) - header_size
    if actual > expected:
        raise _fail(path, f"data is longer than the header says: more than the "
                          f"{expected} bytes of {shape}")
    if actual < expected:
        raise _fail(path, f"data is shorter than the header says: "
                          f"{actual} bytes, expected {expected} for {shape}")
    return dims, np.frombuffer(data, dtype=np.uint8, offset=header_size)


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Read a gzipped IDX3 image file as a uint8 array of shape (n, 784).

    The array is a read-only view of the decompressed bytes (no copy).
    """
    (n, rows, cols), payload = _read_idx(path, IMAGES_MAGIC, 3)
    if (rows, cols) != (ROWS, COLS):
        raise _fail(Path(path), f"images are {rows}x{cols}, expected {ROWS}x{COLS}",
                    "this is not an MNIST image file; " + _REFETCH)
    return payload.reshape(n, rows * cols)


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """Read a gzipped IDX1 label file as a uint8 array of shape (n,).

    The array is a read-only view of the decompressed bytes (no copy).
    """
    _, labels = _read_idx(path, LABELS_MAGIC, 1)
    if labels.size and labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise _fail(Path(path), f"label {labels[bad]} at index {bad} is not a digit 0-9")
    return labels


def _load_pair(directory: Path, images_key: str, labels_key: str):
    """Load matching image and label files as (float32 X in [0, 1], int64 labels)."""
    images_path = directory / FILES[images_key]
    labels_path = directory / FILES[labels_key]
    images = read_idx_images(images_path)
    if not len(images):
        raise _fail(images_path, "holds no images (its header says 0)")
    labels = read_idx_labels(labels_path)
    if len(images) != len(labels):
        raise _fail(labels_path, f"has {len(labels)} labels but {images_path} has "
                                 f"{len(images)} images", "the two files must come from "
                                 "the same MNIST release; delete both and run "
                                 "`nn-gpu download` again")
    x = images.astype(np.float32)
    x /= np.float32(255)  # division, not * (1/255): correctly rounded pixel/255
    labels = labels.astype(np.int64)
    for array in (x, labels):  # owned here: read-only, a Dataset shares them
        array.setflags(write=False)
    return x, labels


def load_mnist(path: str | os.PathLike | None = None):
    """Load MNIST as ``(training, validation, test)``, each ``(X, labels)``:
    a read-only :class:`~nn_gpu.data.dataset.Dataset`, so that training
    prepares each once however many ``sgd`` calls it serves.

    ``X`` is float32 of shape (n, 784) with pixels scaled to [0, 1];
    ``labels`` is int64 of shape (n,). As in Nielsen's book, the 60,000
    training images are split into the first 50,000 for training and the last
    10,000 for validation; the 10,000 t10k images are the test set.
    ``path`` is resolved with :func:`resolve_data_dir`.
    """
    directory = resolve_data_dir(path)
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "MNIST directory not found"
        raise _fail(directory, what, _where(directory))

    x_train, y_train = _load_pair(directory, "train_images", "train_labels")
    test = _load_pair(directory, "test_images", "test_labels")
    n_train = len(y_train) - VALIDATION_SIZE
    if n_train <= 0:
        raise _fail(directory / FILES["train_labels"],
                    f"only {len(y_train)} training examples, need more than "
                    f"{VALIDATION_SIZE} to hold out a validation set")
    training = Dataset(x_train[:n_train], y_train[:n_train])
    validation = Dataset(x_train[n_train:], y_train[n_train:])
    return training, validation, Dataset(*test)


def one_vs_rest(data, digit):
    """``(X, labels)`` relabelled for a detector of one digit: 1 where the
    label is ``digit``, 0 for every other digit (the seed notes' "is it a
    nine?", for a network with one output neuron). ``digit`` must be an int
    0-9: any other value would give all-zero labels."""
    digit = check_digit(digit, "one_vs_rest: digit")
    X, labels = data
    detector_labels = (np.asarray(labels) == digit).astype(np.int64)
    return Dataset(X, detector_labels) if isinstance(data, Dataset) else (X, detector_labels)
