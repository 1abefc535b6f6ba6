"""The CPU backend: NumPy, and the whole batched epoch compiled with Numba."""
