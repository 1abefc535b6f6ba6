"""The expanded MNIST training set of Nielsen's book (chapter 6).

``expand_mnist.py`` in the book turns the 50,000 training images into
250,000 by adding, for every image, four copies displaced by one pixel up,
down, left and right; the row or column that the shift vacates is filled with
0 (background) and the one pushed over the edge is lost. Only the training
split is expanded: validation and test data stay as they are.

Order of the rows
    For training image ``i``, rows ``5*i .. 5*i + 4`` of the result are, in
    this order: the original, shifted up, shifted down, shifted left, shifted
    right; labels are repeated five times to match. The book appends the
    original and then its four shifts in the same interleaved way (its own
    order of the four shifts is down, up, right, left) and finally shuffles
    the whole list with :func:`random.shuffle`. We keep a deterministic order
    instead: stochastic gradient descent shuffles the training set every
    epoch anyway, so the order of the rows on disk does not matter.

The expansion is vectorised (a handful of slice assignments over the whole
``(n, 28, 28)`` array, no loop per image) and works on the uint8 pixels, so it
takes a fraction of a second for 50,000 images. It can also be cached on disk,
see :func:`expanded_training_set`.

Cache file format (``mnist-expanded-v1.npz``, written with :func:`numpy.savez`,
uncompressed, through :func:`nn_gpu.io.fileio.atomic_write`; pickles never
allowed on load):

``format_version``
    int64 scalar, :data:`FORMAT_VERSION`.
``source_sha256``
    str scalar: SHA-256 hex digest of the source training set, see
    :func:`source_digest`.
``images``
    uint8 ``(5n, 784)``: expanded pixels ``round(X * 255)`` (4x smaller than
    float32; exact, since MNIST pixels are bytes divided by 255).
``labels``
    int64 ``(5n,)``.

A cache whose version or digest does not match the training set passed in, or
which cannot be read back in full (truncated, corrupt, not an npz, wrong
shapes, labels or original images that are not the training set's), is
treated as absent: the set is recomputed and the file rewritten. A cache
path that is not a regular file (a FIFO, a device) is neither read nor
replaced.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import InvalidArgumentError
from ..io import npz
from ..io.fileio import atomic_write, open_input
from .dataset import Dataset
from .mnist import COLS, PIXELS, ROWS

FORMAT_VERSION = 1
CACHE_NAME = f"mnist-expanded-v{FORMAT_VERSION}.npz"

#: (dy, dx) of each copy of an image in the expanded set, in row order:
#: original, up, down, left, right. dy > 0 moves content down, dx > 0 right.
SHIFTS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
COPIES = len(SHIFTS)
_BLOCK = 4096  # images per block when quantising


def shift_images(X, dy: int, dx: int) -> np.ndarray:
    """Return a copy of images ``X`` (n, 784) with their content moved.

    The content moves ``dy`` pixels down (negative: up) and ``dx`` pixels
    right (negative: left). Pixels pushed past the border are dropped and the
    vacated rows/columns are 0. The result has the dtype and shape of ``X``;
    a single image of shape (784,) is accepted too.
    """
    X = np.asarray(X)
    if X.shape[-1:] != (PIXELS,):
        raise InvalidArgumentError(f"images must have {PIXELS} pixels in their last "
                                   f"axis, got shape {X.shape}")
    dy, dx = int(dy), int(dx)
    images = X.reshape(-1, ROWS, COLS)
    out = np.zeros_like(images)
    if abs(dy) < ROWS and abs(dx) < COLS:
        # destination slice gets the source slice; the rest stays 0
        dst_r = slice(max(dy, 0), ROWS + min(dy, 0))
        src_r = slice(max(-dy, 0), ROWS + min(-dy, 0))
        dst_c = slice(max(dx, 0), COLS + min(dx, 0))
        src_c = slice(max(-dx, 0), COLS + min(-dx, 0))
        out[:, dst_r, dst_c] = images[:, src_r, src_c]
    return out.reshape(X.shape)


def _validate(training):
    """Return the training set as (uint8 pixels (n, 784), int64 labels (n,))."""
    try:
        X, labels = training
    except (TypeError, ValueError):
        raise InvalidArgumentError("training must be an (X, labels) pair") from None
    X = np.asarray(X)
    labels = np.asarray(labels)
    if X.ndim != 2 or X.shape[1] != PIXELS:
        raise InvalidArgumentError(f"training X must have shape (n, {PIXELS}), got {X.shape}")
    if labels.shape != (len(X),):
        raise InvalidArgumentError(f"training labels must have shape ({len(X)},) to match X, "
                                   f"got {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise InvalidArgumentError(f"training labels must be integers, got {labels.dtype}")
    # Back to the bytes load_mnist read (its u8 / 255 maps back exactly), in
    # blocks so that the float temporaries stay small.
    pixels = np.empty(X.shape, dtype=np.uint8)
    for start in range(0, len(X), _BLOCK):
        block = X[start:start + _BLOCK]
        lo, hi = block.min(), block.max()
        if not (lo >= 0 and hi <= 1):  # also false for NaN
            raise InvalidArgumentError(f"training X must hold pixels in [0, 1], "
                                       f"found values in [{lo}, {hi}]")
        scaled = block.astype(np.float32) * np.float32(255)
        np.rint(scaled, out=scaled)
        pixels[start:start + _BLOCK] = scaled
    return pixels, labels.astype(np.int64)


def source_digest(pixels: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 hex digest identifying a training set (uint8 pixels, int64 labels).

    Covers the format version and shape as well, so a cache made by another
    format or from another training set never matches.
    """
    h = hashlib.sha256()
    h.update(f"nn_gpu expanded mnist v{FORMAT_VERSION} {pixels.shape}\0".encode())
    h.update(np.ascontiguousarray(pixels, dtype=np.uint8).data)
    h.update(np.ascontiguousarray(labels, dtype="<i8").data)
    return h.hexdigest()


def _expand(pixels: np.ndarray, labels: np.ndarray):
    """Interleave each image with its four shifts: (5n, 784) uint8, (5n,) int64."""
    n = len(pixels)
    out = np.empty((n, COPIES, PIXELS), dtype=pixels.dtype)
    for k, (dy, dx) in enumerate(SHIFTS):  # five whole-array operations
        out[:, k] = shift_images(pixels, dy, dx)
    return out.reshape(n * COPIES, PIXELS), np.repeat(labels, COPIES)


def _load_cache(path: Path, digest: str, pixels: np.ndarray, labels: np.ndarray):
    """Return (uint8 images, int64 labels) from a matching cache, else None.

    Each member is read only after its header's shape and dtype are checked
    (a forged header allocates nothing), and only from a regular file (a
    FIFO in its place does not hang). The labels and the unshifted rows must
    be those of ``pixels``/``labels``: a cache damaged where its checksums
    cannot tell is rebuilt, never trained on."""
    n_rows = COPIES * len(pixels)
    try:
        with open_input(path, what="cache") as handle, zipfile.ZipFile(handle) as archive:
            names = set(archive.namelist())
            # cheap checks first: each member is read only when asked
            if npz.read_npy(archive, names, "format_version", (), "i")[()] != FORMAT_VERSION:
                return None
            if str(npz.read_npy(archive, names, "source_sha256", (), "U", 1024)[()]) != digest:
                return None
            images = npz.read_npy(archive, names, "images", (n_rows, PIXELS), "u")
            cached_labels = npz.read_npy(archive, names, "labels", (n_rows,), "i")
    except Exception:  # missing, truncated, corrupt, not an npz: recompute
        return None
    if (images.dtype != np.uint8 or cached_labels.dtype != np.int64
            or not np.array_equal(cached_labels, np.repeat(labels, COPIES))
            or not np.array_equal(images[::COPIES], pixels)):
        return None
    return images, cached_labels


def _write_cache(path: Path, digest: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Write the cache atomically; skip silently where that is impossible."""
    try:
        with atomic_write(path) as handle:
            np.savez(handle, format_version=np.int64(FORMAT_VERSION),
                     source_sha256=np.array(digest), images=images, labels=labels)
    except OSError:
        pass  # read-only or missing directory, disk full: the cache is optional


def expanded_training_set(training, cache_dir: str | os.PathLike | None = None):
    """Return Nielsen's expanded training set as ``(X, labels)``, a read-only
    :class:`~nn_gpu.data.dataset.Dataset`.

    ``training`` is the ``(X, labels)`` training pair from
    :func:`nn_gpu.data.mnist.load_mnist` (float32 (n, 784) in [0, 1], int labels).
    The result has ``5 * n`` rows: for image ``i``, rows ``5*i .. 5*i + 4``
    are the original and its copies shifted one pixel up, down, left and
    right (see :data:`SHIFTS`). ``X`` is float32 in [0, 1], computed as
    ``uint8 / float32(255)`` exactly like ``load_mnist``, so the original rows
    are bit-identical to the input for MNIST data (other inputs are rounded to
    the nearest 1/255). Labels are int64, each repeated five times.

    With ``cache_dir``, the result is kept in ``cache_dir/mnist-expanded-v1.npz``
    (format in the module docstring) and read from there on later calls if it
    was made from the same training set; otherwise it is recomputed and the
    file rewritten. The directory is not created, and a cache that cannot be
    written (read-only directory, disk full) is skipped without an error.
    """
    pixels, labels = _validate(training)
    path = digest = None
    cached = None
    if cache_dir is not None:
        path = Path(cache_dir).expanduser() / CACHE_NAME
        digest = source_digest(pixels, labels)
        cached = _load_cache(path, digest, pixels, labels)
    if cached is not None:
        images, out_labels = cached
    else:
        images, out_labels = _expand(pixels, labels)
        if path is not None:
            _write_cache(path, digest, images, out_labels)
    x = images.astype(np.float32)
    x /= np.float32(255)  # as load_mnist: correctly rounded pixel/255
    for array in (x, out_labels):  # owned here: read-only, the Dataset shares them
        array.setflags(write=False)
    return Dataset(x, out_labels)


def default_cache_dir():
    """Where the expanded training set is cached: $XDG_CACHE_HOME/nn_gpu, else
    ~/.cache/nn_gpu (created if needed; None if it cannot be), never the data dir."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    path = Path(base).expanduser() / "nn_gpu"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # the cache is optional: expand in memory
    return path


def training_subset(training, expand, train_size=None):
    """The first ``train_size`` training examples (all if None), expanded
    when ``expand``: each image then 4 copies shifted by a pixel.

    Rows 5i..5i+4 of the expanded set come from image i, so its first 5n rows
    are the expansion of the first n images: one cache file (of all 50,000)
    serves every ``train_size``."""
    if expand:
        training = expanded_training_set(training, cache_dir=default_cache_dir())
        if train_size is not None:
            return Dataset(*(array[:train_size * COPIES] for array in training))
        return training
    if train_size is not None:
        return Dataset(training[0][:train_size], training[1][:train_size])
    return training
