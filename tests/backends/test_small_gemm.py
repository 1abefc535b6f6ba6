"""Kernels compiled for one shape (nn_gpu.backends.cpu.small_gemm) against their
NumPy twins, on odd and even shapes, edge blocks and several passes included."""

import numpy
import pytest

from nn_gpu.backends.cpu import small_gemm

TOLERANCE = {"float32": 1e-5, "float64": 1e-13}


def close(got, expected, dtype):
    return numpy.abs(got - expected).max() <= TOLERANCE[dtype] * numpy.abs(expected).max()


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("P, Q, K", [(7, 5, 13), (8, 6, 16), (1, 1, 1)])
def test_dot_nt_is_a_times_b_transposed(dtype, P, Q, K):
    rng = numpy.random.default_rng(P * Q * K)
    A, B = rng.standard_normal((P, K)).astype(dtype), rng.standard_normal((Q, K)).astype(dtype)
    out = numpy.full((P, Q), numpy.nan, dtype)
    small_gemm.dot_nt(P, Q, K, dtype).ctypes(A.ctypes.data, B.ctypes.data, out.ctypes.data)
    assert close(out, A @ B.T, dtype)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("N, K, M", [(5, 13, 23), (4, 16, 10), (1, 1, 1)])
def test_update_is_beta_c_plus_alpha_d_transposed_a(dtype, N, K, M):
    rng = numpy.random.default_rng(N * K * M)
    c = rng.standard_normal((N, K)).astype(dtype)
    d, a = rng.standard_normal((M, N)).astype(dtype), rng.standard_normal((M, K)).astype(dtype)
    expected = 0.75 * c - 0.5 * d.T @ a
    small_gemm.update(N, K, M, dtype).ctypes(c.ctypes.data, d.ctypes.data, a.ctypes.data,
                                             -0.5, 0.75)
    assert close(c, expected, dtype)


def test_kernels_are_chosen_only_where_they_were_measured_faster():
    assert small_gemm.chosen([784, 30, 10], 10, "float32") == [(True, True), (True, True)]
    assert small_gemm.chosen([784, 100, 10], 10, "float32") == [(True, False), (True, True)]
    assert small_gemm.chosen([784, 30, 10], 10, "float64") == [(True, False), (True, True)]
    assert small_gemm.chosen([784, 30, 10], 100, "float32") == [(True, False)] * 2
    assert small_gemm.chosen([784, 30, 10], 100, "float64") == [(False, False)] * 2
    assert small_gemm.chosen([784, 30, 10], 1000, "float32") == [(False, False)] * 2
    assert small_gemm.chosen([784, 30, 10], 1, "float32") == [(False, True), (False, True)]


def test_a_signal_while_kernels_compile_arrives_after_they_are_built():
    """Ctrl-C during the compile is held (LLVM's callbacks into Python would
    print it and lose it) and raised once the block ends."""
    import signal

    reached = []
    # Python's own Ctrl-C handler, even where this runs with SIGINT ignored
    # (started in the background by a shell, or under nohup).
    outside = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with small_gemm.signals_deferred():
                signal.raise_signal(signal.SIGINT)
                reached.append("after the signal")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outside)
    assert reached == ["after the signal"]
