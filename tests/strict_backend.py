"""A stand-in "device" backend for CPU-only CI.

Its arrays hold NumPy data but refuse to be mixed with host NumPy the way
CuPy arrays do: ``numpy.asarray(a)`` and ``float(numpy.exp(a))``-style host
calls raise ``TypeError``, as does arithmetic between a device array and a host
``numpy.ndarray``. Running the training code through it makes the classic
"NumPy call on a GPU array" bug fail on a machine with no GPU. The only doors
to the host are the backend's explicit ``asarray`` (host -> device) and
``to_host`` (device -> host), like ``cupy.asarray`` and ``cupy.asnumpy``.
"""

import operator
import types

import numpy

from nn_gpu.backends.base import Backend

IMPLICIT_CONVERSION = ("Implicit conversion to a NumPy array is not allowed "
                       "(strict stand-in for a device array): use backend.to_host()")


def _host_error(value):
    return TypeError(f"Unsupported type {type(value)}: a host numpy.ndarray was mixed with a "
                     "device array (strict stand-in); move it with backend.asarray() first")


class DeviceArray:
    """NumPy data behind a CuPy-like wall."""

    __slots__ = ("_data",)
    __array_ufunc__ = None  # numpy ufuncs and ndarray operators refuse us

    def __init__(self, data):
        self._data = data

    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT_CONVERSION)

    def __array_function__(self, func, types, args, kwargs):
        return NotImplemented  # numpy.dot(device_array, ...) -> TypeError

    def __repr__(self):
        return f"DeviceArray({self._data!r})"

    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    T = property(lambda self: DeviceArray(self._data.T))

    def __len__(self):
        return len(self._data)

    # Scalars read back explicitly, as CuPy allows (each one a device sync).
    def __float__(self):
        return float(self._data)

    def __int__(self):
        return int(self._data)

    def __bool__(self):
        return bool(self._data)

    def __getitem__(self, key):
        return _wrap(self._data[_unwrap_key(key)])

    def __setitem__(self, key, value):
        self._data[_unwrap_key(key)] = _operand(value)

    def __getattr__(self, name):  # methods: sum, argmax, astype, item, ...
        if name.startswith("__"):  # no __array_interface__ etc.: numpy must not see the data
            raise AttributeError(name)
        attribute = getattr(self._data, name)
        if not callable(attribute):
            return attribute

        def method(*args, **kwargs):
            return _wrap(attribute(*map(_operand, args),
                                   **{k: _operand(v) for k, v in kwargs.items()}))
        return method


def _operand(value):
    """Unwrap a device array; refuse host arrays (CuPy raises TypeError)."""
    if isinstance(value, DeviceArray):
        return value._data
    if isinstance(value, numpy.ndarray):
        raise _host_error(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_operand(v) for v in value)
    return value


def _unwrap_key(key):
    if isinstance(key, tuple):
        return tuple(_operand(k) for k in key)
    return _operand(key)


def _wrap(value):
    if isinstance(value, numpy.ndarray):
        return DeviceArray(value)
    if isinstance(value, numpy.generic):  # device reductions give 0-d arrays, not scalars
        return DeviceArray(numpy.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    return value


def _binary(op):
    def forward(self, other):
        return _wrap(op(self._data, _operand(other)))

    def reverse(self, other):
        return _wrap(op(_operand(other), self._data))
    return forward, reverse


def _inplace(op):
    def method(self, other):
        op(self._data, _operand(other))
        return self
    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul",
              "and", "or", "xor"):
    _op = getattr(operator, f"{_name}_" if _name in ("and", "or") else _name)
    _fwd, _rev = _binary(_op)
    setattr(DeviceArray, f"__{_name}__", _fwd)
    setattr(DeviceArray, f"__r{_name}__", _rev)
    setattr(DeviceArray, f"__i{_name}__", _inplace(getattr(operator, f"i{_name}")))
for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    setattr(DeviceArray, f"__{_name}__", _binary(getattr(operator, _name))[0])
for _name in ("neg", "pos", "abs", "invert"):
    setattr(DeviceArray, f"__{_name}__",
            (lambda op: lambda self: _wrap(op(self._data)))(getattr(operator, _name)))


def _as_strided(x, shape=None, strides=None):
    """``cupy.lib.stride_tricks.as_strided``: a view of a device array
    (writes through it reach the array)."""
    return _wrap(numpy.lib.stride_tricks.as_strided(_operand(x), shape=shape, strides=strides))


class StrictNamespace:
    """``numpy`` as seen from the device: functions take and return DeviceArrays."""

    TRANSFERS = ("asarray", "array")  # the explicit host -> device copies
    lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(as_strided=_as_strided))

    def __getattr__(self, name):
        attribute = getattr(numpy, name)
        if isinstance(attribute, type) or not callable(attribute):
            return attribute  # dtypes (xp.int64), constants
        transfer = name in self.TRANSFERS

        def function(*args, **kwargs):
            if transfer:
                args = tuple(a._data if isinstance(a, DeviceArray) else a for a in args)
            else:
                args = tuple(_operand(a) for a in args)
            kwargs = {k: _operand(v) for k, v in kwargs.items()}
            result = attribute(*args, **kwargs)
            if transfer and isinstance(result, numpy.ndarray):
                result = result.copy() if any(result is a for a in args) else result
            return _wrap(result)
        return function


class StrictBackend(Backend):
    """The generic backend on :class:`StrictNamespace`."""

    name = "strict"

    def __init__(self):
        super().__init__(StrictNamespace(), reason="test stand-in")

    def to_host(self, array):
        return array._data.copy()
