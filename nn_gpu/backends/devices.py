"""Which backends can run here: CuPy's health check and ``get_backend``.

``get_backend("auto")`` picks CuPy only when it is importable, a CUDA device
answers *and* a tiny kernel and matmul run on it; otherwise NumPy. For a
known training, :func:`nn_gpu.backends.choice.choose_backend` goes further.
CuPy is imported here lazily, never at ``import nn_gpu`` time, so a CPU-only
install never pays for it.
"""

import os

from ..errors import BackendUnavailableError, InvalidArgumentError
from ..version import install_hint
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


def get_backend(name="auto", reason="requested"):
    """Return a fresh backend object: ``"numpy"``, ``"cupy"`` or ``"auto"``,
    built with ``reason`` as why it was chosen (auto: its own).

    A :class:`Backend` instance is passed through unchanged, so callers can
    hand in their own (the tests' strict stand-in does).
    """
    if isinstance(name, Backend):
        return name
    if name == "numpy":
        return NumpyBackend(reason=reason)
    if name == "cupy":
        usable, status = cupy_status()
        if not usable:
            hint = ("" if CUPY_INSTALL_HINT in status
                    else f" (for an NVIDIA GPU: {CUPY_INSTALL_HINT})")
            raise BackendUnavailableError(f"backend 'cupy' is unavailable: {status}{hint}")
        return cupy_backend(reason)
    if name == "auto":
        usable, status = cupy_status()
        return cupy_backend(f"auto: {status}") if usable else NumpyBackend(reason=f"auto: {status}")
    raise InvalidArgumentError(
        f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")


def cupy_backend(reason):
    """A CupyBackend built with ``reason``, for a caller that has checked
    :func:`cupy_status`."""
    from .cuda.cupy_backend import CupyBackend

    return CupyBackend(reason=reason)
