"""Chapters 1-3: costs, the batched core, the per-example reference, the
fully connected Network, the perceptron, and what a trained network predicts."""
