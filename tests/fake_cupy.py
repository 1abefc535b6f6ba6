"""A NumPy-backed stand-in for the ``cupy`` module, so that every override of
:class:`~nn_gpu.backends.cuda.cupy_backend.CupyBackend` runs on a CPU and is held
to its NumPy twin (the base :class:`Backend` method) on every CI run.

Arrays are plain NumPy arrays (the strict wall between host and device is
:mod:`strict_backend`'s job). What is emulated is what CupyBackend relies on:

* ``ElementwiseKernel``: the kernel's C body is parsed and evaluated the way
  CuPy's generated CUDA code would compute it: a type placeholder ``T`` bound
  to the arrays' dtype (mismatched arrays or NumPy scalars raise TypeError,
  Python scalars are cast), C's arithmetic conversions (an ``int`` literal
  keeps a float's type, a ``double`` literal widens a ``float``), ``(T)x``
  casts, ``?:``, ``max``/``min`` with CUDA's fmax/fmin semantics (NaN is
  dropped), ``exp``/``tanh``, unsigned 64-bit wrap-around, and ``i``, the
  element's index. A call with the arguments in the wrong order computes
  something else, and the comparison with the twin fails;
* ``cublas.gemm`` with CuPy's signature and assertions;
* ``asnumpy``, ``cuda.get_current_stream().synchronize()``, the runtime's
  device count and properties, ``lib.stride_tricks.as_strided``.

Every other name is NumPy's. The functions looked up that way are recorded
in :data:`CALLS` with the keywords each call used, so that a test can hold
them to what CuPy has (CuPy's ufuncs take ``out``, ``dtype`` and
``casting``, not NumPy's ``where``, for one).

``install(monkeypatch)`` puts it in ``sys.modules`` as ``cupy``.
"""

import re
import sys
import types

import numpy

__version__ = "0.0-fake"


#: {(name, keyword names)} of the NumPy functions called as ``cupy.name``.
CALLS = set()


class _Recorded:
    """A NumPy function or ufunc standing in for CuPy's: calls go to CALLS."""

    def __init__(self, name, function):
        self._name, self._function = name, function

    def __call__(self, *args, **kwargs):
        CALLS.add((self._name, tuple(sorted(kwargs))))
        return self._function(*args, **kwargs)

    def __getattr__(self, attribute):
        return getattr(self._function, attribute)


def __getattr__(name):  # everything else: numpy's function of that name
    attribute = getattr(numpy, name)
    if callable(attribute) and not isinstance(attribute, type):
        return _Recorded(name, attribute)
    return attribute  # dtypes, finfo, constants


lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(
    as_strided=numpy.lib.stride_tricks.as_strided))


def asnumpy(array):
    return numpy.array(array, copy=True)


# ------------------------------------------------------------------ cuda
class _Stream:
    ptr = 0
    synchronized = 0

    def synchronize(self):
        _Stream.synchronized += 1


class _Runtime:
    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def getDeviceProperties(device):
        return {"name": b"Fake CUDA device (NumPy)"}


class _Device:
    id = 0


cuda = types.SimpleNamespace(get_current_stream=_Stream, runtime=_Runtime, Device=_Device)


# ---------------------------------------------------------------- cublas
def gemm(transa, transb, a, b, out=None, alpha=1.0, beta=0.0):
    """out = alpha * op(a) @ op(b) + beta * out, with cupy.cublas.gemm's checks."""
    assert a.ndim == b.ndim == 2
    assert a.dtype == b.dtype
    op_a = a.T if transa == "T" else a
    op_b = b.T if transb == "T" else b
    assert transa in "NT" and transb in "NT"
    assert op_a.shape[1] == op_b.shape[0]
    if out is None:
        out = numpy.zeros((op_a.shape[0], op_b.shape[1]), a.dtype)
        beta = 0.0
    assert out.ndim == 2 and out.shape == (op_a.shape[0], op_b.shape[1])
    assert out.dtype == a.dtype
    t = a.dtype.type
    product = numpy.matmul(op_a, op_b)
    out[...] = t(alpha) * product + t(beta) * out
    return out


cublas = types.ModuleType("cupy.cublas")
cublas.gemm = gemm


def install(monkeypatch):
    """Make ``import cupy`` (and ``cupy.cublas``) give this stand-in."""
    module = sys.modules[__name__]
    monkeypatch.setitem(sys.modules, "cupy", module)
    monkeypatch.setitem(sys.modules, "cupy.cublas", cublas)
    return module


# ----------------------------------------------- ElementwiseKernel: C subset
_TYPES = {"float": numpy.float32, "double": numpy.float64, "int": numpy.int32,
          "long long": numpy.int64, "unsigned int": numpy.uint32,
          "unsigned long long": numpy.uint64, "bool": numpy.bool_, "ptrdiff_t": numpy.int64,
          "size_t": numpy.uint64}
_PARAM_TYPES = {"float32": numpy.float32, "float64": numpy.float64, "int32": numpy.int32,
                "int64": numpy.int64, "uint32": numpy.uint32, "uint64": numpy.uint64,
                "bool": numpy.bool_}
_TOKEN = re.compile(r"\s*(?:(0[xX][0-9a-fA-F]+[uUlL]*|\d+\.\d*(?:[eE][-+]?\d+)?[fF]?"
                    r"|\d+[eE][-+]?\d+[fF]?|\d+[uUlL]*)|([A-Za-z_]\w*)"
                    r"|(\|\||&&|==|!=|<=|>=|<<|>>|[-+*/%<>!~&|^?:(),=]))")


def _tokens(text):
    position, out = 0, []
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise SyntaxError(f"cannot read {text[position:]!r}")
        number, name, op = match.groups()
        out.append(("num", number) if number else ("name", name) if name else ("op", op))
        position = match.end()
    return out


def _literal(text):
    lower = text.lower()
    if lower.startswith("0x") or lower.rstrip("ul").isdigit():
        digits = lower.rstrip("ul")
        value = int(digits, 16 if digits.startswith("0x") else 10)
        if "u" in lower[len(digits):]:
            return numpy.uint64(value) if "l" in lower[len(digits):] or value > 2**32 - 1 \
                else numpy.uint32(value)
        if "l" in lower[len(digits):] or value > 2**31 - 1:
            return numpy.int64(value)
        return numpy.int32(value)
    if lower.endswith("f"):
        return numpy.float32(float(lower[:-1]))
    return numpy.float64(float(lower))


def _c_type(x, y):
    """The type C's usual arithmetic conversions give x op y."""
    kinds = [numpy.asarray(v).dtype for v in (x, y)]
    floats = [d for d in kinds if d.kind == "f"]
    if floats:
        return max(floats, key=lambda d: d.itemsize).type
    promoted = [numpy.dtype(numpy.int32) if d.itemsize < 4 else d for d in kinds]
    rank = max(d.itemsize for d in promoted)
    top = [d for d in promoted if d.itemsize == rank]
    unsigned = any(d.kind == "u" for d in top)
    return {(4, False): numpy.int32, (4, True): numpy.uint32,
            (8, False): numpy.int64, (8, True): numpy.uint64}[(rank, unsigned)]


def _cast(value, t):
    return numpy.asarray(value).astype(t)


def _arith(op):
    def apply(x, y):
        t = _c_type(x, y)
        x, y = _cast(x, t), _cast(y, t)
        if op in ("/", "%") and numpy.dtype(t).kind in "iu":
            q = numpy.trunc(x.astype(numpy.float64) / y).astype(t) if numpy.dtype(t).kind == "i" \
                else x // y
            return q if op == "/" else x - q * y
        return {"+": numpy.add, "-": numpy.subtract, "*": numpy.multiply,
                "/": numpy.divide, "%": numpy.fmod, "&": numpy.bitwise_and,
                "|": numpy.bitwise_or, "^": numpy.bitwise_xor}[op](x, y)
    return apply


def _shift(op):
    def apply(x, y):
        x = numpy.asarray(x)
        t = numpy.int32 if x.dtype.itemsize < 4 else x.dtype.type
        x, y = x.astype(t), numpy.asarray(y).astype(t)
        return numpy.left_shift(x, y) if op == "<<" else numpy.right_shift(x, y)
    return apply


def _compare(op):
    ufunc = {"<": numpy.less, ">": numpy.greater, "<=": numpy.less_equal,
             ">=": numpy.greater_equal, "==": numpy.equal, "!=": numpy.not_equal}[op]

    def apply(x, y):
        t = _c_type(x, y)
        return ufunc(_cast(x, t), _cast(y, t))
    return apply


_BINARY = [("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", ">", "<=", ">="),
           ("<<", ">>"), ("+", "-"), ("*", "/", "%")]


def _math(ufunc):
    def apply(x):
        x = numpy.asarray(x)
        return ufunc(x if x.dtype.kind == "f" else x.astype(numpy.float64))
    return apply


def _extreme(floats, ints):
    def apply(x, y):
        t = _c_type(x, y)
        return (floats if numpy.dtype(t).kind == "f" else ints)(_cast(x, t), _cast(y, t))
    return apply


_FUNCTIONS = {"exp": _math(numpy.exp), "log": _math(numpy.log), "tanh": _math(numpy.tanh),
              "sqrt": _math(numpy.sqrt), "fabs": _math(numpy.abs), "abs": numpy.abs,
              # CUDA's max/min on floats are fmax/fmin: a NaN operand is dropped.
              "max": _extreme(numpy.fmax, numpy.maximum), "min": _extreme(numpy.fmin, numpy.minimum)}


class _Parser:
    """Recursive descent over one C expression; evaluates as it parses."""

    def __init__(self, tokens, env, placeholders):
        self.tokens, self.position = tokens, 0
        self.env, self.placeholders = env, placeholders

    def peek(self, offset=0):
        index = self.position + offset
        return self.tokens[index] if index < len(self.tokens) else (None, None)

    def take(self, expected=None):
        token = self.peek()
        if expected is not None and token[1] != expected:
            raise SyntaxError(f"expected {expected!r}, got {token[1]!r}")
        self.position += 1
        return token

    def type_at(self, offset=0):
        """(numpy type, tokens used) if a type name starts here, else (None, 0)."""
        words = []
        while self.peek(offset + len(words))[0] == "name":
            words.append(self.peek(offset + len(words))[1])
        for used in range(len(words), 0, -1):
            name = " ".join(words[:used])
            if name in self.placeholders:
                return self.placeholders[name], used
            if name in _TYPES:
                return _TYPES[name], used
        return None, 0

    def expression(self):
        condition = self.binary(0)
        if self.peek()[1] != "?":
            return condition
        self.take("?")
        when_true = self.expression()
        self.take(":")
        when_false = self.expression()
        t = _c_type(when_true, when_false)
        return numpy.where(numpy.asarray(condition) != 0, _cast(when_true, t),
                           _cast(when_false, t))

    def binary(self, level):
        if level == len(_BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek()[0] == "op" and self.peek()[1] in _BINARY[level]:
            op = self.take()[1]
            right = self.binary(level + 1)
            if op in ("||", "&&"):
                a, b = numpy.asarray(left) != 0, numpy.asarray(right) != 0
                left = (a | b) if op == "||" else (a & b)
            elif op in ("<<", ">>"):
                left = _shift(op)(left, right)
            elif op in ("==", "!=", "<", ">", "<=", ">="):
                left = _compare(op)(left, right)
            else:
                left = _arith(op)(left, right)
        return left

    def unary(self):
        kind, text = self.peek()
        if text == "-":
            self.take()
            value = numpy.asarray(self.unary())
            return -(value.astype(numpy.int32) if value.dtype.itemsize < 4 else value)
        if text == "!":
            self.take()
            return numpy.asarray(self.unary()) == 0
        if text == "(":
            t, used = self.type_at(1)
            if t is not None and self.peek(1 + used)[1] == ")":
                self.position += used + 2
                return _cast(self.unary(), t)
        return self.primary()

    def primary(self):
        kind, text = self.take()
        if kind == "num":
            return _literal(text)
        if text == "(":
            value = self.expression()
            self.take(")")
            return value
        if kind == "name":
            if self.peek()[1] == "(":
                self.take("(")
                args = [self.expression()]
                while self.peek()[1] == ",":
                    self.take(",")
                    args.append(self.expression())
                self.take(")")
                return _FUNCTIONS[text](*args)
            if text in self.env:
                return self.env[text]
        raise SyntaxError(f"unexpected {text!r}")


def _params(text):
    """'T a, float64 p' -> [(type name, name)]."""
    params = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        type_name, name = part.rsplit(None, 1)
        params.append((type_name, name))
    return params


class ElementwiseKernel:
    """CuPy's ElementwiseKernel, evaluated with NumPy (see the module docstring)."""

    def __init__(self, in_params, out_params, operation, name="kernel", **kwargs):
        self.in_params, self.out_params = _params(in_params), _params(out_params)
        self.statements = [s.strip() for s in operation.split(";") if s.strip()]
        self.name = name
        for statement in self.statements:
            _tokens(statement)  # CuPy compiles at first call; a syntax error shows here early

    def _bind(self, values):
        """Placeholder -> numpy type, from the arrays and NumPy scalars."""
        bound = {}
        for (type_name, name), value in zip(self.in_params + self.out_params, values):
            if type_name in _PARAM_TYPES or value is None:
                continue
            if isinstance(value, (numpy.ndarray, numpy.generic)):
                t = value.dtype.type
                if bound.setdefault(type_name, t) is not t:
                    raise TypeError(f"{self.name}: type is mismatched: {name} is "
                                    f"{numpy.dtype(t).name}, {type_name} is "
                                    f"{numpy.dtype(bound[type_name]).name}")
        return bound

    def __call__(self, *args):
        n_in, n_out = len(self.in_params), len(self.out_params)
        if len(args) not in (n_in, n_in + n_out):
            raise TypeError(f"{self.name}: wrong number of arguments ({len(args)}); "
                            f"expected {n_in} or {n_in + n_out}")
        values = list(args) + [None] * (n_in + n_out - len(args))
        bound = self._bind(values)
        arrays = [v for v in values if isinstance(v, numpy.ndarray)]
        shape = numpy.broadcast_shapes(*(a.shape for a in arrays)) if arrays else ()
        env = {}
        for (type_name, name), value in zip(self.in_params, values):
            t = _PARAM_TYPES.get(type_name) or bound.get(type_name)
            env[name] = _cast(value, t) if not isinstance(value, numpy.ndarray) else value
        outputs = []
        for (type_name, name), value in zip(self.out_params, values[n_in:]):
            t = _PARAM_TYPES.get(type_name) or bound[type_name]
            if value is None:
                value = numpy.zeros(shape, t)
            outputs.append(value)
            env[name] = value
        env["i"] = numpy.arange(int(numpy.prod(shape)), dtype=numpy.int64).reshape(shape)
        types_ = {**bound}
        out_names = {name: array for (_, name), array in zip(self.out_params, outputs)}
        with numpy.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for statement in self.statements:
                self._run(statement, env, types_, out_names)
        for (_, name), array in zip(self.out_params, outputs):
            array[...] = numpy.broadcast_to(env[name], shape)
        return outputs[0] if n_out == 1 else tuple(outputs)

    def _run(self, statement, env, placeholders, outputs):
        tokens = _tokens(statement)
        parser = _Parser(tokens, env, placeholders)
        declared, used = parser.type_at(0)
        parser.position = used
        kind, target = parser.take()
        op = parser.take()[1]
        if kind != "name" or op != "=":
            raise SyntaxError(f"{self.name}: cannot run {statement!r}")
        value = parser.expression()
        if parser.position != len(tokens):
            raise SyntaxError(f"{self.name}: trailing text in {statement!r}")
        if declared is not None:
            env[target] = _cast(value, declared)
        elif target in outputs:
            env[target] = _cast(value, outputs[target].dtype)
        else:
            env[target] = _cast(value, numpy.asarray(env[target]).dtype)
