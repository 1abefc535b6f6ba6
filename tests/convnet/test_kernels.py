"""The compiled conv-pool passes (:mod:`nn_gpu.convnet.kernels`) against
their NumPy twins: each kernel against the same step written with NumPy
arrays, and the whole compiled layer against the lowered one
(``ConvPoolLayer._forward_lowered`` / ``_gradients_lowered``, the CuPy
backend's), in float64 to rounding and in float32 to its precision, on one
thread and on two, in one block and in many."""

import gc
import os
import signal
import threading
import time

import numpy
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from nn_gpu.backends import NumpyBackend
from nn_gpu.convnet import ConvPoolLayer, kernels

LAYERS = {
    "ch6 first": lambda: ConvPoolLayer((1, 28, 28), (20, 1, 5, 5)),
    "ch6 second, relu": lambda: ConvPoolLayer((20, 12, 12), (40, 20, 5, 5), activation="relu"),
    # non-square, a conv row and column pooling drops, tanh
    "ragged, tanh": lambda: ConvPoolLayer((2, 13, 11), (3, 2, 3, 3), activation="tanh"),
    "pool 3": lambda: ConvPoolLayer((1, 9, 9), (2, 1, 4, 4), pool=3, activation="relu"),
    "pool 1": lambda: ConvPoolLayer((3, 5, 4), (4, 3, 2, 2), pool=1),
    "many maps, pool 3": lambda: ConvPoolLayer((4, 11, 10), (3, 4, 3, 3), pool=3),
}
TOLERANCE = {"float64": 1e-12, "float32": 2e-5}


def parameters(layer, dtype, seed=0):
    rng = numpy.random.default_rng(seed)
    w, b = layer.initial_parameters(rng)
    return w.astype(dtype), b.astype(dtype), rng


def images(layer, m, dtype, rng, ties=False):
    """m random input rows; with ``ties``, small integers, so that pooling
    windows hold equal maxima (the first one counts)."""
    x = rng.integers(0, 3, (m, layer.n_in)) if ties else rng.random((m, layer.n_in))
    return x.astype(dtype)


def conv_outputs(layer, x, w):
    """Z (m, F, Hc, Wc) by NumPy: the correlation over the positions pooling reads."""
    channels, height, width = layer.image_shape
    _, _, hc, wc, _, _ = kernels.dims(layer)[4:]
    windows = sliding_window_view(x.reshape(-1, channels, height, width), w.shape[2:],
                                  axis=(2, 3))[:, :, :hc, :wc]     # (m, C, Hc, Wc, k, k)
    return numpy.einsum("ncijpq,fcpq->nfij", windows, w)


def close(got, expected, dtype):
    scale = max(1.0, float(numpy.abs(expected).max(initial=0.0)))
    numpy.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE[dtype] * scale)


# ------------------------------------------------------------ each kernel
@pytest.mark.slow
@pytest.mark.parametrize("numpy_blas", [True, False], ids=["NumPy's BLAS", "SciPy's BLAS"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("ta, tb", [("N", "N"), ("T", "N"), ("N", "T"), ("T", "T")])
def test_gemm_is_numpy_matmul(ta, tb, dtype, numpy_blas):
    """Column-major op(A) op(B) with alpha and beta, as NumPy computes it on
    the C-ordered transposes, through either BLAS."""
    if numpy_blas and not kernels.USE_NUMPY_BLAS:
        pytest.skip("NumPy has no ILP64 OpenBLAS here")
    rng = numpy.random.default_rng(1)
    M, N, K = 7, 5, 9
    A = rng.random((M, K) if ta == "T" else (K, M)).astype(dtype)   # C order = column-major A^T
    B = rng.random((K, N) if tb == "T" else (N, K)).astype(dtype)
    C = rng.random((N, M)).astype(dtype)
    op_a = A if ta == "T" else A.T              # the column-major op(A), M x K, in NumPy
    op_b = B if tb == "T" else B.T
    expected = (0.5 * op_a @ op_b + 2.0 * C.T).T
    kernels.gemm(ord(ta), ord(tb), M, N, K, 0.5, A, A.shape[1], B, B.shape[1], 2.0, C, M,
                 numpy_blas)
    close(C, expected, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", LAYERS)
def test_im2col_holds_every_window(name, dtype):
    layer = LAYERS[name]()
    _, _, rng = parameters(layer, dtype)
    x = images(layer, 5, dtype, rng)
    C, H, W, _, k, _, hc, wc, _, _ = kernels.dims(layer)
    nb, n0 = 3, 1
    PT = numpy.full((C * k * k, nb * hc * wc + 4), -1.0, dtype)  # wider than needed, as scratch
    kernels.im2col(x, n0, nb, kernels.dims(layer), PT)
    windows = sliding_window_view(x.reshape(-1, C, H, W), (k, k), axis=(2, 3))[n0:n0 + nb, :,
                                                                             :hc, :wc]
    expected = windows.transpose(1, 4, 5, 0, 2, 3).reshape(C * k * k, -1)  # (c,p,q) x (n,i,j)
    numpy.testing.assert_array_equal(PT[:, :nb * hc * wc], expected)
    assert (PT[:, nb * hc * wc:] == -1).all()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", LAYERS)
def test_col2im_sums_each_pixels_windows(name, dtype):
    """col2im adds every window's entry back onto the pixel it was read
    from (im2col's adjoint), and writes only its own rows."""
    layer = LAYERS[name]()
    _, _, rng = parameters(layer, dtype)
    C, H, W, _, k, _, hc, wc, _, _ = kernels.dims(layer)
    nb, n0 = 2, 1
    G = rng.random((C * k * k, nb * hc * wc)).astype(dtype)
    gx = numpy.full((4, layer.n_in), 7.0, dtype)
    kernels.col2im(G, n0, nb, kernels.dims(layer), gx)
    expected = numpy.zeros((nb, C, H, W))
    G6 = G.astype(float).reshape(C, k, k, nb, hc, wc).transpose(3, 0, 4, 5, 1, 2)
    for p in range(k):                        # the windows overlap: add one offset at a time
        for q in range(k):
            expected[:, :, p:p + hc, q:q + wc] += G6[..., p, q]
    close(gx[n0:n0 + nb], expected.reshape(nb, -1), dtype)
    assert (gx[0] == 7).all() and (gx[n0 + nb:] == 7).all()


def numpy_pool(layer, Z, b):
    """(max over each window + b, the window position of its first maximum), by NumPy."""
    F, hp, wp = layer.output_shape
    pool = layer.pool
    m = Z.shape[0]
    windows = Z.reshape(m, F, hp, pool, wp, pool).transpose(0, 1, 2, 4, 3, 5).reshape(
        m, F, hp, wp, pool * pool)
    where = numpy.argmax(windows, axis=-1)      # the first maximum, row-major in the window
    top = numpy.take_along_axis(windows, where[..., None], axis=-1)[..., 0]
    return (top + b[:, None, None]).reshape(m, -1), where.reshape(m, -1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", LAYERS)
def test_pool_forward_takes_each_windows_first_maximum(name, dtype):
    layer = LAYERS[name]()
    w, b, rng = parameters(layer, dtype)
    x = images(layer, 4, dtype, rng, ties=True)
    d = kernels.dims(layer)
    F = d[3]
    Z = conv_outputs(layer, x.astype(float), w.astype(float)).astype(dtype)
    ZT = numpy.ascontiguousarray(Z.transpose(1, 0, 2, 3).reshape(F, -1))   # (F, (n, i, j))
    out = numpy.zeros((5, layer.n_out), dtype)
    where = numpy.full((5, layer.n_out), -1, numpy.int8)
    kernels.pool_forward(ZT, 1, 4, d, b, out, where)
    expected, positions = numpy_pool(layer, Z, b)
    numpy.testing.assert_array_equal(where[1:], positions)
    numpy.testing.assert_array_equal(out[1:], expected.astype(dtype))
    assert (where[0] == -1).all() and (out[0] == 0).all()


@pytest.mark.parametrize("name", LAYERS)
def test_pool_backward_puts_delta_where_the_maximum_was(name):
    layer = LAYERS[name]()
    _, _, rng = parameters(layer, "float64")
    d = kernels.dims(layer)
    F, hp, wp = layer.output_shape
    pool, hc, wc = layer.pool, d[6], d[7]
    m = 3
    where = rng.integers(0, pool * pool, (m, layer.n_out)).astype(numpy.int8)
    delta = rng.random((m, layer.n_out))
    GZT = numpy.full((F, m * hc * wc + 2), 9.0)
    kernels.pool_backward(delta, where, 0, m, d, GZT)
    expected = numpy.zeros((m, F, hp, pool, wp, pool))
    r, s = numpy.divmod(where.reshape(m, F, hp, wp), pool)
    n, f, I, J = numpy.indices((m, F, hp, wp))
    expected[n, f, I, r, J, s] = delta.reshape(m, F, hp, wp)
    expected = expected.reshape(m, F, hc, wc).transpose(1, 0, 2, 3).reshape(F, -1)
    numpy.testing.assert_array_equal(GZT[:, :m * hc * wc], expected)
    assert (GZT[:, m * hc * wc:] == 9).all()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_activate_rows_is_the_backends_activation(activation, dtype):
    rng = numpy.random.default_rng(2)
    a = (rng.normal(0.0, 20.0, (4, 37))).astype(dtype)
    a[1, :3] = [0.0, 100.0, -100.0]
    before = a.copy()
    expected = NumpyBackend().activate(activation, a.copy(), out=numpy.empty_like(a))
    kernels.activate_rows(kernels.ACTIVATIONS[activation], a, 1, 3)
    close(a[1:3], expected[1:3], dtype)
    numpy.testing.assert_array_equal(a[[0, 3]], before[[0, 3]])


# --------------------------------------------------------- the whole layer
def both_ways(layer, m, dtype, threads, want_input=True, seed=3):
    """(compiled, lowered): each one's (a, grad_w, grad_b, grad_in) for the same problem."""
    w, b, rng = parameters(layer, dtype, seed)
    x = images(layer, m, dtype, rng)
    delta = rng.normal(size=(m, layer.n_out)).astype(dtype)
    backend = NumpyBackend(threads=threads)
    results = []
    for forward, gradients in ((layer._forward_compiled, layer._gradients_compiled),
                               (layer._forward_lowered, layer._gradients_lowered)):
        a, cache = forward(backend, w, b, x)
        grad_w, grad_b = numpy.full_like(w, numpy.nan), numpy.full_like(b, numpy.nan)
        grad_in = gradients(backend, w, cache, delta.copy(), grad_w, grad_b, want_input)
        results.append((a, grad_w, grad_b, grad_in))
    return results


@pytest.mark.slow
@pytest.mark.parametrize("backprop", ["as chosen", "sparse", "products"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", LAYERS)
def test_the_compiled_layer_is_the_lowered_one(monkeypatch, name, dtype, threads, backprop):
    """Forward and backward, by each of the two backprop kernels
    (:func:`~nn_gpu.convnet.kernels.backward_sparse_range`, from the pooled
    units, and :func:`~nn_gpu.convnet.kernels.backward_range`, through the
    im2col products) and by the one the layer's shape chooses."""
    runs = {"sparse": 0, "products": 10**9}
    if backprop in runs:
        monkeypatch.setattr(kernels, "SPARSE_MIN_RUN", runs[backprop])
    layer = LAYERS[name]()
    compiled, lowered = both_ways(layer, 7, dtype, threads)
    for got, expected in zip(compiled, lowered):
        close(got, expected, dtype)


def test_sparse_backprop_where_rows_are_long():
    dtype = numpy.dtype("float32")
    with kernels.blas_threads() as blas:
        assert kernels.plan(LAYERS["ch6 second, relu"](), dtype, 3, 1, blas).sparse
        assert not kernels.plan(LAYERS["ch6 first"](), dtype, 3, 1, blas).sparse


def test_relus_zeros_are_skipped_exactly():
    """δ = 0 (ReLU's inactive units) contributes nothing, and skipping it
    gives what the products give."""
    layer = LAYERS["many maps, pool 3"]()
    w, b, rng = parameters(layer, "float64")
    x = images(layer, 4, "float64", rng)
    delta = rng.normal(size=(4, layer.n_out)) * (rng.random((4, layer.n_out)) < 0.3)
    backend = NumpyBackend(threads=1)
    results = []
    for forward, gradients in ((layer._forward_compiled, layer._gradients_compiled),
                               (layer._forward_lowered, layer._gradients_lowered)):
        _, cache = forward(backend, w, b, x)
        grad_w, grad_b = numpy.empty_like(w), numpy.empty_like(b)
        results.append((grad_w, grad_b, gradients(backend, w, cache, delta, grad_w, grad_b,
                                                  True)))
    for got, expected in zip(*results):
        close(got, expected, "float64")


@pytest.mark.parametrize("m", [1, 2, 5, 11])
def test_many_blocks_and_uneven_halves(monkeypatch, m):
    """Blocks of one or two images (a block smaller than the budget allows),
    mini-batches that split unevenly between two threads."""
    layer = ConvPoolLayer((2, 13, 11), (3, 2, 3, 3))
    monkeypatch.setattr(kernels, "BLOCK_BYTES", layer.patch_bytes(8) * 2 - 1)
    monkeypatch.setattr(kernels, "SPARSE_MIN_RUN", 10**9)
    assert kernels.block_images(layer, 8) == 1
    for threads in (1, 2):
        compiled, lowered = both_ways(layer, m, "float64", threads)
        for got, expected in zip(compiled, lowered):
            close(got, expected, "float64")


@pytest.mark.parametrize("name", ["ch6 first", "ch6 second, relu"])
def test_no_input_gradient_when_not_wanted(name):
    layer = LAYERS[name]()
    compiled, lowered = both_ways(layer, 4, "float64", 1, want_input=False)
    assert compiled[3] is None and lowered[3] is None
    for got, expected in zip(compiled[:3], lowered[:3]):
        close(got, expected, "float64")


def test_the_chunks_cover_the_images_once():
    numpy.testing.assert_array_equal(kernels.chunk_ranges(10, 4), [[0, 2], [2, 5], [5, 7],
                                                                    [7, 10]])
    numpy.testing.assert_array_equal(kernels.chunk_ranges(3, 3), [[0, 1], [1, 2], [2, 3]])
    layer = LAYERS["ch6 first"]()                       # two images a block
    dtype = numpy.dtype("float32")
    with kernels.blas_threads() as blas:
        plan = kernels.plan(layer, dtype, 5, 2, blas)
        assert plan.helper and len(plan.patches) == 2
        numpy.testing.assert_array_equal(plan.blocks, [[0, 2], [2, 4], [4, 5]])
        assert plan.chunks.shape == (4, 2)
        assert not kernels.plan(layer, dtype, 5, 1, blas).helper
        assert not kernels.plan(layer, dtype, 1, 2, blas).helper


def test_helped_rule(monkeypatch):
    monkeypatch.setattr(kernels, "usable_cpus", lambda: 2)
    big = kernels.MIN_SPLIT_FLOPS
    assert kernels.helped(None, 2, 10, big)
    assert not kernels.helped(None, 1, 10, big)          # the BLAS set to one thread
    assert not kernels.helped(None, 2, 10, big - 1)      # too little work
    assert not kernels.helped(None, 2, 1, big)           # one image
    assert not kernels.helped(1, 2, 10, big)
    assert kernels.helped(2, 1, 10, 1)
    assert kernels.helped(None, 2, 10, big, spare=2.0)
    assert not kernels.helped(None, 2, 10, big, spare=1.0)  # a core taken by another process
    assert kernels.helped(2, 2, 10, big, spare=0.0)         # the backend's threads: as set
    monkeypatch.setattr(kernels, "usable_cpus", lambda: 1)  # limited to one CPU
    assert not kernels.helped(None, 2, 10, big)


@pytest.mark.skipif(kernels.SpareCores.reading() is None, reason="reads Linux's /proc/stat")
def test_spare_cores_see_a_spinning_process():
    """A process spinning on a core (nn_gpu.bench.busy's) leaves at most
    the machine's other CPUs spare: the helper is not offered a share."""
    from nn_gpu.bench.busy import competing_processes

    spare = kernels.SpareCores()
    assert spare() is None                         # nothing to compare with yet
    with competing_processes(1):
        spare.checked = -1.0
        spare()
        time.sleep(0.3)
        spare.checked = -1.0
        seen = spare()
    cpus = os.cpu_count()
    assert seen is not None and seen <= cpus - 0.5
    if cpus == 2:
        assert not kernels.helped(None, 2, 10, kernels.MIN_SPLIT_FLOPS, seen)


@pytest.mark.parametrize("name", ["ch6 first", "ch6 second, relu"])
def test_the_threads_never_change_a_bit(name):
    """Each backward chunk sums into its own ∂C/∂w whichever thread takes
    it, so one thread and two give the same numbers, bit for bit."""
    layer = LAYERS[name]()
    results = [both_ways(layer, 9, "float32", threads)[0] for threads in (1, 2, 2, None)]
    for other in results[1:]:
        for got, expected in zip(other, results[0]):
            numpy.testing.assert_array_equal(got, expected)


def helper():
    state = kernels._state()
    if state.helper is None:
        state.helper = kernels.Helper()
    return state.helper


def test_a_helper_without_a_cpu_is_not_waited_for():
    """The helper is stuck in another job (as if it never got a core): the
    call does every chunk itself and returns; the helper, freed later,
    finds its share withdrawn and does nothing."""
    stuck, freed = threading.Event(), threading.Event()
    started = numpy.zeros(1, numpy.int64)
    helper().post(lambda: (stuck.set(), freed.wait(30)), (), started)
    assert stuck.wait(10) and started[0] == 1
    layer = LAYERS["ch6 second, relu"]()
    compiled, lowered = both_ways(layer, 6, "float32", 2)     # would hang if it waited
    freed.set()
    helper().wait()                                           # the stuck job, done now
    for got, expected in zip(compiled, lowered):
        close(got, expected, "float32")


def test_an_error_on_the_helper_thread_reaches_the_caller():
    started = threading.Event()

    def job(on_helper):
        if on_helper:
            started.set()
            raise ValueError("on the helper")
        assert started.wait(10)     # the caller finishes only after the helper started

    with pytest.raises(ValueError, match="on the helper"):
        kernels.run(job, [(False,), (True,)])
    kernels.run(lambda on_helper: None, [(False,), (False,)])    # the helper still works


def test_swap_if():
    state = numpy.zeros(1, numpy.int64)
    assert kernels.swap_if(state, 0, 2) == 0 and state[0] == 2
    assert kernels.swap_if(state, 0, 1) == 2 and state[0] == 2


def test_the_blas_threads_are_restored():
    switch = kernels.blas_threads()
    if not switch.scipy:
        pytest.skip("SciPy's BLAS is not an OpenBLAS that can be switched")
    get = switch.switches[0][0]                 # SciPy's
    before = get()
    with switch:
        assert [get() for get, _ in switch.switches] == [1] * len(switch.switches)
        with switch:                    # nested: the outer block's exit restores
            pass
        assert get() == 1 and switch.previous == before
    assert get() == before


def conv_helpers():
    return sum(thread.name == "nn_gpu-conv" for thread in threading.enumerate())


def test_a_helper_thread_ends_with_the_thread_that_owns_it():
    """Each Python thread that runs a two-thread call gets its own helper
    (nn-gpu serve answers every request on a new thread): once that thread
    is gone, so is its helper."""
    def call():
        started = threading.Event()
        kernels.run(lambda on_helper: started.set() if on_helper else started.wait(10),
                    [(False,), (True,)])
        assert started.is_set()

    before = conv_helpers()
    for _ in range(5):
        thread = threading.Thread(target=call)
        thread.start()
        thread.join()
    deadline = time.monotonic() + 10
    while conv_helpers() > before and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert conv_helpers() == before


class Interrupted(Exception):
    pass


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1") or
                    threading.current_thread() is not threading.main_thread(),
                    reason="needs a signal delivered to the main thread (POSIX)")
def test_an_interrupted_wait_still_waits_for_the_helpers_call():
    """An interrupt (a signal handler raising, as Ctrl-C does) while the
    caller waits is raised only once the helper's call is over -- it writes
    into the caller's arrays -- and leaves no completion behind that would
    end the next wait before its own call."""
    done, freed = [], threading.Event()
    started = numpy.zeros(1, numpy.int64)
    helper().post(lambda: (freed.wait(10), time.sleep(0.1), done.append("first")), (), started)
    while started[0] != 1:
        time.sleep(0.01)

    def interrupt(signum, frame):
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        threading.Timer(0.3, freed.set).start()
        with pytest.raises(Interrupted):
            helper().wait()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert done == ["first"]
    started[0] = 0
    helper().post(lambda: (time.sleep(0.2), done.append("second")), (), started)
    while started[0] != 1:
        time.sleep(0.01)
    helper().wait()
    assert done == ["first", "second"]
