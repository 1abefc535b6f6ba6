"""The GPU backend: CuPy, and the fused one-kernel epoch (numba-cuda)."""
