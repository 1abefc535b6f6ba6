"""The first convolutional layer's filters as pictures (the book's figure of
the 20 5x5 local receptive fields its first network learned)."""

import numpy

from ..convnet.layers import ConvPoolLayer
from ..errors import InvalidArgumentError
from .plots import grid_shape, new_figure, save_png

DEFAULT_DPI = 100


def plot_filters(net, path, dpi=DEFAULT_DPI):
    """Every filter of ``net``'s first layer (a conv-pool layer), one cell
    each (one per input map when there are several), red positive and blue
    negative, white at 0, on one colour scale; written to ``path`` as PNG."""
    layer = net.layers[0]
    if not isinstance(layer, ConvPoolLayer):
        raise InvalidArgumentError("the model's first layer is not convolutional: no filters")
    filters = net.backend.to_host(net.weights[0]).astype(numpy.float64)
    cells = filters.reshape(-1, *filters.shape[2:])  # (F·C, k, k)
    limit = float(numpy.abs(filters).max()) or 1.0
    rows, cols = grid_shape(len(cells))
    fig = new_figure((1.0 * cols + 1.0, 1.0 * rows + 0.6), dpi)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, cell in zip(axes, cells):
        image = ax.imshow(cell, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(cells):]:
        ax.set_axis_off()
    count, channels, k, _ = layer.filter_shape
    maps = f" x {channels} input maps" if channels > 1 else ""
    fig.suptitle(f"The {count}{maps} {k}x{k} filters of the first layer", fontsize=10)
    fig.colorbar(image, ax=list(axes), shrink=0.6, aspect=30, label="weight")
    save_png(fig, path)
    return fig
