"""The training loop every model shares, and its checkpoints."""
