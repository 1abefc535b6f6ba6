"""Chapter 6's layers: the batched layers against the per-example reference
and against finite differences, in float64, for every layer type and the
combinations the book uses; then training, scoring in chunks and model files."""

import numpy
import pytest
from conftest import run

from nn_gpu.convnet import ConvNetwork, ConvPoolLayer, FullyConnectedLayer, SoftmaxLayer, reference
from nn_gpu.convnet import network as convnetwork
from nn_gpu.errors import InvalidArgumentError, ModelFileError
from nn_gpu.presets import convnet as presets
from nn_gpu.presets.convnet import CONV_PRESETS


def one_conv(activation="sigmoid", p_dropout=0.0):
    """conv-pool -> fully connected -> softmax, on 2-map 8x8 images."""
    return [ConvPoolLayer((2, 8, 8), (3, 2, 3, 3), activation=activation),
            FullyConnectedLayer(3 * 3 * 3, 5, activation, p_dropout=p_dropout),
            SoftmaxLayer(5, 4, p_dropout=p_dropout)]


def two_conv(activation="sigmoid"):
    """Two conv-pool layers, non-square images, a left-over conv row
    (7 rows pooled by 2: the last is dropped, as Theano's ignore_border)."""
    return [ConvPoolLayer((1, 12, 10), (3, 1, 3, 3), activation=activation),   # 10x8 -> 5x4
            ConvPoolLayer((3, 5, 4), (4, 3, 2, 2), activation=activation),     # 4x3 -> 2x1
            FullyConnectedLayer(4 * 2 * 1, 6, activation),
            SoftmaxLayer(6, 3)]


def conv_into_softmax():
    """A conv-pool layer straight into the output layer, 3x3 pooling."""
    return [ConvPoolLayer((1, 9, 9), (2, 1, 4, 4), pool=3, activation="relu"),   # 6x6 -> 2x2
            SoftmaxLayer(2 * 2 * 2, 3)]


ARCHITECTURES = {
    **{f"one_conv_{kind}": (lambda kind=kind: one_conv(kind))
       for kind in ("sigmoid", "tanh", "relu")},
    "two_conv_sigmoid": two_conv,
    "two_conv_relu": lambda: two_conv("relu"),
    "conv_into_softmax": conv_into_softmax,
}


def problem(layers, m, seed):
    """A float64 network with non-zero output weights (network3 starts them
    at 0, which would hide errors in the layers below), inputs and labels."""
    net = ConvNetwork(layers, backend="numpy", dtype="float64", seed=seed)
    rng = numpy.random.default_rng(seed + 100)
    net.weights[-1][...] = rng.normal(0.0, 1.0, net.weights[-1].shape)
    net.biases[-1][...] = rng.normal(0.0, 1.0, net.biases[-1].shape)
    X = rng.random((m, layers[0].n_in))
    labels = rng.integers(0, layers[-1].n_out, m)
    return net, X, labels, numpy.eye(layers[-1].n_out)[labels]


def on_backend(net, backend):
    """The same network moved onto ``backend``."""
    twin = ConvNetwork(net.layers, backend=backend, dtype="float64")
    twin.weights = [backend.asarray(w.copy()) for w in net.weights]
    twin.biases = [backend.asarray(b.copy()) for b in net.biases]
    return twin


def fixed_masks(layers, m, seed):
    rng = numpy.random.default_rng(seed)
    return [None if not layer.p_dropout else
            (rng.random((m, layer.n_in)) >= layer.p_dropout) / (1 - layer.p_dropout)
            for layer in layers]


@pytest.mark.parametrize("name", [*ARCHITECTURES, "one_conv_dropout"])
def test_batched_backprop_equals_mean_of_per_example_loops(backend, name):
    dropout = name == "one_conv_dropout"
    layers = one_conv("relu", p_dropout=0.4) if dropout else ARCHITECTURES[name]()
    net, X, labels, Y = problem(layers, 5, seed=3)
    masks = fixed_masks(layers, 5, seed=4)
    device_net = on_backend(net, backend)
    nabla_b, nabla_w = device_net.backprop(X, Y, masks)
    per_example = [reference.backprop_example(
        layers, net.weights, net.biases, X[i], labels[i],
        [None if mask is None else mask[i] for mask in masks]) for i in range(5)]
    for l in range(len(layers)):
        for got, index in ((nabla_b, 0), (nabla_w, 1)):
            expected = sum(example[index][l] for example in per_example) / 5
            numpy.testing.assert_allclose(backend.to_host(got[l]), expected, rtol=1e-11,
                                          atol=1e-14)


def mean_cost(net, X, labels, masks, l2=0.0, train_size=1):
    """C = mean -ln a^L_y (through the given dropout masks) + (λ/2n)Σw²."""
    a, _ = net._forward(X, masks)
    cost = -numpy.mean(numpy.log(a[numpy.arange(len(labels)), labels]))
    return cost + l2 / (2 * train_size) * sum(numpy.sum(w * w) for w in net.weights)


@pytest.mark.parametrize("name, l2, dropout", [
    *[(name, 0.0, 0.0) for name in ARCHITECTURES],
    ("one_conv_relu", 0.0, 0.5), ("two_conv_sigmoid", 3.0, 0.0), ("one_conv_tanh", 2.0, 0.3)])
def test_gradients_match_finite_differences(name, l2, dropout):
    """Every ∂C/∂w and ∂C/∂b, filters included, by central differences of
    the mean cost; dropout with a fixed mask; L2 adds (λ/n) w to ∂C/∂w."""
    layers = (one_conv(name.rsplit("_", 1)[1], p_dropout=dropout) if dropout
              else ARCHITECTURES[name]())
    net, X, labels, Y = problem(layers, 4, seed=7)
    masks = fixed_masks(layers, 4, seed=8)
    n = 20  # the training-set size λ is divided by
    nabla_b, nabla_w = net.backprop(X, Y, masks)
    h = 1e-6
    for params, grads, decayed in ((net.weights, nabla_w, True), (net.biases, nabla_b, False)):
        for param, grad in zip(params, grads):
            analytic = grad + (l2 / n * param if decayed else 0.0)
            numeric = numpy.empty(param.shape)
            for index in numpy.ndindex(param.shape):
                original = param[index]
                param[index] = original + h
                up = mean_cost(net, X, labels, masks, l2, n)
                param[index] = original - h
                down = mean_cost(net, X, labels, masks, l2, n)
                param[index] = original
                numeric[index] = (up - down) / (2 * h)
            numpy.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_total_cost_is_mean_log_likelihood_plus_l2(backend):
    net, X, labels, _ = problem(two_conv(), 6, seed=1)
    expected = mean_cost(net, X, labels, [None] * 4, l2=0.5, train_size=30)
    device_net = on_backend(net, backend)
    assert device_net.total_cost((X, labels), l2=0.5, train_size=30) == pytest.approx(
        expected, rel=1e-12)


def test_one_sgd_step_is_the_mean_gradient_step_with_weight_decay(backend):
    """A mini-batch as large as the training set: one step,
    w -> (1 - ηλ/n) w - η ∂C/∂w, b -> b - η ∂C/∂b."""
    net, X, labels, Y = problem(one_conv("tanh"), 6, seed=2)
    eta, l2 = 0.7, 2.0
    nabla_b, nabla_w = net.backprop(X, Y)
    device_net = on_backend(net, backend)
    device_net.sgd((X, labels), 1, 6, eta, l2=l2)
    for l in range(3):
        numpy.testing.assert_allclose(backend.to_host(device_net.weights[l]),
                                      (1 - eta * l2 / 6) * net.weights[l] - eta * nabla_w[l],
                                      rtol=1e-10, atol=1e-13)
        numpy.testing.assert_allclose(backend.to_host(device_net.biases[l]),
                                      net.biases[l] - eta * nabla_b[l], rtol=1e-10, atol=1e-13)


def test_scoring_in_small_chunks_gives_the_same_outputs(monkeypatch):
    """The im2col matrix is built a chunk of images at a time (bounded memory);
    chunking changes nothing."""
    net, X, labels, _ = problem(two_conv("relu"), 23, seed=5)
    whole = net.feedforward(X)
    monkeypatch.setattr(convnetwork, "PATCH_BUDGET", 3 * net.layers[0].patch_bytes(8))
    assert len(net._chunks(net._inputs(X))) == 8
    numpy.testing.assert_allclose(net.feedforward(X), whole, rtol=1e-14)
    assert net.evaluate((X, labels)) == int(numpy.sum(whole.argmax(axis=1) == labels))


def test_training_learns_mnist_digits(backend, mnist_slice):
    """1,000 real digits, 3 epochs (300 steps, with dropout): a small conv
    net gets most of 500 test digits (80% when written; chance is 10%)."""
    (X, y), test = mnist_slice
    layers = [ConvPoolLayer((1, 28, 28), (4, 1, 5, 5), activation="tanh"),
              FullyConnectedLayer(4 * 12 * 12, 30, "tanh", p_dropout=0.2),
              SoftmaxLayer(30, 10)]
    net = ConvNetwork(layers, backend=backend, seed=1)
    history = net.sgd((X, y), 3, 10, 0.1, test_data=test, l2=0.1)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["test_accuracy"] > 0.7
    assert history[-1]["test_total"] == 500


def test_save_and_load_round_trip(tmp_path, backend):
    net, X, labels, _ = problem(one_conv("relu", p_dropout=0.5), 4, seed=6)
    net.save(tmp_path / "conv.npz")
    loaded = ConvNetwork.load(tmp_path / "conv.npz", backend=backend)
    assert [layer.spec() for layer in loaded.layers] == [layer.spec() for layer in net.layers]
    assert loaded.dtype == numpy.float64
    numpy.testing.assert_array_equal(backend.to_host(loaded.feedforward(X)), net.feedforward(X))


def test_load_refuses_other_files_in_one_line(tmp_path):
    from nn_gpu import Network

    mlp = tmp_path / "mlp.npz"
    Network([4, 3, 2], backend="numpy").save(mlp)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    for path, words in ((mlp, "expected 'nn_gpu.convnet'"), (junk, "not a readable"),
                        (tmp_path / "missing.npz", "not found")):
        with pytest.raises(ModelFileError, match=words):
            ConvNetwork.load(path, backend="numpy")


def test_layers_that_do_not_fit_are_refused():
    with pytest.raises(InvalidArgumentError, match="layer 1 takes 20 inputs but layer 0 gives 27"):
        ConvNetwork([ConvPoolLayer((2, 8, 8), (3, 2, 3, 3)), SoftmaxLayer(20, 4)])
    with pytest.raises(InvalidArgumentError, match="last layer must be a SoftmaxLayer"):
        ConvNetwork([FullyConnectedLayer(4, 3)])
    with pytest.raises(InvalidArgumentError, match="filter_shape"):
        ConvPoolLayer((2, 8, 8), (3, 1, 3, 3))
    with pytest.raises(InvalidArgumentError, match="do not fit"):
        ConvPoolLayer((1, 4, 4), (3, 1, 5, 5))
    with pytest.raises(InvalidArgumentError, match="p_dropout"):
        FullyConnectedLayer(4, 3, p_dropout=1.0)


@pytest.mark.parametrize("name", list(CONV_PRESETS))
def test_presets_build_the_books_networks(name):
    net = presets.build(name, backend="numpy", seed=0)
    assert net.sizes[0] == 784 and net.sizes[-1] == 10
    assert isinstance(net.layers[0], ConvPoolLayer) and net.layers[0].filter_shape[2:] == (5, 5)
    assert net.feedforward(numpy.zeros((2, 784))).shape == (2, 10)


def test_book_figure_is_test_accuracy_at_the_last_best_validation_epoch():
    history = [{"epoch": 1, "validation_accuracy": 0.97, "test_accuracy": 0.96},
               {"epoch": 2, "validation_accuracy": 0.98, "test_accuracy": 0.975},
               {"epoch": 3, "validation_accuracy": 0.98, "test_accuracy": 0.977},
               {"epoch": 4, "validation_accuracy": 0.975, "test_accuracy": 0.99}]
    assert presets.book_figure(history) == (3, 0.977)


def test_ensemble_votes_with_ties_to_the_larger_summed_output(tmp_path):
    from nn_gpu.analysis import ensemble

    nets = [problem(one_conv(kind), 6, seed=seed)[0] for seed, kind in
            ((1, "relu"), (2, "tanh"), (3, "sigmoid"))]
    X = problem(one_conv(), 6, seed=9)[1]
    outputs = [net.feedforward(X) for net in nets]
    expected = []
    for row in range(6):
        counts = numpy.bincount([a[row].argmax() for a in outputs], minlength=4)
        summed = sum(a[row] for a in outputs)
        tied = numpy.flatnonzero(counts == counts.max())
        expected.append(tied[summed[tied].argmax()])
    numpy.testing.assert_array_equal(ensemble.predict(nets, X), expected)
    labels = numpy.array(expected)
    labels[0] = (labels[0] + 1) % 4
    assert ensemble.accuracy(nets, (X, labels)) == (5, 6)
    nets[0].save(tmp_path / "conv.npz")
    assert isinstance(ensemble.load_model(tmp_path / "conv.npz", backend="numpy"), ConvNetwork)


@pytest.mark.slow
def test_plot_filters_draws_every_first_layer_filter(tmp_path):
    pytest.importorskip("matplotlib")
    from nn_gpu.analysis.filters import plot_filters

    net = presets.build("ch6-conv1", backend="numpy", seed=0)
    fig = plot_filters(net, tmp_path / "filters.png")
    assert sum(ax.get_images() != [] for ax in fig.axes) == 20
    assert (tmp_path / "filters.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InvalidArgumentError, match="not convolutional"):
        plot_filters(ConvNetwork([SoftmaxLayer(4, 3)], backend="numpy"), tmp_path / "x.png")


def test_resume_from_a_checkpoint_is_bit_for_bit_the_uninterrupted_run(tmp_path):
    from nn_gpu.errors import CheckpointError
    from nn_gpu.training.checkpoint import Checkpoint

    def fresh():
        return problem(one_conv("relu", p_dropout=0.3), 40, seed=11)

    net, X, labels, _ = fresh()
    straight = net.sgd((X, labels), 3, 7, 0.2, test_data=(X, labels), l2=0.5)
    first, X, labels, _ = fresh()
    first.sgd((X, labels), 2, 7, 0.2, test_data=(X, labels), l2=0.5,
              checkpoint=Checkpoint(tmp_path))
    resumed, X, labels, _ = fresh()
    history = resumed.sgd((X, labels), 3, 7, 0.2, test_data=(X, labels), l2=0.5,
                          checkpoint=Checkpoint(tmp_path), resume=True)
    assert [h["test_correct"] for h in history] == [h["test_correct"] for h in straight]
    for a, b in zip(resumed.weights + resumed.biases, net.weights + net.biases):
        numpy.testing.assert_array_equal(a, b)
    with pytest.raises(CheckpointError, match="trained with l2 = 0.5"):
        fresh()[0].sgd((X, labels), 3, 7, 0.2, l2=0.1, checkpoint=Checkpoint(tmp_path),
                       resume=True)
    with pytest.raises(CheckpointError, match="another network"):
        problem(two_conv(), 40, seed=1)[0].sgd(
            (numpy.zeros((40, 120)), labels % 3), 3, 7, 0.2, l2=0.5,
            checkpoint=Checkpoint(tmp_path), resume=True)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_shared_loop_resumes_a_conv_run_with_its_options_bit_for_bit(tmp_path, dtype):
    """3 epochs straight == 2 checkpointed + 1 resumed, with dropout, L2, the
    eta schedule, keep_best and monitored costs: the loop every model shares."""
    from nn_gpu.training.checkpoint import Checkpoint

    def fresh():
        net, X, labels, _ = problem(one_conv("relu", p_dropout=0.3), 40, seed=11)
        twin = ConvNetwork(net.layers, backend="numpy", dtype=dtype, seed=11)
        return twin, (X[:30], labels[:30]), (X[30:], labels[30:])

    options = dict(l2=0.5, eta_schedule=1, keep_best=True, monitor_evaluation_cost=True,
                   monitor_training_cost=True)
    net, training, validation = fresh()
    straight = net.sgd(training, 3, 7, 0.2, validation_data=validation, **options)
    first, training, validation = fresh()
    first.sgd(training, 2, 7, 0.2, validation_data=validation, checkpoint=Checkpoint(tmp_path),
              **options)
    resumed, training, validation = fresh()
    history = resumed.sgd(training, 3, 7, 0.2, validation_data=validation,
                          checkpoint=Checkpoint(tmp_path), resume=True, **options)
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in history] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in straight]
    assert "validation_cost" in history[-1] and "train_cost" in history[-1]
    for a, b in zip(resumed.weights + resumed.biases, net.weights + net.biases):
        numpy.testing.assert_array_equal(a, b)


def test_a_conv_network_refuses_what_it_does_not_train_with():
    net, X, labels, _ = problem(one_conv(), 6, seed=3)
    for option, words in ((dict(momentum=0.5), "momentum is the fully connected"),
                          (dict(l1=0.1), "L1 regularisation"),
                          (dict(dropout=0.5), "set per layer"),
                          (dict(method="per_example"), "only method is 'batched'")):
        with pytest.raises(InvalidArgumentError, match=words):
            net.sgd((X, labels), 1, 2, 0.1, **option)


def test_layers_file_is_checked_data(tmp_path):
    path = tmp_path / "layers.json"
    specs = [layer.spec() for layer in two_conv("relu")]
    path.write_text(__import__("json").dumps(specs))
    assert [layer.spec() for layer in presets.read_layers(path)] == specs
    for text, words in (("{", "not a JSON list"), ('{"kind": "softmax"}', "not a JSON list"),
                        ('[{"kind": "softmax", "n_in": 4}]', "unknown or missing fields"),
                        ('[{"kind": "eval", "n_in": 4}]', "not a layer description"),
                        ('[{"kind": "softmax", "n_in": 4, "n_out": 3, "extra": 1}]',
                         "unknown or missing fields"),
                        ('[{"kind": "fully_connected", "n_in": 4, "n_out": 3}]',
                         "last layer must be a SoftmaxLayer")):
        path.write_text(text)
        with pytest.raises(InvalidArgumentError, match=words):
            presets.read_layers(path)
    with pytest.raises(InvalidArgumentError, match="not found"):
        presets.read_layers(tmp_path / "missing.json")


# ---------------------------------------------------------------- commands
@pytest.mark.slow
def test_train_a_conv_preset_resume_it_and_use_the_model(tmp_path, mnist):
    """train --preset ch6-conv1 on 200 images, --resume it one epoch further,
    then evaluate (alone and in an ensemble), plot weights (the filters) and
    the confusion matrix with the saved model."""
    model, checkpoint = tmp_path / "conv.npz", tmp_path / "run"
    first = run("train", "--preset", "ch6-conv1", "--train-size", "200",
                "--epochs", "1", "--seed", "1", "--checkpoint-dir", str(checkpoint),
                "--history", str(tmp_path / "history.json"))
    assert first.status == 0, first.err
    assert "Epoch 1: " in first.out and "the book" not in first.out  # not its settings
    resumed = run("train", "--resume", str(checkpoint), "--epochs", "2",
                  "--save", str(model))
    assert resumed.status == 0, resumed.err
    assert "Resuming after epoch 1" in resumed.out and "Epoch 2: " in resumed.out
    assert isinstance(ConvNetwork.load(model, backend="numpy"), ConvNetwork)
    scored = run("evaluate", "--ensemble", str(model), str(model))
    assert scored.status == 0, scored.err
    assert "ensemble of 2 (majority vote): test accuracy" in scored.out
    if __import__("importlib.util").util.find_spec("matplotlib"):
        drawn = run("plot", "weights", str(model), "-o", str(tmp_path / "f.png"))
        assert drawn.status == 0 and "The 20 5x5 filters" in drawn.out, drawn.err
        confusion = run("plot", "confusion", str(model), "-o", str(tmp_path / "c.png"))
        assert confusion.status == 0, confusion.err


@pytest.mark.parametrize("option, words", [
    (["--sizes", "784", "10"], "--sizes does not apply to a convolutional network: its layers"),
    (["--momentum", "0.5"], "momentum is the fully connected network's"),
    (["--dropout", "0.5"], "dropout is set per layer (p_dropout"),
    (["--l1", "0.1"], "L1 regularisation is the fully connected network's"),
    (["--method", "per_example"], "its only method is 'batched'"),
])
def test_conv_presets_refuse_the_fully_connected_options_with_the_models_reason(
        capsys, option, words):
    """What a conv network does not train with is declared by ConvNetwork and
    refused in one line, before any data is loaded."""
    from nn_gpu.cli import main

    assert main(["train", "--preset", "ch6-conv1", "--data", "/nonexistent", *option]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_metrics_score_conv_models(monkeypatch):
    """Predictions and the confusion matrix go through the conv network's own
    chunked scoring (a scoring chunk of 3 rows here)."""
    from nn_gpu.model import metrics

    net, X, labels, _ = problem(two_conv("tanh"), 8, seed=4)
    monkeypatch.setattr(convnetwork, "PATCH_BUDGET", 3 * net.layers[0].patch_bytes(8))
    expected = net.feedforward(X).argmax(axis=1)
    numpy.testing.assert_array_equal(metrics.predictions(net, (X, labels)), expected)
    counts = metrics.confusion_matrix(net, (X, labels))
    assert counts.sum() == 8 and numpy.trace(counts) == net.evaluate((X, labels))
