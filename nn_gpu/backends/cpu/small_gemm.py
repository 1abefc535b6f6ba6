"""GEMM kernels compiled for one exact shape.

The compiled epoch's products are small and skinny ((30, 784)·(784, 10) at
mini-batch 10), where OpenBLAS reaches a quarter of a core's FMA peak and
the kernel here 73% (``docs/performance.md``; ``bench/small_gemm.py``
measures it). A training run's sizes and mini-batch never
change, so each product can be compiled for its exact shape: the sizes are
constants of the generated source (trip counts, strides), the register block
is written out statement by statement, and no remainder logic runs (the edge
blocks are separate, smaller copies of the block).

Each kernel is a C-callable ``cfunc`` on raw pointers to C-ordered arrays;
the epoch (compiled once, cached on disk) takes the run's kernels as
addresses and calls them with :func:`call_dot` and :func:`call_update`.
(Numba's first-class functions would do too, but typing a tuple of them
costs ~0.5 ms per call of the epoch, 50 calls per epoch.) Two kinds, each
checked against its NumPy twin:

- :func:`dot_nt` (P, Q, K): out = A B^T, both operands K-contiguous (the
  forward product z^T = w a^T, or z = a w^T from 33 rows): RP x RQ dot
  products at once, vectorised along K (the sums reassociated);
- :func:`update` (N, K, M): c = beta·c + alpha·d^T a (the weight update
  w -= δ^T a, beta = 1 - ηλ/n, straight into w): one row of c at a time,
  vectorised along K, the M rows of a taken IC at a time. No FMA contraction
  here: with it, the mini-batch-1 test epoch (tanh, momentum, 200 steps)
  drifts past 1e-8 of the generic core, as rounding differences do there.

``bench/small_gemm.py`` times them against SciPy's OpenBLAS; :func:`chosen`
says where they won there.
"""

import contextlib
import functools
import signal
import threading

import numpy
from llvmlite import ir
from numba import carray, cfunc, types
from numba.extending import intrinsic

from .. import measured

#: Dot products computed at once (rows of A x rows of B); rows of a summed per
#: pass over a row of c. One row of c at a time: with two, LLVM can no longer
#: rule out that c overlaps a, and leaves the loop scalar.
RP, RQ = 4, 3
IC = 10

#: Largest mini-batch whose updates get kernels: above IC rows the kernel
#: makes several passes over w and loses (0.5-0.94x at 100 rows). Which
#: mini-batches get forward kernels and how large a w gets an update kernel
#: were measured (``nn_gpu.backends.measured``: SMALL_GEMM_FORWARD_ROWS,
#: SMALL_GEMM_MAX_UPDATE_BYTES).
MAX_UPDATE_ROWS = IC

DOT_SIGNATURE = types.void(types.voidptr, types.voidptr, types.voidptr)
UPDATE_SIGNATURE = types.void(types.voidptr, types.voidptr, types.voidptr, types.float64,
                              types.float64)


def chosen(sizes, batch_size, dtype):
    """Per layer: (forward kernel?, update kernel?) for full mini-batches,
    where bench/small_gemm.py measured them faster than OpenBLAS."""
    forward = batch_size in measured.SMALL_GEMM_FORWARD_ROWS.get(dtype, ())
    update_bytes = measured.SMALL_GEMM_MAX_UPDATE_BYTES if batch_size <= MAX_UPDATE_ROWS else 0
    itemsize = numpy.dtype(dtype).itemsize
    return [(forward, n_in * n_out * itemsize <= update_bytes)
            for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def _compile(lines, name, signature, fastmath):
    namespace = {"numpy": numpy, "carray": carray}  # the source: sizes and a dtype name, no data
    exec(compile("\n".join(lines) + "\n", f"<small_gemm {name}>", "exec"), namespace)
    with signals_deferred():
        return cfunc(signature, fastmath=fastmath, nogil=True)(namespace[name])


@contextlib.contextmanager
def signals_deferred(signals=(signal.SIGINT, signal.SIGTERM)):
    """Hold Ctrl-C and SIGTERM until the block ends, then deliver them.

    While LLVM compiles it calls back into Python (Numba's object cache), and
    an exception raised there by a signal handler is printed as "Exception
    ignored ... Traceback" and lost: a run interrupted while it compiles its
    kernels would go on. Handlers Python does not own (None) or signals
    ignored are left alone; off the main thread nothing can be changed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught, previous = [], {}
    for number in signals:
        handler = signal.getsignal(number)
        if handler not in (None, signal.SIG_IGN):
            previous[number] = signal.signal(number, lambda got, frame: caught.append(got))
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in caught:
            signal.raise_signal(number)


def _blocks(total, size):
    """(start, end, step) runs covering range(total): the full blocks of
    ``size``, then one smaller edge block."""
    full = total - total % size
    runs = [(0, full, size)] if full else []
    if total % size:
        runs.append((full, total, total % size))
    return runs


def _dot_block(rp, rq, K, dtype):
    pad = " " * 12
    lines = [f"{pad}s{i}_{j} = numpy.{dtype}(0)" for i in range(rp) for j in range(rq)]
    lines.append(f"{pad}for k in range({K}):")
    lines += [f"{pad}    x{i} = A[p + {i}, k]" for i in range(rp)]
    lines += [f"{pad}    y{j} = B[q + {j}, k]" for j in range(rq)]
    lines += [f"{pad}    s{i}_{j} += x{i} * y{j}" for i in range(rp) for j in range(rq)]
    lines += [f"{pad}out[p + {i}, q + {j}] = s{i}_{j}" for i in range(rp) for j in range(rq)]
    return lines


@functools.lru_cache(maxsize=None)
def dot_nt(P, Q, K, dtype):
    """``f(A, B, out)`` on pointers: out (P, Q) = A (P, K) · B (Q, K)^T."""
    lines = ["def dot_nt(A, B, out):",
             f"    A = carray(A, ({P}, {K}), numpy.{dtype})",
             f"    B = carray(B, ({Q}, {K}), numpy.{dtype})",
             f"    out = carray(out, ({P}, {Q}), numpy.{dtype})"]
    for p0, p1, rp in _blocks(P, RP):
        lines.append(f"    for p in range({p0}, {p1}, {rp}):")
        for q0, q1, rq in _blocks(Q, RQ):
            lines.append(f"        for q in range({q0}, {q1}, {rq}):")
            lines += _dot_block(rp, rq, K, dtype)
    return _compile(lines, "dot_nt", DOT_SIGNATURE, {"reassoc", "contract"})


def _tree_sum(terms):
    """The terms summed as a balanced tree: a chain of ten dependent FMAs per
    vector would wait on their latency, not on the FMA units."""
    while len(terms) > 1:
        terms = [f"({a} + {b})" for a, b in zip(terms[::2], terms[1::2])] + terms[len(terms) & ~1:]
    return terms[0]


def _update_rows(i0, ic, K, first):
    pad = " " * 8
    lines = [f"{pad}d{i} = al * d[{i0 + i}, j]" for i in range(ic)]
    total = _tree_sum([f"d{i} * a[{i0 + i}, k]" for i in range(ic)])
    old = "be * c[j, k]" if first else "c[j, k]"
    lines += [f"{pad}for k in range({K}):",
              f"{pad}    c[j, k] = {old} + {total}"]
    return lines


@functools.lru_cache(maxsize=None)
def update(N, K, M, dtype):
    """``f(c, d, a, alpha, beta)`` on pointers: c (N, K) = beta·c + alpha·d^T a
    for d (M, N), a (M, K); beta applies once, with the first IC rows of a."""
    lines = ["def update(c, d, a, alpha, beta):",
             f"    c = carray(c, ({N}, {K}), numpy.{dtype})",
             f"    d = carray(d, ({M}, {N}), numpy.{dtype})",
             f"    a = carray(a, ({M}, {K}), numpy.{dtype})",
             f"    al, be = numpy.{dtype}(alpha), numpy.{dtype}(beta)",
             f"    for j in range({N}):"]
    for start in range(0, M, IC):
        lines += _update_rows(start, min(IC, M - start), K, start == 0)
    return _compile(lines, "update", UPDATE_SIGNATURE, set())


def _call_address(context, builder, signature, args):
    """Call the cfunc at args[0] with the data pointers of the array
    arguments and the float64 ones as they are."""
    values = []
    for kind, value in zip(signature.args[1:], args[1:]):
        if isinstance(kind, types.Array):
            data = context.make_array(kind)(context, builder, value).data
            value = builder.bitcast(data, ir.IntType(8).as_pointer())
        values.append(value)
    function = ir.FunctionType(ir.VoidType(), [value.type for value in values])
    builder.call(builder.inttoptr(args[0], function.as_pointer()), values)
    return context.get_dummy_value()


@intrinsic
def call_dot(typingctx, address, A, B, out):
    """In compiled code: the :func:`dot_nt` kernel at ``address`` on the
    C-ordered arrays A, B, out of its shape."""
    return types.void(types.int64, A, B, out), _call_address


@intrinsic
def call_update(typingctx, address, c, d, a, alpha, beta):
    """In compiled code: the :func:`update` kernel at ``address`` on the
    C-ordered arrays c, d, a of its shape."""
    return types.void(types.int64, c, d, a, types.float64, types.float64), _call_address
