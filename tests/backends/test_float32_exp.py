"""The compiled epoch's float32 e^x and σ: as accurate as float32 allows,
and the σ loop vectorised (the reason they exist)."""

import numpy
import pytest
from numba import njit

from nn_gpu.backends.cpu.epoch import _activate
from nn_gpu.backends.cpu.float32_exp import HIGHEST, LOWEST, exp32


@njit
def exp32_of(x, out):
    for i in range(x.shape[0]):
        out[i] = exp32(x[i])
    return out


@pytest.mark.slow
def test_exp32_is_within_float32_rounding_of_e_to_the_x():
    x = numpy.linspace(LOWEST, HIGHEST, 1_000_001, dtype=numpy.float32)
    got = exp32_of(x, numpy.empty_like(x)).astype(numpy.float64)
    exact = numpy.exp(x.astype(numpy.float64))
    assert numpy.max(numpy.abs(got - exact) / exact) < 1.5e-7   # float32's ulp: up to 1.19e-7


def test_exp32_clamps_instead_of_overflowing_and_keeps_nan():
    x = numpy.array([-1e4, LOWEST, HIGHEST, 1e4, numpy.inf, -numpy.inf], numpy.float32)
    got = exp32_of(x, numpy.empty_like(x))
    assert numpy.all(numpy.isfinite(got)) and numpy.all(got > 0)
    assert got[0] == got[1] == got[5] and got[2] == got[3] == got[4]
    nan = numpy.array([numpy.nan], numpy.float32)
    assert numpy.isnan(exp32_of(nan, numpy.empty_like(nan))[0])   # a diverged run stays visible


@pytest.mark.parametrize("layout", ["z^T as BLAS wrote it", "a itself", "another array"])
def test_float32_sigmoid_matches_float64_to_float32_rounding(layout):
    rng = numpy.random.default_rng(0)
    z = (rng.standard_normal((10, 30)) * 20).astype(numpy.float32)
    b = rng.standard_normal(30).astype(numpy.float32)
    x = (z + b).astype(numpy.float64)          # z + b rounds to float32 in either
    a = z.copy() if layout == "a itself" else numpy.empty_like(z)
    source = {"z^T as BLAS wrote it": z.T.copy().T, "a itself": a, "another array": z}[layout]
    _activate(0, source, a, b)
    numpy.testing.assert_allclose(a, 1 / (1 + numpy.exp(-x)), rtol=4e-7, atol=1e-37)
