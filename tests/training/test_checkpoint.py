"""Checkpoints: exact resume, atomic writes, divergence, and bad files."""

import numpy
import pytest

from nn_gpu import Network
from nn_gpu.errors import CheckpointError, TrainingDivergedError
from nn_gpu.training.checkpoint import Checkpoint

RUNS = {
    # compiled CPU epoch: momentum velocities, L2, the η schedule
    "compiled": dict(kwargs={"momentum": 0.5, "l2": 1.0, "eta_schedule": 1},
                     net={"cost": "log_likelihood", "activation": "relu", "init": "scaled"}),
    # the core's loop: dropout masks from their own generator, early stopping
    "dropout": dict(kwargs={"dropout": 0.3, "early_stopping": 3},
                    net={"cost": "cross_entropy"}),
}


def train(mnist_slice, tmp_path, run, epochs, resume=False, checkpoint_dir="ckpt"):
    training, test = mnist_slice
    net = Network([784, 20, 10], backend="numpy", seed=11, **RUNS[run]["net"])
    history = net.sgd(training, epochs, 25, 0.1, validation_data=test,
                      checkpoint=Checkpoint(tmp_path / checkpoint_dir), resume=resume,
                      monitor_training_cost=True, **RUNS[run]["kwargs"])
    return net, history


def without_seconds(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


@pytest.mark.parametrize("run", sorted(RUNS))
def test_two_plus_two_epochs_equal_four_bit_for_bit(mnist_slice, tmp_path, run):
    straight, straight_history = train(mnist_slice, tmp_path, run, 4, checkpoint_dir="a")
    train(mnist_slice, tmp_path, run, 2, checkpoint_dir="b")
    resumed, resumed_history = train(mnist_slice, tmp_path, run, 4, resume=True,
                                     checkpoint_dir="b")
    for a, b in zip(straight.weights + straight.biases, resumed.weights + resumed.biases):
        numpy.testing.assert_array_equal(a, b)
    assert without_seconds(resumed_history) == without_seconds(straight_history)
    assert len(resumed_history) == 4


def test_a_crash_while_writing_keeps_the_previous_checkpoint(mnist_slice, tmp_path, monkeypatch):
    train(mnist_slice, tmp_path, "compiled", 2)
    before = (tmp_path / "ckpt" / "checkpoint.npz").read_bytes()
    real_savez = numpy.savez

    def crash(handle, **arrays):
        real_savez(handle, **{k: v for k, v in list(arrays.items())[:2]})  # half written
        raise OSError("power cut")
    monkeypatch.setattr(numpy, "savez", crash)
    with pytest.raises(OSError, match="power cut"):
        train(mnist_slice, tmp_path, "compiled", 3, resume=True)
    assert (tmp_path / "ckpt" / "checkpoint.npz").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["checkpoint.npz"]
    meta, _ = Checkpoint(tmp_path / "ckpt").load(Network.checkpoint_arrays)
    assert len(meta["state"]["history"]) == 2


def test_divergence_stops_with_a_clear_error_and_keeps_the_good_checkpoint(mnist_slice,
                                                                          tmp_path):
    training, test = mnist_slice
    net = Network([784, 20, 10], backend="numpy", seed=1)

    def poison(record):  # after epoch 1 is saved, something makes a weight NaN
        net.weights[0][0, 300] = numpy.nan
    with pytest.raises(TrainingDivergedError, match=r"diverged in epoch 2: the weights became "
                                                     r"NaN or infinite.*eta = 3.*too large"):
        net.sgd(training, 5, 10, 3.0, test_data=test, callback=poison,
                checkpoint=Checkpoint(tmp_path / "ckpt"))
    meta, arrays = Checkpoint(tmp_path / "ckpt").load(Network.checkpoint_arrays)
    assert len(meta["state"]["history"]) == 1 and numpy.isfinite(arrays["w0"]).all()


def test_a_huge_learning_rate_is_reported_as_divergence(mnist_slice):
    """The stable σ, softmax and costs keep even η = 100 finite (if useless);
    an η that overflows float32 must end in the divergence error."""
    training, _ = mnist_slice
    net = Network([784, 20, 10], cost="cross_entropy", activation="relu", backend="numpy",
                  seed=1, init="scaled")
    with pytest.raises(TrainingDivergedError, match="eta = 1e\\+30"), \
            numpy.errstate(all="ignore"):
        net.sgd(training, 3, 10, 1e30, monitor_training_cost=True)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_damaged_checkpoints_are_clear_errors(mnist_slice, tmp_path, damage):
    train(mnist_slice, tmp_path, "compiled", 1)
    path = tmp_path / "ckpt" / "checkpoint.npz"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"not a checkpoint at all")
    else:
        for i in range(200, len(data), 997):
            data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checkpoint.npz"):
        train(mnist_slice, tmp_path, "compiled", 2, resume=True)


def test_a_checkpoint_of_another_run_is_refused(mnist_slice, tmp_path):
    train(mnist_slice, tmp_path, "compiled", 1)
    training, test = mnist_slice
    other = Network([784, 30, 10], backend="numpy", seed=11, **RUNS["compiled"]["net"])
    with pytest.raises(CheckpointError, match=r"sizes is \[784, 20, 10\]"):
        other.sgd(training, 2, 25, 0.1, validation_data=test, resume=True,
                  checkpoint=Checkpoint(tmp_path / "ckpt"), **RUNS["compiled"]["kwargs"])
    same = Network([784, 20, 10], backend="numpy", seed=11, **RUNS["compiled"]["net"])
    with pytest.raises(CheckpointError, match="mini_batch_size = 25, this run has 10"):
        same.sgd(training, 2, 10, 0.1, validation_data=test, resume=True,
                 checkpoint=Checkpoint(tmp_path / "ckpt"), **RUNS["compiled"]["kwargs"])
    with pytest.raises(CheckpointError, match="no checkpoint here"):
        same.sgd(training, 2, 25, 0.1, resume=True, checkpoint=Checkpoint(tmp_path / "none"))


def test_progress_reports_every_example_once_per_epoch(mnist_slice):
    training, _ = mnist_slice
    seen = []
    Network([784, 10, 10], backend="numpy", seed=0).sgd(training, 2, 7, 1.0,
                                                        progress=seen.append)
    assert sum(seen) == 2 * len(training[1]) and len(seen) >= 40
