"""Which training path runs which training: one table, with the reason for
every refusal.

A training is run by one of five paths:

* ``compiled_cpu``: the whole epoch compiled for the CPU with Numba
  (:mod:`nn_gpu.backends.cpu.epoch`);
* ``fused_gpu``: the whole epoch as one CUDA kernel (:mod:`nn_gpu.backends.cuda.epoch`);
* ``cublas``: the batched core's loop over CuPy's primitives (cuBLAS GEMMs
  and elementwise kernels);
* ``core``: the batched core's loop over any backend's primitives
  (:func:`nn_gpu.model.core.train_epoch`);
* ``per_example``: Nielsen's loop over single examples, the reference
  (:mod:`nn_gpu.model.reference`).

:data:`PATHS` says what each supports; :func:`refusal` answers for one
training and is what every caller asks: the backends before offering a
native epoch, the device choice (:func:`nn_gpu.backends.choose_backend`),
the epoch runner and ``nn-gpu train`` before running the per-example method.
A training is described by a plan (:class:`nn_gpu.model.core.Plan`, or
anything with its ``kinds``, ``cost``, ``error_form``, ``l2``, ``l1``,
``momentum`` and ``dropout``), and optionally its dtype and whether its
parameters are C-ordered. Sizes beyond the number of layers (the fused
kernel's shared memory) are the path's own check.
"""

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy

from ..options import ACTIVATIONS, DTYPES
from .cpu.records import ACTIVATION_CODES
from .cuda.records import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS

#: The output layer's activations (the costs': sigmoid, or softmax for log-likelihood).
OUTPUTS = ("sigmoid", "softmax")
#: The options a path may refuse, in the order they are checked.
OPTIONS = ("dropout", "l1", "l2", "momentum")


class Refusal(NamedTuple):
    """Why a path cannot run a training."""

    #: The setting at fault: one of :data:`OPTIONS`, or "layers",
    #: "activation" (hidden), "cost" (its output error, or the output
    #: activation it puts on the network), "dtype", "order"; a path's own
    #: checks add "batch_size" (the fused kernel's shared memory) and
    #: "estimate" (the launch/FLOP model puts another path ahead).
    option: str
    #: The setting as the training has it ("dropout 0.5", "activation 'relu'").
    subject: str
    #: Why this path cannot run it.
    why: str

    def __str__(self):
        return f"{self.subject}: {self.why}"


@dataclass(frozen=True)
class Path:
    """What one path runs. Each refusal carries its reason."""

    #: How the path is called in messages.
    name: str
    #: Weight layers it runs: (fewest, most) and why not others.
    layers: tuple = (1, math.inf)
    layers_why: str = ""
    #: Hidden and output activations it runs, and why not others.
    hidden: tuple = ACTIVATIONS
    output: tuple = OUTPUTS
    activations_why: str = ""
    #: The costs' ``output_error_form`` it writes itself (None: any cost,
    #: whose own ``output_error`` it calls), or the cost names it knows
    #: (None: any), and why not others.
    error_forms: tuple = None
    cost_names: tuple = None
    costs_why: str = ""
    #: Option (of :data:`OPTIONS`) -> why this path does not run it.
    refuses: dict = field(default_factory=dict)
    dtypes: tuple = DTYPES
    #: Why it needs C-ordered parameters, or None where any order runs.
    c_order_why: str = None


PATHS = {
    "compiled_cpu": Path(
        name="compiled CPU epoch",
        hidden=tuple(kind for kind in ACTIVATIONS if kind in ACTIVATION_CODES),
        output=tuple(kind for kind in OUTPUTS if kind in ACTIVATION_CODES),
        activations_why="the compiled loop has no code for it",
        error_forms=("quadratic", "difference"),
        costs_why="its output error is the cost's own code, which only the core calls",
        refuses={"dropout": "the compiled loop draws no dropout masks",
                 "l1": "the compiled loop has no L1 step"},
        c_order_why="it reads the parameters as C-ordered memory (BLAS calls and shape "
                    "kernels on raw pointers)"),
    "fused_gpu": Path(
        name="fused GPU epoch",
        layers=(2, 2),
        layers_why="the kernel keeps the one hidden layer of a step in shared memory",
        hidden=HIDDEN_ACTIVATIONS, output=OUTPUT_ACTIVATIONS,
        activations_why="the kernel has no code for it",
        error_forms=("quadratic", "difference"),
        costs_why="its output error is the cost's own code, which only the core calls",
        refuses={"dropout": "the kernel draws no dropout masks"},
        c_order_why="the kernel is launched on C-ordered parameters only"),
    "cublas": Path(name="cuBLAS path"),
    "core": Path(name="generic core"),
    "per_example": Path(
        name="per-example reference",
        hidden=("sigmoid",), output=("sigmoid",),
        activations_why="the book's chapter-1 loop has sigmoid neurons only",
        cost_names=("quadratic", "cross_entropy"),
        costs_why="the book's chapter-1 loop knows the quadratic and cross-entropy costs",
        refuses={option: f"the book's chapter-1 loop has no {what}" for option, what in (
            ("dropout", "dropout"), ("l1", "L1 regularisation"), ("l2", "L2 regularisation"),
            ("momentum", "momentum"))}),
}


def refusal(path, plan, dtype=None, c_ordered=True):
    """Why ``path`` (a key of :data:`PATHS`) cannot run the training
    ``plan`` describes (in ``dtype``, on C-ordered parameters or not), as a
    :class:`Refusal`; None where it can."""
    table = PATHS[path]
    return (_layers(table, plan) or _activations(table, plan) or _cost(table, plan)
            or _options(table, plan) or _dtype(table, dtype)
            or (Refusal("order", "parameters not C-ordered", table.c_order_why)
                if table.c_order_why and not c_ordered else None))


def supports(path, plan, dtype=None, c_ordered=True):
    """Whether ``path`` runs this training (:func:`refusal` is None)."""
    return refusal(path, plan, dtype, c_ordered) is None


def _layers(table, plan):
    low, high = table.layers
    count = len(plan.kinds)
    if low <= count <= high:
        return None
    runs = f"{low}" if low == high else f"{low} to {high}"
    return Refusal("layers", f"{count} weight layer{'s' if count != 1 else ''}",
                   f"the {table.name} runs {runs} ({table.layers_why})")


def _activations(table, plan):
    *hidden, output = plan.kinds
    for kind in hidden:
        if kind not in table.hidden:
            return Refusal("activation", f"hidden activation {kind!r}", table.activations_why)
    if output not in table.output:  # the cost's: it chooses the output layer
        return Refusal("cost", f"output activation {output!r}", table.activations_why)
    return None


def _cost(table, plan):
    name = getattr(plan.cost, "name", plan.cost)
    if table.error_forms is not None and plan.error_form not in table.error_forms:
        return Refusal("cost", f"cost {name!r}", table.costs_why)
    if table.cost_names is not None and name not in table.cost_names:
        return Refusal("cost", f"cost {name!r}", table.costs_why)
    return None


def _options(table, plan):
    for option in OPTIONS:
        value = getattr(plan, option)
        if value and option in table.refuses:
            return Refusal(option, f"{option} = {value:g}", table.refuses[option])
    return None


def _dtype(table, dtype):
    if dtype is None:
        return None
    name = numpy.dtype(dtype).name
    if name in table.dtypes:
        return None
    return Refusal("dtype", f"dtype {name}", f"the {table.name} runs {' and '.join(table.dtypes)}")
