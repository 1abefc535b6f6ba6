"""The GEMMs of one batched SGD step of a :class:`ConvNetwork`, for the
benchmarks' FLOP floor (the same :class:`nn_gpu.bench.timing.Gemm` records as
the MLP's, so the same GEMM-rate timing applies)."""

from ..convnet.layers import ConvPoolLayer
from .timing import Gemm


def conv_step_gemms(layers, m):
    """Per layer l: its forward product, its weight gradient, and for every
    layer after the first the error passed down into layer l-1. A conv-pool
    layer's are over the im2col matrix P of m·Ho·Wo rows and C·k·k columns:
    Z = P wᵀ, ∂C/∂w = (∂C/∂Z)ᵀ P, ∂C/∂P = (∂C/∂Z) w."""
    gemms = []
    for l, layer in enumerate(layers):
        if isinstance(layer, ConvPoolLayer):
            filters, channels, k, _ = layer.filter_shape
            rows, columns = m * layer.conv_shape[0] * layer.conv_shape[1], channels * k * k
            gemms.append(Gemm(f"conv forward {l + 1}", rows, columns, filters, "NT"))
            gemms.append(Gemm(f"conv weight gradient {l + 1}", filters, rows, columns, "TN"))
            if l:
                gemms.append(Gemm(f"conv backprop {l + 1}", rows, filters, columns, "NN"))
        else:
            gemms.append(Gemm(f"forward {l + 1}", m, layer.n_in, layer.n_out, "NT"))
            gemms.append(Gemm(f"weight gradient {l + 1}", layer.n_out, m, layer.n_in, "TN"))
            if l:
                gemms.append(Gemm(f"backprop {l + 1}", m, layer.n_out, layer.n_in, "NN"))
    return gemms


def conv_epoch_flops(layers, mini_batch_size, train_size):
    """GEMM FLOPs of one epoch over ``train_size`` examples (last mini-batch partial)."""
    full, rest = divmod(train_size, mini_batch_size)
    flops = full * sum(g.flops for g in conv_step_gemms(layers, mini_batch_size))
    return flops + (sum(g.flops for g in conv_step_gemms(layers, rest)) if rest else 0)
