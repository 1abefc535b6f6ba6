"""What the loop records of a scored set besides its accuracy: for a network
with one output neuron, precision and recall, from the three counts its
``count_positives`` reports under these names."""

POSITIVE_COUNTS = ("true_positives", "predicted_positives", "actual_positives")


def precision_recall(counts):
    """(precision, recall) from the :data:`POSITIVE_COUNTS` read back to the
    host; 0 where nothing was predicted (or is) positive, as scikit-learn's
    ``zero_division`` default."""
    true, predicted, actual = (int(counts[key]) for key in POSITIVE_COUNTS)
    return (true / predicted if predicted else 0.0, true / actual if actual else 0.0)
