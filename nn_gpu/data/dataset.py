"""A data set whose arrays cannot change, so that what training prepares
from it is made once.

``Network.sgd`` checks its data and moves it to the device, and the CPU's
compiled epoch encodes MNIST's pixels as bytes: work that takes longer than
an epoch's arithmetic at small networks. Done for every call, it doubles the
cost of training one epoch at a time (evaluate, plot, train one more). A
:class:`Dataset` keeps those prepared forms with it: its arrays are
read-only, so nothing a user can do by accident makes them stale. Plain
``(X, labels)`` tuples keep working and are prepared again on every call,
which is always right for an array the user may have changed in place.
"""

import numpy


class Dataset(tuple):
    """``(X, labels)``, read-only, with the forms training made of it.

    It is a tuple: ``X, labels = data`` and ``data[0]`` work as for the
    pair it replaces. Arrays that are already read-only all the way to the
    memory's owner are shared; any other is copied first, so a later
    change to the caller's array does not reach it. (Calling
    ``setflags(write=True)`` on the owner defeats this on purpose; then
    build a new Dataset.)
    """

    def __new__(cls, X, labels):
        return super().__new__(cls, (_frozen(X), _frozen(labels)))

    @property
    def X(self):
        return self[0]

    @property
    def labels(self):
        return self[1]

    def prepared(self, key, make):
        """What ``make()`` returns, made the first time ``key`` is asked for
        and kept: ``key`` says what was made and for what (backend, dtype...)."""
        cache = self.__dict__.setdefault("_prepared", {})
        if key not in cache:
            cache[key] = make()
        return cache[key]


def prepared(data, key, make):
    """``data.prepared(key, make)`` for a :class:`Dataset`, else ``make()``:
    a tuple's arrays may change between calls, so nothing of it is kept."""
    return data.prepared(key, make) if isinstance(data, Dataset) else make()


def _frozen(array):
    """``array`` as a NumPy array no one can write to: itself if it already
    is one, read-only down to the owner of its memory, else a read-only copy."""
    array = numpy.asarray(array)
    if not _read_only_throughout(array):
        array = array.copy()
        array.setflags(write=False)
    return array


def _read_only_throughout(array):
    while isinstance(array, numpy.ndarray):
        if array.flags.writeable:
            return False
        if array.base is None:
            return True
        array = array.base
    return False  # memory owned by some other object (a buffer, an mmap)
