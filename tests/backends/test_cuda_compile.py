"""nn_gpu's CUDA code compiled for the cards users have -- sm_75 (T4), sm_80
(A100), sm_90 (H100/H200) -- on every CI run, without a GPU (``cudacompile``;
how: tests/cuda_compile.py):

* the fused epoch kernel, in configurations covering what the library
  launches (each hidden activation, output and cost, both dtypes, momentum,
  mini-batches 1 to the largest that fits), through NVVM and ptxas at the
  block size the code picks (``cuda_epoch.THREADS`` threads, one block): a
  spill, a block over the register file, or static shared memory over a
  block's 48 KB or over ``cuda_epoch.shared_bytes`` (the estimate that
  decides which trainings the kernel takes) fails;
* every elementwise kernel CupyBackend builds, and cupy_status's probe, for
  each float type and argument layout the backend calls it with (recorded
  through the stand-in, tests/fake_cupy.py), through NVRTC as CuPy compiles
  it: a CUDA C error fails, naming the kernel and the line.

The figures of every compilation are printed at the end of the run, under
"CUDA compile report".
"""

import numpy
import pytest

import cuda_compile
import fake_cupy
from cuda_compile import TARGETS
from nn_gpu import Network, backends
from nn_gpu.backends.cuda import epoch as cuda_epoch

pytestmark = [pytest.mark.cudacompile, pytest.mark.slow]
DTYPES = ("float32", "float64")


def plan(hidden, output, quadratic, momentum):
    """The core's Plan of a training the fused kernel is compiled for."""
    from nn_gpu.model.core import Plan
    from nn_gpu.model.costs import get_cost

    cost = get_cost("quadratic" if quadratic else
                    "log_likelihood" if output == "softmax" else "cross_entropy")
    return Plan(cost=cost, kinds=(hidden, output), eta=1.0, train_size=1,
                momentum=0.9 if momentum else 0.0)


def largest_batch(sizes, dtype, training):
    """The largest mini-batch the fused kernel takes for this training."""
    batch = 1
    while cuda_epoch.unsupported(training, sizes, batch + 1, dtype) is None:
        batch += 1
    return batch


#: name: (sizes, mini-batch (None: the largest that fits), hidden, output, quadratic, dtype,
#: momentum). Between them: every activation, output and cost, both dtypes, momentum or not.
FUSED = {
    "book-f32-mb10": ((784, 30, 10), 10, "sigmoid", "sigmoid", True, "float32", False),
    "cross-entropy-momentum-f32-largest": ((784, 30, 10), None, "sigmoid", "sigmoid", False,
                                           "float32", True),
    "tanh-quadratic-f64-largest": ((784, 30, 10), None, "tanh", "sigmoid", True, "float64",
                                   False),
    "relu-softmax-momentum-f64-mb1": ((784, 100, 10), 1, "relu", "softmax", False, "float64",
                                      True),
    "tanh-softmax-momentum-f64-largest": ((784, 100, 10), None, "tanh", "softmax", False,
                                          "float64", True),
}


def compile_fused(config, target, blocks=1):
    """(ptxas figures, threads, split, blocks used) of the fused kernel for
    ``config`` (a FUSED value with its mini-batch resolved) on ``target``."""
    cuda = cuda_compile.nvvm()
    sizes, batch, hidden, output, quadratic, dtype, momentum = config
    units, used = cuda_epoch.spread(sizes[1], blocks)
    threads = cuda_epoch.THREADS
    split = cuda_epoch.split(batch, units, threads)
    with cuda_compile.pretend_device(cuda, (int(target[3]), int(target[4]))):
        from nn_gpu.backends.cuda.kernel import make_kernel
        from nn_gpu.backends.cuda.records import KernelConstants

        kernel = make_kernel(KernelConstants(
            *sizes, batch_size=batch, hidden_activation=hidden, output_activation=output,
            quadratic_error=quadratic, dtype=dtype, momentum=momentum, threads=threads,
            split=split, blocks=used))
        ptx, _ = cuda.compile_ptx(kernel.py_func, cuda_compile.fused_signature(dtype),
                                  cc=(int(target[3]), int(target[4])))
    return cuda_compile.assemble(ptx, target, relocatable=used > 1), threads, split, used


def report_line(what, target, figures, threads, extra=""):
    return (f"{what} | {target} ({TARGETS[target]}) | {threads} threads: "
            f"{figures['registers']} registers "
            f"({cuda_compile.registers_per_block(figures['registers'], threads)} of "
            f"{cuda_compile.REGISTERS_PER_BLOCK} a block) | {figures['smem']} B shared | "
            f"spills {figures['spill_stores']}/{figures['spill_loads']} B, "
            f"stack {figures['stack']} B{extra}")


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", FUSED)
def test_fused_kernel_fits_the_card(record_property, name, target):
    sizes, batch, hidden, output, quadratic, dtype, momentum = FUSED[name]
    training = plan(hidden, output, quadratic, momentum)
    batch = batch or largest_batch(sizes, dtype, training)
    assert cuda_epoch.unsupported(training, sizes, batch, dtype) is None  # the library runs it
    config = (sizes, batch, hidden, output, quadratic, dtype, momentum)
    figures, threads, split, _ = compile_fused(config, target)
    model = cuda_epoch.shared_bytes(sizes, batch, dtype)
    record_property("cuda_compile", report_line(
        f"fused {name} (mini-batch {batch}, split {split})", target, figures, threads,
        f" | shared_bytes() {model} B"))
    assert threads <= cuda_compile.MAX_THREADS_PER_BLOCK
    assert figures["spill_stores"] == figures["spill_loads"] == 0, figures
    assert figures["registers"] <= cuda_compile.MAX_REGISTERS_PER_THREAD
    assert cuda_compile.registers_per_block(figures["registers"], threads) \
        <= cuda_compile.REGISTERS_PER_BLOCK, f"a block of {threads} cannot launch: {figures}"
    assert figures["smem"] <= min(cuda_epoch.SHARED_BYTES,
                                  cuda_compile.STATIC_SHARED_PER_BLOCK), figures
    assert figures["smem"] <= model, f"shared_bytes() says {model} B, ptxas {figures['smem']}"


@pytest.mark.parametrize("target", TARGETS)
def test_multi_block_variant_compiles_and_a_block_fits(record_property, target):
    """The variant with one hidden unit per block (a cooperative grid; timed
    by bench/gpu_peers.py, not launched by the library): it must compile and
    a block must fit the register file; its spills and how many of its
    blocks a card holds at once (all must, for the grid barrier) are
    reported, for the decision to switch it on."""
    config = ((784, 30, 10), 10, "sigmoid", "sigmoid", True, "float32", False)
    figures, threads, _, blocks = compile_fused(config, target, blocks=30)
    resident = cuda_compile.resident_blocks(target, figures["registers"], threads,
                                            figures["smem"])
    record_property("cuda_compile", report_line(
        f"fused book-f32-mb10 x {blocks} blocks (grid variant)", target, figures, threads,
        f" | {resident} blocks resident on a {TARGETS[target]}"))
    assert cuda_compile.registers_per_block(figures["registers"], threads) \
        <= cuda_compile.REGISTERS_PER_BLOCK, figures


# ------------------------------------------------------------- CuPy's kernels
def tour(backend, dtype):
    """Every CupyBackend method that launches a kernel, on small arrays of
    ``dtype``, then a short training (momentum, L1, L2, dropout) for the
    layouts a real epoch passes."""
    rng = numpy.random.default_rng(0)

    def arrays(*shapes):
        return [rng.standard_normal(shape).astype(dtype) for shape in shapes]

    a_in, w, b, out, a, y, delta = arrays((4, 5), (3, 5), (3,), (4, 3), (4, 3), (4, 3), (4, 3))
    backend.sigmoid(a, out)
    for kind in ("sigmoid", "tanh", "relu"):
        backend.linear_activation(a_in, w, b, out, kind)
        backend.times_derivative(kind, a, out)
    backend.quadratic_output_error(a, y, 0.5, out)
    backend.difference_output_error(a, y, 0.5, out)
    p, g, v = arrays((3, 5), (3, 5), (3, 5))
    backend.sgd_update(p, g, decay=0.99, l1=0.01)
    backend.sgd_update(p, g, v, momentum=0.9, decay=0.99, l1=0.01)
    grads, velocities = arrays((3, 5), (3,)), arrays((3, 5), (3,))
    backend.update_layer(delta, a_in, w, b, *grads, decay=0.99, l1=0.01)
    backend.update_layer(delta, a_in, w, b, *grads, *velocities, momentum=0.9, decay=0.99,
                         l1=0.01)
    backend.dropout_mask(backend.random_generator(1), 0.3, out)
    X, labels = rng.random((9, 5)).astype(dtype), rng.integers(0, 3, 9)
    net = Network([5, 4, 3], cost="log_likelihood", backend=backend, dtype=dtype, seed=1)
    net.sgd((X, labels), 1, 4, 0.5, momentum=0.5, l1=0.1, l2=0.1, dropout=0.2)


@pytest.fixture(scope="module")
def kernel_calls():
    """{(in_params, out_params, operation, name, options): {recorded calls}} of
    every kernel CupyBackend builds (and cupy_status's probe), from the tour
    in both dtypes through the stand-in; and the names CupyBackend built."""
    calls = {}

    class Recording(fake_cupy.ElementwiseKernel):
        """Records each call; a body the stand-in cannot read (a typo) writes
        zeros instead, so that NVRTC gets to say what is wrong with it."""

        def __init__(self, in_params, out_params, operation, name="kernel", **kwargs):
            self.key = (in_params, out_params, operation, name, tuple(kwargs.get("options", ())))
            calls.setdefault(self.key, set())
            try:
                super().__init__(in_params, out_params, operation, name, **kwargs)
            except SyntaxError:
                self.in_params = fake_cupy._params(in_params)
                self.statements = None

        def __call__(self, *args):
            calls[self.key].add(cuda_compile.recorded(args))
            if self.statements is not None:
                try:
                    return super().__call__(*args)
                except SyntaxError:
                    self.statements = None
            outputs = args[len(self.in_params):]
            for out in outputs:
                out[...] = 0
            return outputs[0] if len(outputs) == 1 else outputs

    with pytest.MonkeyPatch.context() as patch:
        fake_cupy.install(patch)
        patch.setattr(fake_cupy, "ElementwiseKernel", Recording)
        from nn_gpu.backends.cuda.cupy_backend import CupyBackend

        built = {key[3] for key in calls}
        CupyBackend()
        built = {key[3] for key in calls} - built
        for dtype in DTYPES:
            tour(CupyBackend(), dtype)
        assert backends.cupy_status()[0]  # the probe kernel, on the stand-in
    return calls, built


def call_dtype(call):
    return next(a.dtype.name for a in call if a is not None)


def test_the_tour_calls_every_kernel_the_backend_builds_in_both_dtypes(kernel_calls):
    calls, built = kernel_calls
    assert len(built) >= 14, built
    for key, seen in calls.items():
        if key[3] in built:
            assert {call_dtype(call) for call in seen} == set(DTYPES), (key[3], seen)


def layout(call):
    """A recorded call in a few words: its arrays' dtype and how CuPy indexes them."""
    arrays = [a for a in call if a is not None]
    shape = numpy.broadcast_shapes(*(a.shape for a in arrays))
    merged = all(cuda_compile.spans(a, shape) for a in arrays)
    return f"{arrays[0].dtype.name}, {'contiguous' if merged else 'broadcast'}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_cupy_kernels_compile(record_property, kernel_calls, dtype):
    """Each kernel, for each distinct source its calls in ``dtype`` generate,
    compiled for every target."""
    cupy = cuda_compile.real_cupy()[0]
    failures = []
    for (in_params, out_params, operation, name, options), seen in kernel_calls[0].items():
        kernel = cupy.ElementwiseKernel(in_params, out_params, operation, name)
        sources = {cuda_compile.cupy_source(kernel, call): layout(call)
                   for call in seen if call_dtype(call) == dtype}
        for source, described in sources.items():
            registers = []
            for target in TARGETS:
                try:
                    figures = cuda_compile.nvrtc_compile(source, target, options)
                except cupy.cuda.compiler.CompileException as exc:
                    failures.append(f"{name} ({described}) for {target}:\n{exc}")
                    continue
                registers.append(str(figures["registers"]))
                if figures["spill_stores"] or figures["spill_loads"]:
                    failures.append(f"{name} ({described}) spills on {target}: {figures}")
            record_property("cuda_compile", f"cupy {name} ({described}) | registers "
                            f"{'/'.join(registers)} on {'/'.join(TARGETS)} | no shared memory")
    assert not failures, "\n\n".join(failures)
