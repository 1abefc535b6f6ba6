"""Data sets: the MNIST IDX reader and download, the expanded (shifted) set,
and numbers composed of MNIST digits."""
