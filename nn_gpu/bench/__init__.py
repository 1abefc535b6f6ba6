"""Timing: epochs against their GEMM floor, busy machines, PyTorch and JAX peers."""
