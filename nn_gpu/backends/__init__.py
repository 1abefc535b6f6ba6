"""Choosing an array backend.

``get_backend("auto")`` picks CuPy only when it is importable, a CUDA device
answers *and* a tiny kernel and matmul run on it; otherwise NumPy.
:func:`choose_backend` goes further for a known training: it picks the GPU
only where the path that would run there (the fused epoch or cuBLAS) is
estimated to beat the CPU (:mod:`.estimate`). CuPy is imported here lazily,
never at ``import nn_gpu`` time, so a CPU-only install never pays for it.
"""

import os

from ..errors import BackendUnavailableError, InvalidArgumentError
from ..version import install_hint
from . import estimate
from .base import Backend
from .cpu.numpy_backend import NumpyBackend

BACKEND_NAMES = ("auto", "numpy", "cupy")

CUPY_INSTALL_HINT = f"install it with CUDA's libraries: {install_hint('cuda12')} (or [cuda13])"


def nvidia_driver_found():
    """Whether an NVIDIA driver is installed here (a GPU CuPy could use): its
    /proc entry (Linux), or its library where the loader finds it."""
    if os.path.exists("/proc/driver/nvidia/version"):
        return True
    import ctypes.util

    return any(ctypes.util.find_library(name) for name in ("cuda", "nvcuda"))


def cupy_status():
    """(usable, reason): whether CuPy can run here, and why or why not.

    A driver that answers is not enough: CuPy compiles its kernels with
    NVRTC and multiplies with cuBLAS, both missing from a bare ``cupy-cudaXXx``
    install, so one tiny elementwise kernel and one tiny matmul must run and
    give the right numbers (milliseconds, once CuPy has cached the kernel).
    """
    try:
        import cupy
    except ImportError as exc:
        if nvidia_driver_found():  # a GPU that CuPy would use: say how
            return False, f"CuPy is not installed ({exc}); {CUPY_INSTALL_HINT}"
        return False, "CuPy is not installed and no NVIDIA driver was found: CPU only"
    except Exception as exc:  # a broken install raises all sorts of things
        return False, f"CuPy failed to import: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, or driver too old
        return False, f"CuPy is installed but no CUDA driver/device answers: {exc}"
    if count == 0:
        return False, "CuPy is installed but no CUDA device was found"
    failed = _probe(cupy)
    if failed:
        return False, (f"CuPy {cupy.__version__} sees {count} CUDA device(s) but {failed}; "
                       f"{CUPY_INSTALL_HINT}")
    return True, f"CuPy {cupy.__version__} sees {count} CUDA device(s)"


def _probe(cupy):
    """What fails of a tiny kernel and matmul on the device (a phrase), or None."""
    try:
        x = cupy.arange(4, dtype=cupy.float32)
        square = cupy.ElementwiseKernel("T x", "T y", "y = x * x + (T)1", "nn_gpu_probe")
        got = cupy.asnumpy(square(x)).tolist()
    except Exception as exc:  # NVRTC or CUDA headers missing, driver too old...
        return f"an elementwise kernel failed to compile or run ({type(exc).__name__}: {exc})"
    if got != [1.0, 2.0, 5.0, 10.0]:
        return f"an elementwise kernel computed {got} instead of [1, 2, 5, 10]"
    try:
        m = x.reshape(2, 2)
        got = cupy.asnumpy(cupy.matmul(m, m)).tolist()
    except Exception as exc:  # cuBLAS missing or failing
        return f"a matrix product (cuBLAS) failed ({type(exc).__name__}: {exc})"
    if got != [[2.0, 3.0], [6.0, 11.0]]:
        return f"a matrix product (cuBLAS) computed {got} instead of [[2, 3], [6, 11]]"
    return None


def get_backend(name="auto"):
    """Return a fresh backend object: ``"numpy"``, ``"cupy"`` or ``"auto"``.

    A :class:`Backend` instance is passed through unchanged, so callers can
    hand in their own (the tests' strict stand-in does).
    """
    if isinstance(name, Backend):
        return name
    if name == "numpy":
        return NumpyBackend(reason="requested")
    if name == "cupy":
        usable, reason = cupy_status()
        if not usable:
            hint = "" if CUPY_INSTALL_HINT in reason else f" (for an NVIDIA GPU: {CUPY_INSTALL_HINT})"
            raise BackendUnavailableError(f"backend 'cupy' is unavailable: {reason}{hint}")
        from .cuda.cupy_backend import CupyBackend

        return CupyBackend(reason="requested")
    if name == "auto":
        usable, reason = cupy_status()
        if usable:
            from .cuda.cupy_backend import CupyBackend

            return CupyBackend(reason=f"auto: {reason}")
        return NumpyBackend(reason=f"auto: {reason}")
    raise InvalidArgumentError(
        f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")


def choose_backend(name, sizes, batch_size, dtype="float32", train_size=50_000, plan=None):
    """get_backend(name) for a known training, with its reason naming the
    GPU path that will run (fused epoch or cuBLAS) and why; ``"auto"`` picks
    the GPU only where that path is estimated to beat the CPU epoch for this
    network and mini-batch size (a launch/FLOP model until a device run
    measures the crossover). ``plan`` (a :class:`nn_gpu.model.core.Plan`) tells
    whether the fused epoch can run; without one it is assumed it can
    wherever the sizes fit."""
    if name not in ("auto", "cupy"):
        return get_backend(name)
    if name == "auto":
        usable, status = cupy_status()
        if not usable:
            return NumpyBackend(reason=f"auto: {status}")
    gpu_path, fused_why_not = gpu_path_for(sizes, batch_size, dtype, plan)
    seconds = estimate.epoch_seconds(sizes, batch_size, train_size, fused=gpu_path == "fused",
                                     momentum=bool(plan and plan.momentum))
    label = "fused GPU epoch" if gpu_path == "fused" else (
        f"cuBLAS path ({fused_why_not})" if fused_why_not else "cuBLAS path")
    figures = (f"estimated {seconds[gpu_path]:.3g} s/epoch on the GPU's {label} against "
               f"{seconds['cpu']:.3g} s on the CPU (launch/FLOP model, not yet measured on a "
               f"device)")
    if name == "cupy":
        backend = get_backend("cupy")
        backend.reason = f"requested; {figures}"
        return backend
    if seconds[gpu_path] < seconds["cpu"]:
        from .cuda.cupy_backend import CupyBackend

        return CupyBackend(reason=f"auto: {figures}; {status}")
    return NumpyBackend(reason=f"auto: CPU, {figures}")


def gpu_path_for(sizes, batch_size, dtype, plan=None):
    """("fused" or "cublas", why the fused epoch cannot run or None)."""
    from .cuda import epoch as cuda_epoch

    if plan is None:
        reason = (f"{len(sizes) - 1} weight layers (the fused epoch has 2)" if len(sizes) != 3
                  else None)
    else:
        reason = cuda_epoch.unsupported_plan(plan)
    if reason is None:
        from .cuda.cupy_backend import numba_cuda_usable

        reason = None if numba_cuda_usable() else "numba-cuda cannot launch kernels here"
    if reason is None and len(sizes) == 3:
        need = cuda_epoch.shared_bytes(sizes, batch_size, dtype)
        if need > cuda_epoch.SHARED_BYTES:
            reason = f"mini-batch {batch_size} does not fit the fused kernel's shared memory"
    return ("cublas", reason) if reason else ("fused", None)


__all__ = ["Backend", "BACKEND_NAMES", "NumpyBackend", "choose_backend", "cupy_status",
           "get_backend"]
