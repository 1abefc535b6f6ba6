"""The GEMMs of one batched SGD step of a :class:`ConvNetwork`, for the
benchmarks' FLOP floor (the same :class:`nn_gpu.bench.timing.Gemm` records as
the MLP's, so the same GEMM-rate timing applies)."""

from ..convnet.layers import ConvPoolLayer
from .timing import Gemm


def conv_step_gemms(layers, m, sparse_from=None):
    """Per layer l: its forward product, its weight gradient, and for every
    layer after the first the error passed down into layer l-1. A conv-pool
    layer's are over the im2col matrix P of m·Ho·Wo rows and C·k·k columns:
    Z = P wᵀ, ∂C/∂w = (∂C/∂Z)ᵀ P, ∂C/∂P = (∂C/∂Z) w -- except that a layer
    whose backprop runs from the pooled units alone (the CPU kernels', where
    k·C >= ``sparse_from``: :func:`nn_gpu.convnet.kernels.backward_sparse_range`)
    does those two over one row per pooled unit, m·Hp·Wp, the work it does."""
    gemms = []
    for l, layer in enumerate(layers):
        if isinstance(layer, ConvPoolLayer):
            filters, channels, k, _ = layer.filter_shape
            rows, columns = m * layer.conv_shape[0] * layer.conv_shape[1], channels * k * k
            gemms.append(Gemm(f"conv forward {l + 1}", rows, columns, filters, "NT"))
            pooled = sparse_from is not None and k * channels >= sparse_from
            if pooled:
                rows = m * layer.output_shape[1] * layer.output_shape[2]
            what = " (pooled units)" if pooled else ""
            gemms.append(Gemm(f"conv weight gradient{what} {l + 1}", filters, rows, columns, "TN"))
            if l:
                gemms.append(Gemm(f"conv backprop{what} {l + 1}", rows, filters, columns, "NN"))
        else:
            gemms.append(Gemm(f"forward {l + 1}", m, layer.n_in, layer.n_out, "NT"))
            gemms.append(Gemm(f"weight gradient {l + 1}", layer.n_out, m, layer.n_in, "TN"))
            if l:
                gemms.append(Gemm(f"backprop {l + 1}", m, layer.n_out, layer.n_in, "NN"))
    return gemms


def conv_epoch_flops(layers, mini_batch_size, train_size, sparse_from=None):
    """GEMM FLOPs of one epoch over ``train_size`` examples (last mini-batch
    partial), ``sparse_from`` as :func:`conv_step_gemms`'s."""
    full, rest = divmod(train_size, mini_batch_size)
    flops = full * sum(g.flops for g in conv_step_gemms(layers, mini_batch_size, sparse_from))
    return flops + (sum(g.flops for g in conv_step_gemms(layers, rest, sparse_from))
                    if rest else 0)


def sparse_from(backend):
    """:func:`conv_step_gemms`'s ``sparse_from`` for the epoch on ``backend``:
    the CPU kernels' threshold on the NumPy backend, None (every backprop
    through the products) elsewhere."""
    if backend.name != "numpy":
        return None
    from ..convnet.kernels import SPARSE_MIN_RUN

    return SPARSE_MIN_RUN
