"""Where a training runs: the backend and the path, and why -- one function.

:func:`choose_backend` is called once a training's mini-batch size is known,
by ``nn-gpu train`` before it starts and by :class:`~nn_gpu.model.network.Network`
when ``sgd`` starts (a network built with ``backend="auto"`` keeps its
parameters on the host until then), so the same network and mini-batch get
the same choice either way. Every decision comes from the capability table
(:mod:`.capabilities`: which paths can run the training) and the
launch/FLOP model (:mod:`.estimate`: which of those is faster):

* ``"numpy"``: the compiled CPU epoch where the table allows it, else the
  generic core;
* ``"cupy"``: the fused GPU epoch where the table allows it, its mini-batch
  fits the kernel, numba-cuda can launch and the model puts it ahead of the
  cuBLAS path; else the cuBLAS path;
* ``"auto"``: that GPU path where CuPy is usable and the model puts it ahead
  of the CPU epoch, else NumPy; the per-example reference always on the CPU
  (one matrix-vector product per example: a GPU launch each).

The fused epoch asks the same question again when it runs
(:func:`nn_gpu.backends.cuda.epoch.why_not_fused`), so a CuPy backend given
by the caller takes the path the choice names.
"""

from dataclasses import dataclass

from . import capabilities, devices, estimate
from .base import Backend
from .cpu.numpy_backend import NumpyBackend

#: The estimate's name of each path's device time.
ESTIMATED_AS = {"compiled_cpu": "cpu", "core": "cpu", "fused_gpu": "fused", "cublas": "cublas"}
MODEL = "launch/FLOP model, not yet measured on a device"


@dataclass(frozen=True)
class BackendChoice:
    """Which backend trains a run, by which path, and why."""

    #: The backend object the training runs on.
    backend: Backend
    #: The path that runs the epochs: a key of :data:`.capabilities.PATHS`.
    path: str
    #: Why, in one line (what ``nn-gpu train``'s header prints).
    reason: str
    #: Estimated seconds per epoch by device path ("cpu", "cublas", "fused"),
    #: where the launch/FLOP model was asked; None where it was not.
    estimates: dict = None

    @property
    def name(self):
        """The backend's name: "numpy" or "cupy"."""
        return self.backend.name

    def __str__(self):
        return f"{self.name}, {capabilities.PATHS[self.path].name}: {self.reason}"


def choose_backend(request, plan, sizes, batch_size, dtype="float32", method="batched"):
    """The :class:`BackendChoice` for a training: ``request`` is "auto",
    "numpy", "cupy" or a backend object (kept as it is; only its path is
    chosen); ``plan`` describes the training (a :class:`nn_gpu.model.core.Plan`),
    ``sizes`` its layers, ``method`` "batched" or "per_example".
    Raises :class:`~nn_gpu.errors.BackendUnavailableError` for "cupy" where
    CuPy cannot run, :class:`~nn_gpu.errors.InvalidArgumentError` for an
    unknown name."""
    if method == "per_example":
        backend = (NumpyBackend(reason="auto: CPU, for the per-example reference (one "
                                       "matrix-vector product per example: a GPU launch each)")
                   if request == "auto" else devices.get_backend(request))
        return BackendChoice(backend, "per_example", backend.reason or "given")
    if request == "auto":
        return _auto(plan, sizes, batch_size, dtype)
    if isinstance(request, Backend):
        return _given(request, plan, sizes, batch_size, dtype)
    if request == "cupy":
        path, why, seconds = gpu_path_for(sizes, batch_size, dtype, plan)
        backend = devices.get_backend("cupy", reason=f"requested; {_figures(path, why, seconds)}")
        return BackendChoice(backend, path, backend.reason, seconds)
    backend = devices.get_backend(request)
    return BackendChoice(backend, cpu_path(plan, dtype), backend.reason)


def cpu_path(plan, dtype):
    """The compiled CPU epoch where the table allows it, else the generic core."""
    return "compiled_cpu" if capabilities.supports("compiled_cpu", plan, dtype) else "core"


def gpu_path_for(sizes, batch_size, dtype, plan):
    """(path, why not the fused epoch or None, estimated seconds per epoch):
    "fused_gpu" where :func:`~nn_gpu.backends.cuda.epoch.why_not_fused`
    finds nothing against it and numba-cuda can launch, else "cublas"."""
    from .cuda import epoch as cuda_epoch
    from .cuda.cupy_backend import numba_cuda_usable

    why = cuda_epoch.why_not_fused(plan, sizes, batch_size, dtype)
    if why is None and not numba_cuda_usable():
        why = "numba-cuda cannot launch kernels here"
    seconds = estimate.epoch_seconds(sizes, batch_size, plan.train_size,
                                     fused=capabilities.supports("fused_gpu", plan, dtype),
                                     momentum=plan.momentum > 0)
    return ("cublas", str(why), seconds) if why else ("fused_gpu", None, seconds)


def _auto(plan, sizes, batch_size, dtype):
    usable, status = devices.cupy_status()
    if not usable:
        return BackendChoice(NumpyBackend(reason=f"auto: {status}"), cpu_path(plan, dtype),
                             f"auto: {status}")
    path, why, seconds = gpu_path_for(sizes, batch_size, dtype, plan)
    figures = _figures(path, why, seconds)
    if seconds[ESTIMATED_AS[path]] < seconds["cpu"]:
        backend = devices.cupy_backend(f"auto: GPU, {figures}; {status}")
        return BackendChoice(backend, path, backend.reason, seconds)
    backend = NumpyBackend(reason=f"auto: CPU, {figures}")
    return BackendChoice(backend, cpu_path(plan, dtype), backend.reason, seconds)


def _given(backend, plan, sizes, batch_size, dtype):
    """The path of a backend the caller built: NumPy's and CuPy's as chosen
    for them; any other runs the generic core over its primitives."""
    reason = backend.reason or "given"
    if isinstance(backend, NumpyBackend):
        return BackendChoice(backend, cpu_path(plan, dtype), reason)
    if backend.name != "cupy":
        return BackendChoice(backend, "core", reason)
    path, _, seconds = gpu_path_for(sizes, batch_size, dtype, plan)
    return BackendChoice(backend, path, reason, seconds)


def _figures(path, why, seconds):
    """The estimate behind a choice, in words."""
    label = capabilities.PATHS[path].name + (f" ({why})" if why else "")
    return (f"estimated {seconds[ESTIMATED_AS[path]]:.3g} s/epoch on the GPU's {label} "
            f"against {seconds['cpu']:.3g} s on the CPU ({MODEL})")
