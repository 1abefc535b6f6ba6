"""Array backends, and where a training runs.

* :mod:`.base`: the backend interface and its portable primitives;
  :mod:`.cpu` (NumPy, the compiled CPU epoch) and :mod:`.cuda` (CuPy, the
  fused GPU epoch) implement it;
* :mod:`.devices`: which backends can run here (``get_backend``, CuPy's
  health check);
* :mod:`.capabilities`: which path runs which training, and why not;
* :mod:`.estimate` and :mod:`.measured`: the device model and every tuned
  constant, with the command that measured it;
* :mod:`.choice`: the one choice of backend and path for a training.

CuPy is imported lazily, never at ``import nn_gpu`` time, so a CPU-only
install never pays for it.
"""

from .base import Backend
from .choice import BackendChoice, choose_backend, gpu_path_for
from .cpu.numpy_backend import NumpyBackend
from .devices import BACKEND_NAMES, CUPY_INSTALL_HINT, cupy_status, get_backend

__all__ = ["BACKEND_NAMES", "CUPY_INSTALL_HINT", "Backend", "BackendChoice", "NumpyBackend",
           "choose_backend", "cupy_status", "get_backend", "gpu_path_for"]
