"""The compiled CPU epoch's own choices: the uint8 gather, its prefetching and
the BLAS threads.

Whatever they choose, the arithmetic must stay that of the float path (the
epoch against the generic core is tested in test_backends.py)."""

import contextlib
import os

import numpy
import pytest
from numba import njit

from nn_gpu import Network
from nn_gpu.backends import NumpyBackend, measured
from nn_gpu.backends.cpu import small_gemm
from nn_gpu.backends.cpu import threads as cpu_threads
from nn_gpu.backends.cpu.epoch import CompiledEpoch, epoch_kernels, pixel_codes, sgd_epoch
from nn_gpu.backends.cpu.prefetch import prefetch, prefetch_row
from nn_gpu.backends.cpu.records import EpochBuffers, EpochCall, EpochConstants
from nn_gpu.backends.cpu.threads import ThreadChoice, thread_table
from nn_gpu.backends.measured import PREFETCH_ROWS
from nn_gpu.bench.busy import competing_processes


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pixel_codes_give_back_exactly_the_loaded_inputs(mnist_slice, dtype):
    X = mnist_slice[0][0].astype(dtype)
    codes = pixel_codes(X)
    assert codes is not None and codes.dtype == numpy.uint8
    # load_mnist's rule: float32 k / float32 255, then the network's dtype.
    again = (codes.astype(numpy.float32) / numpy.float32(255)).astype(dtype)
    assert numpy.array_equal(again, X)


def test_inputs_that_are_not_such_pixels_keep_the_float_path(mnist_slice):
    X = mnist_slice[0][0][:50]
    assert pixel_codes(numpy.random.default_rng(0).random((5, 784))) is None
    assert pixel_codes(numpy.rint(X * 255.0).astype("float64") / 255) is None  # float64 k/255
    assert pixel_codes(X * 2) is None                         # out of the byte range
    assert pixel_codes(numpy.asfortranarray(X)) is None


def run_epoch(X, Y, order, sizes, batch_size, threads, switch, dtype="float64",
              transposed=False, small_gemm=False, prefetch_rows=0, momentum=0.0):
    """sgd_epoch on fresh parameters (seeded), returning them; ``threads``
    per product where ``switch``; ``transposed``: forward products as
    z^T = w a^T; ``small_gemm``: the shape's kernels where they are chosen
    (they need ``transposed``); ``prefetch_rows``: rows prefetched ahead of
    the gather; ``momentum``: with velocities (else none are passed)."""
    net = Network(sizes, backend="numpy", dtype=dtype, seed=3)
    weights, biases = tuple(w.copy() for w in net.weights), tuple(b.copy() for b in net.biases)
    m = batch_size
    velocities = (tuple((numpy.zeros_like(w), numpy.zeros_like(b)) for w, b in zip(weights, biases))
                  if momentum else None)
    constants = EpochConstants(
        batch_size=m, activation_codes=numpy.zeros(len(sizes) - 1, numpy.int64),
        quadratic_error=True, momentum=momentum, prefetch_rows=prefetch_rows,
        kernels=epoch_kernels(sizes, m, dtype, use=small_gemm), switch_threads=switch)
    buffers = EpochBuffers(
        activations=tuple(numpy.empty((m, n), dtype) for n in sizes),
        deltas=tuple(numpy.empty((m, n), dtype) for n in sizes[1:]),
        targets=numpy.empty((m, sizes[-1]), dtype),
        transposed=tuple(numpy.empty((n, m if transposed else 0), dtype) for n in sizes[1:]),
        velocities=velocities)
    call = EpochCall(eta=0.5, decay=1.0, threads=numpy.asarray(threads, numpy.int32))
    sgd_epoch(X, Y, order, weights, biases, constants, buffers, call)
    return weights + biases


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uint8_gather_trains_bit_for_bit_as_the_float_gather(mnist_slice, dtype):
    (X, labels), _ = mnist_slice
    X = X[:300].astype(dtype)
    Y = numpy.eye(10, dtype=dtype)[labels[:300]]
    order = numpy.random.default_rng(1).permutation(300)
    sizes, zeros = [784, 12, 10], numpy.zeros((2, 3))
    floats = run_epoch(X, Y, order, sizes, 7, zeros, False, dtype)
    codes = run_epoch(pixel_codes(X), Y, order, sizes, 7, zeros, False, dtype)
    for a, b in zip(floats, codes):
        assert numpy.array_equal(a, b)


@pytest.mark.parametrize("pixels", [True, False])
@pytest.mark.parametrize("batch_size", [7, 50])
def test_prefetching_the_gather_trains_bit_for_bit_as_without(mnist_slice, pixels, batch_size):
    """Prefetching changes no value: uint8 codes or float rows, the whole next
    mini-batch ahead (7 rows) or a window inside a larger gather (50), up to
    the shuffle's end (a partial last mini-batch at 7)."""
    (X, labels), _ = mnist_slice
    X, Y = X[:300].astype("float32"), numpy.eye(10, dtype="float32")[labels[:300]]
    order = numpy.random.default_rng(5).permutation(300)
    inputs = pixel_codes(X) if pixels else X
    assert 7 < PREFETCH_ROWS < 50
    plain, prefetched = (run_epoch(inputs, Y, order, [784, 12, 10], batch_size, numpy.ones((2, 3)),
                                   False, "float32", prefetch_rows=rows)
                           for rows in (0, PREFETCH_ROWS))
    for a, b in zip(plain, prefetched):
        assert numpy.array_equal(a, b)


def test_prefetch_compiles_to_prefetch_instructions():
    @njit  # not cached, so that its assembly can be read
    def ask_for_both_ends(row):
        prefetch(row, 0)
        prefetch(row, row.size - 1)

    row = numpy.zeros(784, numpy.uint8)
    ask_for_both_ends(row)
    prefetch_row(row)
    assembly = ask_for_both_ends.inspect_asm(ask_for_both_ends.signatures[0])
    assert "prefetch" in assembly, "llvm.prefetch emitted no instruction"


def test_every_thread_choice_gives_the_same_epoch(mnist_slice):
    (X, labels), _ = mnist_slice
    X, Y = X[:400].astype("float64"), numpy.eye(10)[labels[:400]]
    order = numpy.random.default_rng(2).permutation(400)
    sizes = [784, 40, 10]
    with cpu_threads.blas_threads_kept():
        results = [run_epoch(X, Y, order, sizes, 100, numpy.full((2, 3), t), True)
                   for t in (1, 2, 1)]
    for other in results[1:]:
        for a, b in zip(results[0], other):
            numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def switchable_blas():
    """SciPy's BLAS's threadpoolctl controller, or skip where the epoch
    cannot switch its threads (then it never touches them)."""
    controller, switch = cpu_threads.scipy_blas()
    if switch is None:
        pytest.skip("SciPy's BLAS is not an OpenBLAS whose threads the epoch switches")
    return controller


@pytest.mark.parametrize("raises", [False, True])
def test_blas_threads_kept_gives_the_threads_back(raises):
    controller = switchable_blas()
    before = controller.get_num_threads()
    with pytest.raises(KeyboardInterrupt) if raises else contextlib.nullcontext():
        with cpu_threads.blas_threads_kept():
            controller.set_num_threads(before + 1)
            if raises:
                raise KeyboardInterrupt
    assert controller.get_num_threads() == before


@pytest.mark.parametrize("start, epoch_threads", [(1, 2), (2, 1), (1, None)])
def test_training_leaves_the_blas_threads_as_it_found_them(mnist_slice, start, epoch_threads):
    """The compiled epoch switches SciPy's BLAS per product; after each call
    the process's setting is what it was before, whatever the epoch chose."""
    controller = switchable_blas()
    original = controller.get_num_threads()
    seen = []
    try:
        controller.set_num_threads(start)
        net = Network([784, 40, 10], backend=NumpyBackend(threads=epoch_threads),
                      dtype="float64", seed=0)
        training = (mnist_slice[0][0][:400], mnist_slice[0][1][:400])
        net.sgd(training, 1, 100, 0.5, progress=lambda _: seen.append(controller.get_num_threads()))
        assert controller.get_num_threads() == start
        assert seen and set(seen) == {start}              # between the calls as well
    finally:
        controller.set_num_threads(original)


def test_transposed_forward_products_give_the_same_epoch(mnist_slice):
    (X, labels), _ = mnist_slice
    X, Y = X[:300].astype("float64"), numpy.eye(10)[labels[:300]]
    order = numpy.random.default_rng(3).permutation(300)
    plain, transposed = (run_epoch(X, Y, order, [784, 16, 10], 7, numpy.ones((2, 3)), False,
                                   transposed=t) for t in (False, True))
    for a, b in zip(plain, transposed):
        numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.slow
@pytest.mark.parametrize("dtype, rtol, batch_size, sizes", [
    ("float64", 1e-10, 7, [784, 17, 10]), ("float32", 1e-4, 7, [784, 17, 10]),
    ("float32", 1e-4, 50, [784, 17, 10])])
def test_shape_kernels_give_the_blas_epoch(mnist_slice, dtype, rtol, batch_size, sizes):
    """Forward products (z^T = w a^T at 7 rows, z = a w^T at 50) and updates
    by the kernels of their shape (edge blocks: 17 hidden units, 7 rows, a
    partial last mini-batch) train as the BLAS does, to rounding."""
    (X, labels), _ = mnist_slice
    X, Y = X[:300].astype(dtype), numpy.eye(sizes[-1], dtype=dtype)[labels[:300]]
    order = numpy.random.default_rng(4).permutation(300)
    assert any(own for layer in small_gemm.chosen(sizes, batch_size, dtype) for own in layer)
    blas, kernels = (run_epoch(X, Y, order, sizes, batch_size, numpy.ones((2, 3)), False, dtype,
                               transposed=batch_size <= 32, small_gemm=k) for k in (False, True))
    for a, b in zip(blas, kernels):
        numpy.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-2)
    assert not numpy.array_equal(blas[0], kernels[0])  # the kernels ran: they round differently


def test_threads_argument_trains_as_the_default(mnist_slice):
    training, test = mnist_slice
    nets = [Network([784, 30, 10], backend=NumpyBackend(threads=t), dtype="float64", seed=5)
            for t in (None, 1, 2)]
    for net in nets:
        net.sgd(training, 1, 100, 1.0)
    for net in nets[1:]:
        for a, b in zip(nets[0].weights, net.weights):
            numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_small_products_stay_on_one_thread():
    # (10, 784)·(784, 30): 235,200 = M·N·K, far below the measured threshold.
    assert thread_table([784, 30, 10], 10, 4) == [[1, 1, 1], [1, 1, 1]]
    big = thread_table([784, 100, 10], 1000, 4)
    assert big[0] == [4, 4, 4] and big[1] == [1, 1, 1]        # 78.4 M vs 1 M


def feed(choice, times):
    """Run ``choice`` for as many segments as ``times(threads)`` answers,
    recording what it would measure; return the choices made."""
    made = []
    for seconds in times:
        probe = choice.probe()
        if probe is not None:
            choice.record(probe, seconds(probe))
            made.append(("probe", probe))
        choice.record(choice.best, seconds(choice.best))
        made.append(("run", choice.best))
    return made


def test_thread_choice_takes_many_threads_while_they_pay_and_leaves_them_when_busy():
    choice = ThreadChoice(2)
    quiet = lambda threads: 1.0 / threads                     # noqa: E731
    busy = lambda threads: 1.0 if threads == 1 else 20.0      # noqa: E731
    made = feed(choice, [quiet] * 5)
    assert made[0] == ("run", 1) and ("probe", 2) in made and choice.best == 2
    made = feed(choice, [busy])
    assert choice.best == 1                                   # one slow segment, then back
    made = feed(choice, [busy] * 400)
    probes = [i for i, step in enumerate(made) if step[0] == "probe"]
    gaps = numpy.diff(probes)
    assert len(probes) <= 6 and all(gaps[1:] >= 2 * gaps[:-1] - 2)   # losing probes grow rare


def test_thread_choice_does_not_probe_many_threads_without_idle_cores():
    choice = ThreadChoice(2, idle_cores=lambda: 0.2)
    made = feed(choice, [lambda threads: 1.0 / threads] * 100)
    assert set(made) == {("run", 1)}


def test_idle_cores_reads_the_machines_idle_time(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    ticks = os.sysconf("SC_CLK_TCK")
    stat.write_text(f"cpu  100 0 50 {1000 * ticks} {10 * ticks} 0 0 0 0 0\n")
    monkeypatch.setattr(cpu_threads.IdleCores, "PATH", str(stat))
    clock = iter([0.0, 0.01, 1.0])
    monkeypatch.setattr(cpu_threads.time, "monotonic", lambda: next(clock))
    idle = cpu_threads.IdleCores()
    assert idle() == 0.0                        # 10 ms: too short to tell, counted as busy
    stat.write_text(f"cpu  100 0 50 {1001 * ticks} {10 * ticks + ticks // 2} 0 0 0 0 0\n")
    assert idle() == pytest.approx(1.5)         # 1.5 s idle over 1 s: 1.5 cores
    monkeypatch.setattr(cpu_threads.IdleCores, "PATH", str(tmp_path / "missing"))
    assert cpu_threads.IdleCores()() is None


def test_competing_process_runs_only_inside_the_block():
    with competing_processes(1) as pids:
        os.kill(pids[0], 0)                                   # alive
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_threads_must_be_a_positive_integer(threads):
    from nn_gpu.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="threads must be a positive integer"):
        NumpyBackend(threads=threads)


def test_only_mnist_sized_runs_compile_shape_kernels(monkeypatch):
    """Kernels take seconds to compile: a run on a small set keeps the BLAS
    (no kernel addresses), one on 50,000 examples gets its shape's kernels."""
    from nn_gpu.model import core
    from nn_gpu.model.costs import QuadraticCost

    def kernels_of(train_size):
        plan = core.Plan(cost=QuadraticCost, kinds=("sigmoid", "sigmoid"), eta=1.0,
                         train_size=train_size)
        return CompiledEpoch(plan).constants([784, 30, 10], 10, "float32").kernels

    monkeypatch.setattr(small_gemm, "dot_nt", lambda *shape: type("K", (), {"address": 1})())
    monkeypatch.setattr(small_gemm, "update", lambda *shape: type("K", (), {"address": 2})())
    assert not kernels_of(measured.KERNEL_MIN_EXAMPLES - 1).any()
    assert (kernels_of(50_000) == [[1, 2], [1, 2]]).all()


@pytest.mark.slow
def test_weights_in_fortran_order_train_as_c_ordered_ones(monkeypatch):
    """The native epoch reads parameters as C-ordered memory (BLAS calls and
    shape kernels on raw pointers): weights a user set in Fortran order
    train through the generic core, to the same result. (Before, the
    compiled epoch trained them wrongly: 0.4 apart after one epoch.)"""
    monkeypatch.setattr(measured, "KERNEL_MIN_EXAMPLES", 0)  # kernels for this small set
    rng = numpy.random.default_rng(0)
    X, labels = rng.random((200, 784)), rng.integers(0, 10, 200)
    trained = []
    for order in ("C", "F"):
        net = Network([784, 30, 10], backend="numpy", dtype="float64", seed=1)
        net.weights = [numpy.asarray(w, order=order) for w in net.weights]
        net.sgd((X, labels), 1, 10, 3.0)
        trained.append(net.weights)
    for c, f in zip(*trained):
        numpy.testing.assert_allclose(c, f, rtol=1e-8, atol=1e-10)
