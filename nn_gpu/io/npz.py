"""Reading .npz archives written by nn_gpu (models, checkpoints) without
trusting them.

``numpy.load`` reads every member and allocates whatever a member's .npy
header promises before anything can be checked, and a hostile file (the
fuzzing tests make them) can hold a forged header asking for terabytes,
members that are not .npy data, or metadata JSON nested deep enough to blow
the stack. Here the metadata is read with a
size bound, and each array only after its header's shape and dtype are
checked, in chunks that grow with the bytes really present.
"""

import json
import math
import reprlib

import numpy
from numpy.lib import format as npy_format

#: The JSON metadata of a real model or checkpoint is far below this.
MAX_METADATA_BYTES = 1 << 24
_READ_CHUNK = 1 << 20


def short(value, width=60):
    """A repr short enough for a one-line message."""
    text = reprlib.repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def read_npy(archive, names, name, shape, kinds, max_bytes=None):
    """The array ``name`` of the .npz ``archive`` (a ZipFile whose member
    names are ``names``), read only after its .npy header says it has exactly
    ``shape`` and a dtype of one of the ``kinds``: however the header lies,
    nothing larger than the member really holds is allocated."""
    if f"{name}.npy" not in names:
        raise KeyError(name)
    with archive.open(f"{name}.npy") as handle:
        version = npy_format.read_magic(handle)  # ValueError if not .npy
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"array {name}: unsupported .npy format version {version}")
        try:
            read_header = (npy_format.read_array_header_1_0 if version == (1, 0)
                           else npy_format.read_array_header_2_0)
            stored_shape, fortran_order, dtype = read_header(handle)
        except Exception:  # noqa: BLE001 - numpy parses it with ast/tokenize
            raise ValueError(f"array {name}: malformed .npy header") from None
        if stored_shape != shape:
            raise ValueError(f"array {name} has shape {short(stored_shape)}, expected {shape}")
        if dtype.kind not in kinds or dtype.hasobject:
            raise ValueError(f"array {name} has dtype {dtype}")
        nbytes = math.prod(shape) * dtype.itemsize
        if max_bytes is not None and nbytes > max_bytes:
            raise ValueError(f"array {name} is too large ({nbytes} bytes)")
        data = bytearray()
        while len(data) < nbytes:  # memory grows only with what is really there
            chunk = handle.read(min(nbytes - len(data), _READ_CHUNK))
            if not chunk:
                raise ValueError(f"array {name} is truncated: {len(data)} of {nbytes} bytes")
            data += chunk
    return numpy.frombuffer(data, dtype).reshape(shape, order="F" if fortran_order else "C")


def read_metadata(archive, names):
    """The ``metadata`` member (a JSON string) of an archive, as a dict."""
    text = read_npy(archive, names, "metadata", (), "U", MAX_METADATA_BYTES)[()]
    try:
        meta = json.loads(str(text))
    except RecursionError:
        raise ValueError("its metadata JSON is nested too deeply") from None
    if not isinstance(meta, dict):
        raise ValueError("its metadata is not a JSON object")
    return meta
