"""The GEMM ceiling of the BLAS in use (or cuBLAS), in float32.

The forward product of the first layer, (m, 784) @ (784, 30), at the
mini-batch sizes the epoch benchmarks use, in the core's layout
(``a_in @ w.T``), and a large square product as the BLAS's peak. The achieved
GFLOP/s is in each result's ``extra_info``. On CuPy the device is
synchronised inside the timed call.
"""

import pytest

from nn_gpu.bench.timing import Gemm, environment, gemm_workload

SHAPES = [pytest.param(Gemm(f"forward 1, m={m}", m, 784, 30, "NT"), id=f"{m}x784x30")
          for m in (1, 10, 100, 1000)]
SHAPES.append(pytest.param(Gemm("square 2048", 2048, 2048, 2048, "NN"), id="2048x2048x2048"))


@pytest.mark.parametrize("gemm", SHAPES)
def test_gemm(benchmark, backend, median_of, gemm):
    dtype = "float32"
    run, flops = gemm_workload(backend, [gemm], dtype)
    run()
    benchmark.group = "GEMM float32"
    benchmark.extra_info.update(environment(backend), dtype=dtype)
    benchmark.extra_info.update({"shape": f"({gemm.M},{gemm.K})@({gemm.K},{gemm.N})",
                                 "layout": gemm.layout, "flops": flops})
    benchmark(run)
    seconds = median_of(benchmark)
    if seconds:
        benchmark.extra_info["gflops"] = flops / seconds / 1e9
