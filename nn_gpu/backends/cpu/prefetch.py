"""Software prefetch for compiled code (what it gains: ``docs/performance.md``,
"What each part of the compiled epoch buys").

The compiled epoch reads its mini-batch as rows of X in shuffled order: one
chain of cache misses per row that no hardware prefetcher can guess. The
epoch knows its next rows in advance (``order``), so it asks for them while
the current step computes. Numba has no prefetch; :func:`prefetch` emits LLVM's
``llvm.prefetch`` -- a hint: it changes no value and never faults.
"""

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

#: Bytes per cache line: the step between the addresses :func:`prefetch_row` asks for.
CACHE_LINE = 64


def _prefetch_address(context, builder, signature, args):
    data = context.make_array(signature.args[0])(context, builder, args[0]).data
    byte, i32 = ir.IntType(8), ir.IntType(32)
    address = builder.gep(builder.bitcast(data, byte.as_pointer()), [args[1]])
    function = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [byte.as_pointer(), i32, i32, i32]),
        "llvm.prefetch.p0")
    builder.call(function, [address, i32(0), i32(3), i32(1)])  # read, keep in all caches, data
    return context.get_dummy_value()


@intrinsic
def prefetch(typingctx, array, offset):
    """In compiled code: fetch the cache line holding byte ``offset`` of
    ``array``'s data toward the core."""
    return types.void(array, types.intp), _prefetch_address


@njit(cache=True)
def prefetch_row(row):
    """Prefetch every cache line of the contiguous 1-d ``row``: one address
    per line from its first byte, and its last byte."""
    size = row.size * row.itemsize
    for offset in range(0, size, CACHE_LINE):
        prefetch(row, offset)
    prefetch(row, size - 1)
