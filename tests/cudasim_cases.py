"""The fused GPU epoch's kernel under Numba's CUDA simulator, against the
generic core on NumPy; run by tests/test_cuda_epoch.py in a subprocess
(the simulator must be chosen before ``numba.cuda`` is first imported, and
the test process may have imported the real one).

    NUMBA_ENABLE_CUDASIM=1 python tests/cudasim_cases.py   -> JSON {case: max |error|}

Every case trains 2 epochs (two launches, two shuffles) of a tiny network on
7 examples in mini-batches of 3 (or 2, or 1), so each epoch ends with a
partial mini-batch, and reports the largest difference of any parameter.
Between them the cases run every variant the kernel factory makes: each
hidden activation with each cost (so each output), float32 and float64,
momentum, L1, L2, one or several first-layer threads per dot product, and
the hidden units spread over several blocks. Those blocks are virtual ones
inside one real block, as the simulator runs a grid's blocks one after
another; the grid barrier of a real multi-block launch is compiled (not
run) by tests/backends/test_cuda_compile.py.
"""

import json
import os
import sys

os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import numpy  # noqa: E402

from nn_gpu import Network
from nn_gpu.backends import NumpyBackend  # noqa: E402
from nn_gpu.backends.cuda.epoch import FusedEpoch  # noqa: E402
from nn_gpu.model import core  # noqa: E402
from nn_gpu.model.costs import get_cost  # noqa: E402

SIZES = [5, 4, 3]
COSTS = ("quadratic", "cross_entropy", "log_likelihood")


def kernel_against_core(hidden="sigmoid", cost="quadratic", dtype="float64", batch=3, threads=8,
                        sizes=SIZES, blocks=1, **settings):
    """Max |fused - core| over the parameters after 2 epochs; with ``blocks``,
    the hidden units spread over that many (virtual) blocks."""
    rng = numpy.random.default_rng(0)
    n = 7
    X = rng.random((n, sizes[0])).astype(dtype)
    if sizes[-1] == 1:  # one output neuron: the target is the 0/1 label itself
        Y = rng.integers(0, 2, (n, 1)).astype(dtype)
    else:
        Y = numpy.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], n)]
    weights = [rng.standard_normal((o, i)).astype(dtype) for i, o in zip(sizes[:-1], sizes[1:])]
    biases = [rng.standard_normal(o).astype(dtype) for o in sizes[1:]]
    cost_class = get_cost(cost)
    plan = core.Plan(cost=cost_class, kinds=(hidden, cost_class.output_activation), eta=0.7,
                     train_size=n, **settings)
    backend = NumpyBackend()
    results = []
    for fused in (False, True):
        w, b = [a.copy() for a in weights], [a.copy() for a in biases]
        workspace = core.Workspace(backend, sizes, batch, numpy.dtype(dtype),
                                   momentum=plan.momentum > 0)
        epoch = FusedEpoch(threads=threads, blocks=blocks, virtual=True)
        for e in range(2):
            order = numpy.random.default_rng(e).permutation(n)
            if fused:
                assert epoch.kernel(plan, sizes, batch, dtype) is not None
                epoch(plan, w, b, X, Y, order, batch, workspace)
            else:
                core.train_epoch(backend, plan, w, b, X, Y, order, batch, workspace)
        results.append(w + b)
    return max(float(numpy.max(numpy.abs(f - c))) for f, c in zip(*results))


def network_on_fake_cupy():
    """Network.sgd on CupyBackend (the CuPy stand-in, the fused epoch under
    the simulator) against the same training on NumPy: the glue from the
    epoch runner to the kernel (arguments, velocities, segments)."""
    import fake_cupy

    sys.modules["cupy"], sys.modules["cupy.cublas"] = fake_cupy, fake_cupy.cublas
    from nn_gpu.backends.cuda.cupy_backend import CupyBackend

    generic_epoch = core.train_epoch

    def only_on_numpy(backend, *args):  # the fused epoch must not fall back to the core
        assert not isinstance(backend, CupyBackend), "the CuPy run left the fused epoch"
        return generic_epoch(backend, *args)

    core.train_epoch = only_on_numpy
    nets = []
    for backend in (CupyBackend(), NumpyBackend()):
        rng = numpy.random.default_rng(3)
        X, labels = rng.random((11, 5)), rng.integers(0, 3, 11)
        net = Network(SIZES, cost="log_likelihood", activation="relu", backend=backend,
                      dtype="float64", seed=2)
        net.sgd((X, labels), 2, 4, 0.5, momentum=0.5, l2=1.0)
        nets.append(net)
    return max(float(numpy.max(numpy.abs(f - c)))
               for f, c in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases))


def cases():
    """{name: (function, kwargs)}."""
    table = {f"{hidden}-{cost}": (kernel_against_core, {"hidden": hidden, "cost": cost})
             for hidden in ("sigmoid", "tanh", "relu") for cost in COSTS}
    table.update({
        "l2-momentum": (kernel_against_core, {"cost": "cross_entropy", "l2": 0.5,
                                              "momentum": 0.8}),
        "l1-l2": (kernel_against_core, {"hidden": "relu", "l1": 0.3, "l2": 0.2}),
        "l1-momentum": (kernel_against_core, {"hidden": "tanh", "cost": "log_likelihood",
                                              "l1": 0.3, "momentum": 0.6}),
        "split-dot-products": (kernel_against_core, {"hidden": "tanh", "batch": 2,
                                                     "threads": 32}),
        "float32": (kernel_against_core, {"cost": "cross_entropy", "dtype": "float32"}),
        "4-blocks-momentum": (kernel_against_core, {"blocks": 4, "threads": 4, "momentum": 0.7,
                                                    "l2": 0.4}),
        "2-uneven-blocks": (kernel_against_core, {"hidden": "relu", "cost": "log_likelihood",
                                                  "sizes": [5, 5, 3], "blocks": 2, "l1": 0.2}),
        "2-blocks-split-float32-softmax-momentum": (
            kernel_against_core, {"hidden": "tanh", "cost": "log_likelihood", "dtype": "float32",
                                  "blocks": 2, "threads": 16, "batch": 2, "momentum": 0.5}),
        "split-wider-than-the-inputs": (kernel_against_core, {"batch": 1, "threads": 64,
                                                              "cost": "cross_entropy"}),
        "network-on-fake-cupy": (network_on_fake_cupy, {}),
        "one-output-quadratic": (kernel_against_core, {"sizes": [5, 4, 1]}),
        "one-output-cross_entropy": (kernel_against_core, {"sizes": [5, 4, 1], "blocks": 2,
                                                           "cost": "cross_entropy",
                                                           "momentum": 0.5}),
    })
    return table


if __name__ == "__main__":
    print(json.dumps({name: function(**kwargs) for name, (function, kwargs) in cases().items()}))
