"""`nn-gpu bench --conv`, and the claim its PyTorch column rests on: the torch
model built from nn_gpu's layers (:mod:`nn_gpu.bench.conv_peers`) is the same
network — the same parameter shapes, and with our parameters copied in the
same outputs and the same SGD step, in float64. Seconds in all."""

import json
import re

import numpy
import pytest
from conftest import mnist_dir, needs_mnist, run

from nn_gpu.bench.conv_flops import conv_epoch_flops
from nn_gpu.convnet import ConvNetwork, ConvPoolLayer, FullyConnectedLayer, SoftmaxLayer
from nn_gpu.presets.convnet import CONV_PRESETS, build

DATA = mnist_dir()
ROW = re.compile(r"^(\d+) +(\d+\.\d{3}) +([\d,]+) +(\d+\.\d) +(\d+\.\d{3}) +(\d+\.\d)!?"
                 r"(?: +(\d+\.\d{3}) +(\d+\.\d\d)x)?$")

STACKS = {
    "ch6-conv1": lambda: build("ch6-conv1").layers,
    # non-square images, a border row and column pooling drops, relu then tanh, dropout
    "two conv, dropout": lambda: [
        ConvPoolLayer((2, 13, 11), (3, 2, 3, 3), activation="relu"),
        ConvPoolLayer((3, 5, 4), (4, 3, 2, 2), activation="tanh"),
        FullyConnectedLayer(8, 6, "tanh", p_dropout=0.5), SoftmaxLayer(6, 10, p_dropout=0.5)],
    # 3x3 pooling straight into the softmax layer
    "conv into softmax": lambda: [ConvPoolLayer((1, 10, 10), (2, 1, 3, 3), pool=3),
                                  SoftmaxLayer(8, 4)],
    # a conv layer reading the maps before it as other images (an Unflatten between)
    "conv reshaped": lambda: [ConvPoolLayer((1, 6, 6), (2, 1, 3, 3)),
                              ConvPoolLayer((1, 4, 2), (3, 1, 1, 1), pool=1, activation="relu"),
                              SoftmaxLayer(24, 5)],
}


def random_network(layers, seed):
    """A float64 NumPy network with every parameter random (the softmax
    layer's start at 0, which would hide a transposed weight)."""
    net = ConvNetwork(layers, backend="numpy", dtype="float64", seed=seed)
    rng = numpy.random.default_rng(seed)
    for array in net.weights + net.biases:
        array[...] = rng.normal(0.0, 0.5, array.shape)
    return net


@pytest.mark.slow
@pytest.mark.parametrize("stack", STACKS)
def test_the_torch_model_is_our_network(stack):
    torch = pytest.importorskip("torch")
    from nn_gpu.bench.conv_peers import copy_parameters, torch_model, weighted_modules

    layers = STACKS[stack]()
    net = random_network(layers, seed=7)
    model = torch_model(torch, layers).double()
    modules = weighted_modules(torch, model)
    assert [tuple(m.weight.shape) for m in modules] == [w.shape for w in net.weights]
    assert [tuple(m.bias.shape) for m in modules] == [b.shape for b in net.biases]
    copy_parameters(torch, model, net.weights, net.biases)
    X = numpy.random.default_rng(1).random((5, layers[0].n_in))
    model.eval()  # dropout off, as our feedforward
    with torch.no_grad():
        theirs = torch.softmax(model(torch.from_numpy(X)), dim=1).numpy()
    ours = net.feedforward(X)
    assert theirs.shape == ours.shape == (5, layers[-1].n_out)
    numpy.testing.assert_allclose(theirs, ours, rtol=1e-11, atol=1e-14)


@pytest.mark.slow
def test_one_torch_epoch_is_our_sgd_step():
    """From the same seed, one mini-batch of the whole set: the same initial
    parameters, the same η, the same λ/n decay of the weights (not the biases)."""
    pytest.importorskip("torch")
    from nn_gpu.bench.conv_peers import TorchConvEpoch, weighted_modules

    layers = build("ch6-conv1").layers
    rng = numpy.random.default_rng(2)
    X, labels = rng.random((4, 784)), rng.integers(0, 10, 4)
    net = ConvNetwork(layers, backend="numpy", dtype="float64", seed=3)
    peer = TorchConvEpoch(layers, X, labels, 4, eta=0.5, l2=2.0, seed=3, dtype="float64")
    modules = weighted_modules(peer.torch, peer.model)
    before = [m.weight.detach().numpy().copy() for m in modules]
    numpy.testing.assert_array_equal(before[0], net.weights[0])
    net.epoch_runner((X, labels), 4, 0.5, l2=2.0)()
    peer()
    for module, w, b, w0 in zip(modules, net.weights, net.biases, before):
        assert not numpy.allclose(w, w0)
        numpy.testing.assert_allclose(module.weight.detach().numpy(), w, rtol=1e-10, atol=1e-13)
        numpy.testing.assert_allclose(module.bias.detach().numpy(), b, rtol=1e-10, atol=1e-13)


# ------------------------------------------------------------ the command
@pytest.mark.slow
@needs_mnist
def test_bench_conv_prints_the_table_and_writes_json(tmp_path):
    path = tmp_path / "conv.json"
    rc, out, _ = run("bench", "--conv", "ch6-conv1", "--data", str(DATA), "--train-size", "20",
                     "--batch-sizes", "10", "--repeats", "1", "--backend", "numpy", "--threads",
                     "1", "--peers", "--json", str(path))
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("nn-gpu bench: NumPy ") and "conv ch6-conv1" in lines[0]
    assert "float32" in lines[0] and "train size 20;" in lines[0]
    assert lines[1].split()[:9] == ["batch", "s/epoch", "examples/s", "GEMM", "GFLOP/s",
                                    "floor", "s", "x", "floor"]
    row = ROW.match(lines[2])
    assert row and row[1] == "10", lines[2]
    assert "median of 1 epoch after 1 warm-up epoch" in out
    assert out.rstrip().endswith(f"Results written to {path}")
    doc = json.loads(path.read_text())
    assert doc["format"] == "nn_gpu.bench" and doc["config"]["conv"] == "ch6-conv1"
    assert doc["config"]["layers"] == CONV_PRESETS["ch6-conv1"]["layers"]
    assert doc["config"]["eta"] == 0.1 and doc["config"]["threads"] == 1
    result, = doc["results"]
    assert result["batch_size"] == 10 and len(result["seconds"]) == 1
    assert result["epoch_flops"] == conv_epoch_flops(build("ch6-conv1").layers, 10, 20)
    assert result["floor_seconds"] == pytest.approx(
        min(result["epoch_flops"] / result["gemm_flops_per_second"], min(result["seconds"])))
    assert result["times_floor"] >= 1
    assert result["times_floor"] == pytest.approx(result["median_seconds"] / result["floor_seconds"])
    if doc["skipped"]:  # no PyTorch here: one line says so, and no column
        assert "PyTorch: skipped, PyTorch is not installed" in out and row[7] is None
    else:
        assert "(CPU, 1 thread)" in result["peer"] and result["peer_threads"] == 1
        assert float(row[8]) == pytest.approx(result["peer_times_nn_gpu"], abs=0.006)
        assert result["peer_times_nn_gpu"] == pytest.approx(
            result["peer_median_seconds"] / result["median_seconds"])


@pytest.mark.slow
@needs_mnist
def test_bench_layers_file(tmp_path):
    layers = tmp_path / "layers.json"
    layers.write_text(json.dumps([
        {"kind": "conv_pool", "image_shape": [1, 28, 28], "filter_shape": [2, 1, 5, 5]},
        {"kind": "softmax", "n_in": 288, "n_out": 10}]))
    rc, out, _ = run("bench", "--layers", str(layers), "--data", str(DATA), "--train-size", "20",
                     "--batch-sizes", "5", "20", "--repeats", "1", "--backend", "numpy")
    assert rc == 0, out
    assert f"conv {layers};" in out.splitlines()[0]
    assert [ROW.match(line)[1] for line in out.splitlines()[2:4]] == ["5", "20"]


@pytest.mark.parametrize("argv, message", [
    (["--sizes", "784", "30", "10"], "--sizes does not apply to a convolutional network"),
    (["--methods", "per_example"], "--methods per_example does not apply"),
    (["--busy"], "--busy does not apply"),
    (["--layers", "l.json"], "argument --layers: not allowed with argument --conv"),
    (["--peers", "--dtype", "float64"], "--peers measures float32 epochs"),
    (["--train-size", "5", "--batch-sizes", "10"], "larger than the training set"),
])
def test_bad_combinations_are_one_line(argv, message):
    rc, out, err = run("bench", "--conv", "ch6-conv1", "--data", str(DATA), *argv)
    assert rc == 2
    assert out == "" and err.count("\n") == 1 and message in err, err


def test_unknown_preset_bad_layers_file_and_mlp_cpu_time_are_one_line(tmp_path):
    rc, _, err = run("bench", "--conv", "ch6-nope")
    assert rc == 2 and "argument --conv: invalid choice: 'ch6-nope'" in err
    rc, _, err = run("bench", "--cpu-time")
    assert rc == 2 and "--cpu-time applies to --conv" in err
    bad = tmp_path / "layers.json"
    bad.write_text('{"kind": "softmax"}')
    rc, _, err = run("bench", "--layers", str(bad), "--data", str(tmp_path))
    assert rc == 1
    assert err.count("\n") == 1 and "not a JSON list of layers" in err, err


def test_conv_flops_count_the_backprop_the_epoch_does():
    """Where the CPU kernels backprop from the pooled units (k·C >= 8: the
    second layer of ch6-conv2, 20 maps x 5), its two backward products run
    over one row per pooled unit, 10·4·4, not per conv output, 10·8·8."""
    from nn_gpu.backends import get_backend
    from nn_gpu.bench.conv_flops import conv_step_gemms, sparse_from
    from nn_gpu.bench.timing import Gemm
    from nn_gpu.convnet.kernels import SPARSE_MIN_RUN

    layers = build("ch6-conv2").layers
    dense, pooled = conv_step_gemms(layers, 10), conv_step_gemms(layers, 10, sparse_from=8)
    assert dense[3:5] == [Gemm("conv weight gradient 2", 40, 640, 500, "TN"),
                          Gemm("conv backprop 2", 640, 40, 500, "NN")]
    assert pooled[3:5] == [Gemm("conv weight gradient (pooled units) 2", 40, 160, 500, "TN"),
                           Gemm("conv backprop (pooled units) 2", 160, 40, 500, "NN")]
    assert pooled[:3] == dense[:3] and pooled[5:] == dense[5:]   # the first layer: k·C = 5
    assert conv_epoch_flops(layers, 10, 100, 8) == 10 * sum(g.flops for g in pooled)
    assert sparse_from(get_backend("numpy")) == SPARSE_MIN_RUN
