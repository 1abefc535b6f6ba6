"""Compiling nn_gpu's CUDA code for real cards without a GPU: the helpers of
tests/backends/test_cuda_compile.py.

* The fused epoch kernel (numba-cuda): NVVM turns it into PTX for a target
  compute capability (numba-cuda asks the device for it only to compile the
  kernel's device functions, which :func:`pretend_device` answers), and
  ptxas, from the same CUDA release, assembles that PTX with ``-v``: the
  registers, shared memory and spills it reports are those the driver's JIT
  gets on the card, since it runs the same assembler on the same PTX.
* CuPy's elementwise kernels: CuPy writes a kernel's full CUDA source only
  when it is first called on device arrays, which needs a device. The source
  generator behind that call takes a description of the arguments instead
  (``cupy._core._kernel._get_elementwise_kernel_code``); :func:`cupy_source`
  describes them as ``ElementwiseKernel.__call__`` would for the arrays and
  scalars the backend passes (recorded through the NumPy stand-in of
  tests/fake_cupy.py), and :func:`nvrtc_compile` compiles the result with
  CuPy's own headers and options (``compile_with_cache``'s), NVRTC and
  ``-arch=sm_XX`` as CuPy does on a card of that compute capability.

The generator is not CuPy's public API (hence the bound on CuPy's version in
the ``cuda-compile`` extra): where it moves, these helpers fail saying so.

Where a tool is missing the tests skip, saying what to install, except where
``NN_GPU_REQUIRE_CUDA_COMPILER=1`` (CI), where they fail: a CI without the
compilers must not pass as if it had compiled anything.
"""

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import NamedTuple

import numpy
import pytest

#: The cards users have, by ptxas target: T4 (the common free cloud GPU), A100, H100/H200.
TARGETS = {"sm_75": "T4", "sm_80": "A100", "sm_90": "H100"}
#: Limits shared by these compute capabilities (CUDA C Programming Guide, table
#: "Technical Specifications per Compute Capability").
REGISTERS_PER_BLOCK = 65536       # also the register file of one SM
MAX_REGISTERS_PER_THREAD = 255
MAX_THREADS_PER_BLOCK = 1024
STATIC_SHARED_PER_BLOCK = 48 * 1024
#: Per card: SMs, shared memory per SM, most resident blocks per SM (for a
#: cooperative grid, every block must be resident at once).
CARDS = {"sm_75": (40, 64 * 1024, 16), "sm_80": (108, 164 * 1024, 32),
         "sm_90": (132, 228 * 1024, 32)}
INSTALL = "pip install -e '.[cuda-compile]'"


def missing(reason):
    """Skip, or fail where NN_GPU_REQUIRE_CUDA_COMPILER=1, for a missing tool."""
    if os.environ.get("NN_GPU_REQUIRE_CUDA_COMPILER") == "1":
        pytest.fail(f"NN_GPU_REQUIRE_CUDA_COMPILER=1, but {reason}", pytrace=False)
    pytest.skip(f"{reason} ({INSTALL})")


# ------------------------------------------------------------ the fused kernel
def nvvm():
    """numba.cuda, once numba-cuda and its NVVM are found."""
    try:
        import numba_cuda  # noqa: F401
        from numba import cuda
    except ImportError as exc:
        missing(f"numba-cuda is not installed ({exc})")
    try:
        cuda.cudadrv.nvvm.NVVM()
    except Exception as exc:
        missing(f"numba-cuda finds no NVVM ({type(exc).__name__}: {exc})")
    return cuda


def ptxas():
    """The ptxas of the CUDA release NVVM comes from (the nvidia-cuda-nvcc
    wheel), else the one on PATH."""
    try:
        import nvidia.cuda_nvcc

        found = [Path(p) / "bin" / "ptxas" for p in nvidia.cuda_nvcc.__path__]
    except ImportError:
        found = []
    found = [str(p) for p in found if p.is_file()] or [shutil.which("ptxas")]
    if not found[0]:
        missing("no ptxas (the nvidia-cuda-nvcc-cu12 wheel, or CUDA's bin on PATH)")
    return found[0]


@contextlib.contextmanager
def pretend_device(cuda, cc):
    """numba-cuda compiles device functions for the current device's compute
    capability; where there is no device, this one is answered."""
    if cuda.is_available():
        yield
        return
    original = cuda.dispatcher.get_current_device
    cuda.dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)
    try:
        yield
    finally:
        cuda.dispatcher.get_current_device = original


def fused_signature(dtype):
    """The argument types FusedEpoch launches the kernel with."""
    from numba import types as nb

    f = getattr(nb, dtype)
    m2, m1 = nb.Array(f, 2, "C"), nb.Array(f, 1, "C")
    return ((m2, m2, nb.Array(nb.int64, 1, "C"), m2, m1, m2, m1, m2, m1, m2, m1,
             nb.Array(f, 4, "C")) + (nb.float64,) * 4)


def assemble(ptx, target, relocatable):
    """ptxas -v's figures for the kernel's entry: registers, smem (static
    shared bytes), stack, spill_stores, spill_loads (bytes). ``relocatable``
    (-c): the PTX calls CUDA's device runtime (the grid barrier)."""
    command = [ptxas(), f"-arch={target}", "-v", "-", "-o", os.devnull]
    if relocatable:
        command.insert(1, "-c")
    done = subprocess.run(command, input=ptx, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"ptxas failed for {target}:\n{done.stderr[-3000:]}"
    return ptxas_figures(done.stderr)


def ptxas_figures(log):
    """The figures of the first entry function in a ``ptxas -v`` log."""
    entry = log[log.index("Compiling entry function"):]

    def number(pattern):
        match = re.search(pattern, entry)
        return int(match.group(1)) if match else 0

    figures = {"registers": number(r"Used (\d+) registers"), "smem": number(r"(\d+) bytes smem"),
               "stack": number(r"(\d+) bytes stack frame"),
               "spill_stores": number(r"(\d+) bytes spill stores"),
               "spill_loads": number(r"(\d+) bytes spill loads")}
    assert re.search(r"Used \d+ registers", entry), log
    return figures


def registers_per_block(registers, threads):
    """Registers a block takes from the SM's file: allocated per warp of 32
    threads in units of 256 registers."""
    per_warp = -(-registers * 32 // 256) * 256
    return per_warp * -(-threads // 32)


def resident_blocks(target, registers, threads, smem):
    """How many blocks of this kernel a whole card holds at once."""
    sms, shared_per_sm, max_blocks = CARDS[target]
    by_registers = REGISTERS_PER_BLOCK // registers_per_block(registers, threads)
    by_threads = 2048 // threads if target != "sm_75" else 1024 // threads
    by_shared = shared_per_sm // smem if smem else max_blocks
    return sms * min(by_registers, by_threads, by_shared, max_blocks)


# ------------------------------------------------------------- CuPy's kernels
def real_cupy():
    """(cupy, its kernel module, its core module, its compiler), once CuPy,
    NVRTC and the CUDA headers are found (no device needed)."""
    if getattr(sys.modules.get("cupy"), "__version__", None) == "0.0-fake":
        raise AssertionError("the CuPy stand-in (tests/fake_cupy.py) hides the real CuPy here")
    try:
        import cupy
        from cupy._core import _kernel, core
        from cupy.cuda import compiler, nvrtc
    except ImportError as exc:
        missing(f"CuPy is not installed ({exc})")
    try:
        nvrtc.getVersion()
    except Exception as exc:
        missing(f"CuPy finds no NVRTC ({type(exc).__name__}: {exc})")
    for name in ("_get_elementwise_kernel_code", "_ArgInfo", "_TypeMap"):
        assert hasattr(_kernel, name), (
            f"CuPy {cupy.__version__} has no cupy._core._kernel.{name}: its kernel-source "
            "generator moved; update tests/cuda_compile.py and the bound in pyproject.toml")
    try:
        core.assemble_cupy_compiler_options(())
    except RuntimeError as exc:  # no CUDA headers
        missing(f"CuPy finds no CUDA headers ({exc})")
    return cupy, _kernel, core, compiler


class RecordedArray(NamedTuple):
    """What CuPy's argument handling sees of an array."""

    dtype: numpy.dtype
    shape: tuple
    contiguous: bool

    def __repr__(self):
        return f"{self.dtype.name}{list(self.shape)}{'' if self.contiguous else ' strided'}"


def recorded(args):
    """A kernel call's arguments as CuPy sees them: arrays, or None for a scalar
    (CuPy casts a scalar to its parameter's type)."""
    return tuple(RecordedArray(a.dtype, a.shape, a.flags.c_contiguous)
                 if isinstance(a, numpy.ndarray) else None for a in args)


def spans(array, shape):
    """Whether ``array`` (a RecordedArray), broadcast to ``shape``, is still
    C-contiguous: stretched along no axis longer than 1."""
    padded = (1,) * (len(shape) - len(array.shape)) + tuple(array.shape)
    return array.contiguous and all(d == s for d, s in zip(padded, shape) if s != 1)


def cupy_source(kernel, call):
    """The CUDA source CuPy generates for ``kernel`` (a real
    ``cupy.ElementwiseKernel``) called with ``call`` (:func:`recorded`
    arguments): the arguments described as ``ElementwiseKernel.__call__``
    does after broadcasting and merging contiguous dimensions."""
    cupy, _kernel, _, _ = real_cupy()
    nin, nout = len(kernel.in_params), len(kernel.out_params)
    arrays = [a for a in call if a is not None]
    shape = numpy.broadcast_shapes(*(a.shape for a in arrays))
    call = call + (RecordedArray(arrays[0].dtype, shape, True),) * (nin + nout - len(call))
    # Where no array is stretched along an axis longer than 1, every one is
    # contiguous in the broadcast shape, and CuPy merges the axes into one.
    merged = all(spans(a, shape) for a in call if a is not None)
    ndim = 1 if merged else len(shape)
    in_types, out_types, type_map = kernel._decide_params_type(
        tuple(None if a is None else a.dtype.type for a in call[:nin]),
        tuple(a.dtype.type for a in call[nin:]))
    infos = []
    for arg, t in zip(call, in_types + out_types):
        if arg is None:
            infos.append(_kernel._ArgInfo(3, cupy._core._scalar.CScalar, numpy.dtype(t), 0,
                                          True, True))
        else:
            contiguous = merged or spans(arg, shape)
            infos.append(_kernel._ArgInfo(1, cupy.ndarray, arg.dtype, ndim, contiguous, True))
    infos.append(_kernel._ArgInfo(2, cupy._core._carray.Indexer, None, ndim, True, True))
    return _kernel._get_elementwise_kernel_code(
        tuple(infos), type_map, kernel.params, kernel.operation, kernel.name, kernel.preamble,
        kernel.kwargs.get("loop_prep", ""), kernel.kwargs.get("after_loop", ""))


def nvrtc_compile(source, target, options=()):
    """Compile generated kernel source as CuPy's ``compile_with_cache`` does on
    a card of ``target`` (its headers first, its options, a cubin); returns
    the figures ptxas reports through NVRTC. A compile error raises CuPy's
    CompileException, whose message is NVRTC's log with the source line."""
    _, _, core, compiler = real_cupy()
    headers = "".join(f"#include <{name}>\n" for name in core._cupy_header_list)
    options = (core.assemble_cupy_compiler_options(tuple(options))
               + ("-ftz=true", f"-arch={target}", "--device-as-default-execution-space",
                  "--ptxas-options=-v"))
    log = io.StringIO()
    program = compiler._NVRTCProgram(headers + source, "nn_gpu_kernel.cu", method="cubin")
    program.compile(options, log)
    return ptxas_figures(log.getvalue())
