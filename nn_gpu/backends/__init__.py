"""Choosing an array backend.

``get_backend("auto")`` picks CuPy only when it is importable *and* a CUDA
device answers; otherwise NumPy. CuPy is imported here lazily, never at
``import nn_gpu`` time, so a CPU-only install never pays for it.
"""

from ..errors import BackendUnavailableError, InvalidArgumentError
from .base import Backend
from .numpy_backend import NumpyBackend

BACKEND_NAMES = ("auto", "numpy", "cupy")

CUPY_INSTALL_HINT = "install it with: pip install 'nn_gpu[cuda12]' (or [cuda13])"


def cupy_status():
    """(usable, reason): whether CuPy can run here, and why or why not."""
    try:
        import cupy
    except ImportError as exc:
        return False, f"CuPy is not installed ({exc}); {CUPY_INSTALL_HINT}"
    except Exception as exc:  # a broken install raises all sorts of things
        return False, f"CuPy failed to import: {exc}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, or driver too old
        return False, f"CuPy is installed but no CUDA driver/device answers: {exc}"
    if count == 0:
        return False, "CuPy is installed but no CUDA device was found"
    return True, f"CuPy {cupy.__version__} sees {count} CUDA device(s)"


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
            raise BackendUnavailableError(f"backend 'cupy' is unavailable: {reason}")
        from .cupy_backend import CupyBackend

        return CupyBackend(reason="requested")
    if name == "auto":
        usable, reason = cupy_status()
        if usable:
            from .cupy_backend import CupyBackend

            return CupyBackend(reason=f"auto: {reason}")
        return NumpyBackend(reason=f"auto: {reason}")
    raise InvalidArgumentError(
        f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")


__all__ = ["Backend", "BACKEND_NAMES", "NumpyBackend", "cupy_status", "get_backend"]
