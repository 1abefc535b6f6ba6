"""What a trained network says about a data set: its predicted digits, the
confusion matrix, and class probabilities.

:func:`probabilities` is the one rule that turns output activations into
probabilities, shared by ``nn-gpu predict`` and
:meth:`nn_gpu.model.estimator.MLPClassifier.predict_proba`.
"""

import numpy


def predictions(net, data):
    """The network's class for each row of ``(X, labels)``, as a NumPy int64 array."""
    X, _ = net.to_device(data)
    return net.backend.to_host(net.predicted_labels(X)).astype(numpy.int64)


def confusion_matrix(net, data):
    """Counts ``C[true, predicted]`` over ``(X, labels)``: a (k, k) NumPy
    int64 array for the k classes, (10, 10) for MNIST, (2, 2) for one output
    neuron. Computed on the network's backend with one device-to-host copy;
    ``C.sum()`` is the number of examples and the trace is
    :meth:`~nn_gpu.model.base.Model.evaluate`."""
    X, labels = net.to_device(data)
    xp, k = net.backend.xp, net.num_classes
    pairs = labels.astype(xp.int64) * k + net.predicted_labels(X).astype(xp.int64)
    counts = xp.bincount(pairs, minlength=k * k).reshape(k, k)
    return net.backend.to_host(counts).astype(numpy.int64)


def probabilities(net, X):
    """Class probabilities of the rows of X, shape (m, k) for k classes,
    float64, each row summing to 1: the output activations a^L normalised.
    Softmax outputs already sum to 1; sigmoid outputs are independent, so
    their row is scaled; a row that underflows to all zeros becomes uniform.
    One output neuron a is the probability of class 1: the row is (1 - a, a).
    Outputs of weights large enough to overflow come without NumPy's
    warnings (a NaN output row stays NaN: the probabilities say so)."""
    with net.backend.ignoring_float_errors():
        outputs = numpy.asarray(net.backend.to_host(net.feedforward(X)), dtype=numpy.float64)
    if outputs.shape[1] == 1:
        return numpy.hstack([1.0 - outputs, outputs])
    totals = outputs.sum(axis=1, keepdims=True)
    uniform = numpy.full_like(outputs, 1.0 / outputs.shape[1])
    return numpy.divide(outputs, totals, out=uniform, where=totals > 0)


def classify(net, X):
    """``[(label, probabilities), ...]``, one pair per row of X: the predicted
    class as an int and the (k,) float64 :func:`probabilities` (argmax of
    (1 - a, a) is 1 exactly when a > 0.5)."""
    return [(int(numpy.argmax(p)), p) for p in probabilities(net, X)]
