"""The hostile suite of ``nn-gpu train`` with either kind of network and
with resumes: outputs that would overwrite an input, checkpoints with
another kind of network or damaged settings, options a conv resume used to
drop, ``--layers`` files that hang, eat memory or do not fit MNIST, and the
frictions of a first hour (the history kept across an interrupt, a run stuck
at chance, a resume with nothing to do, which weights were saved).

Each test is named after its class (``test_lost_``, ``test_traceback_``,
``test_silent_``, ``test_unclear_``, ``test_friction_``); each failed
before the single training loop and the single ``train``, but for two
guards of what held already and must go on holding: a conv resume is bit for
bit, and healthy runs are never taken for stuck ones.
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import numpy
import pytest
from conftest import REPO_ROOT, one_error, run
from fuzzing import memory_cap
from test_hostile import deadline, fifo

from nn_gpu import Network
from nn_gpu.cli import train as train_command
from nn_gpu.convnet import ConvNetwork
from nn_gpu.io.history import load_history
from nn_gpu.training.checkpoint import Checkpoint

#: A conv network small enough for dozens of runs: 2 5x5 filters, softmax.
LAYERS = [{"kind": "conv_pool", "image_shape": [1, 28, 28], "filter_shape": [2, 1, 5, 5],
           "pool": 2, "activation": "relu"},
          {"kind": "softmax", "n_in": 288, "n_out": 10}]
MLP = ["train", "--sizes", "784", "8", "10", "--batch-size", "10", "--seed", "1", "--quiet"]


def layers_file(path, layers=LAYERS):
    path.write_text(json.dumps(layers))
    return path


def conv(tmp_path, *extra):
    return ["train", "--layers", layers_file(tmp_path / "layers.json"), "--batch-size", "10",
            "--eta", "0.1", "--seed", "1", "--quiet", *extra]


def epochs_of(path):
    return [entry["epoch"] for entry in load_history(path)["epochs"]]


def one_epoch(tmp_path_factory, small_mnist, argv):
    """The checkpoint directory of ``nn-gpu ARGV --epochs 1`` on :func:`small_mnist`
    (a checkpoint holds no path: a copy resumes as the original does)."""
    directory = tmp_path_factory.mktemp("one_epoch")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NN_GPU_DATA", str(small_mnist))
        status, _, err = run(*argv(directory), "--epochs", "1",
                             "--checkpoint-dir", directory / "ck")
    assert status == 0, err
    return directory / "ck"


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory, small_mnist):
    """A conv run of 1 epoch's checkpoint directory, trained once for the module."""
    return one_epoch(tmp_path_factory, small_mnist, lambda directory: conv(directory))


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory, small_mnist):
    """A run of 1 epoch of MLP's checkpoint directory, trained once for the module."""
    return one_epoch(tmp_path_factory, small_mnist, lambda directory: MLP)


@pytest.fixture
def conv_checkpoint(tmp_path, small_data, conv_run):
    """A conv run of 1 epoch checkpointed in tmp_path/ck (a copy of
    :func:`conv_run`, for this test to tamper with), its layers file beside it."""
    layers_file(tmp_path / "layers.json")
    shutil.copytree(conv_run, tmp_path / "ck")
    return Checkpoint(tmp_path / "ck")


@pytest.fixture
def mlp_checkpoint(tmp_path, small_data, mlp_run):
    """A run of 1 epoch of MLP checkpointed in tmp_path/mk (a copy of :func:`mlp_run`)."""
    shutil.copytree(mlp_run, tmp_path / "mk")
    return Checkpoint(tmp_path / "mk")


def rewrite_conv_checkpoint(checkpoint, change_meta):
    """:func:`test_hostile.rewrite_checkpoint` for a conv network's checkpoint."""
    meta, arrays = checkpoint.load(ConvNetwork.checkpoint_arrays)
    change_meta(meta)
    import zipfile

    with zipfile.ZipFile(checkpoint.path, "w") as archive:
        for name, array in {"metadata": numpy.array(json.dumps(meta)), **arrays}.items():
            with archive.open(f"{name}.npy", "w") as member:
                numpy.lib.format.write_array(member, numpy.array(array), allow_pickle=False)


# ------------------------------------------------ data lost on the conv path
@pytest.mark.parametrize("flag", ["--save", "--history"])
def test_lost_an_output_that_is_the_layers_file_is_refused(tmp_path, flag):
    layers = layers_file(tmp_path / "layers.json")
    status, out, err = run("train", "--layers", layers, flag, layers, "--data",
                           tmp_path / "no-mnist")
    one_error(err, status)
    assert f"{flag} {layers}: is the same file as --layers {layers}" in err
    assert json.loads(layers.read_text()) == LAYERS and out == ""


def test_lost_a_link_to_the_layers_file_is_the_layers_file(tmp_path):
    layers = layers_file(tmp_path / "layers.json")
    (tmp_path / "link.json").symlink_to(layers)
    status, _, err = run("train", "--layers", layers, "--history",
                         tmp_path / "link.json", "--data", tmp_path / "no-mnist")
    one_error(err, status)
    assert "is the same file as --layers" in err and json.loads(layers.read_text()) == LAYERS


@pytest.mark.parametrize("source", [["--preset", "ch6-conv1"], ["--layers", "LAYERS"]])
def test_lost_save_and_history_the_same_file_are_refused(tmp_path, source):
    source = [str(layers_file(tmp_path / "l.json")) if word == "LAYERS" else word
              for word in source]
    same = tmp_path / "out.json"
    status, _, err = run("train", *source, "--save", same, "--history", same,
                         "--data", tmp_path / "no-mnist")
    one_error(err, status)
    assert "is the same file as --history" in err and not same.exists()


def test_lost_the_checkpoint_is_no_output_of_a_conv_run(tmp_path):
    (tmp_path / "ck").mkdir()
    status, _, err = run(*conv(tmp_path), "--checkpoint-dir", tmp_path / "ck",
                         "--save", tmp_path / "ck" / "checkpoint.npz",
                         "--data", tmp_path / "no-mnist")
    one_error(err, status)
    assert "--checkpoint-dir" in err and "is the same file as --save" in err


# --------------------------------------------- tracebacks of conv checkpoints
def assert_refused_on_resume(tmp_path, checkpoint, option):
    """``train --resume`` of ``checkpoint`` with ``option`` ("LAYERS": a layers
    file) is one usage error naming the option, before any training."""
    option = [str(layers_file(tmp_path / "l.json")) if w == "LAYERS" else w for w in option]
    status, out, err = run("train", "--resume", checkpoint.directory, *option)
    one_error(err, status, 2)
    assert f"{option[0]} cannot be given with it" in err and "Epoch" not in out


@pytest.mark.parametrize("option", [["--layers", "LAYERS"], ["--preset", "ch6-conv1"]])
def test_traceback_an_mlp_checkpoint_with_conv_options_is_one_line(tmp_path,
                                                                  mlp_checkpoint, option):
    assert_refused_on_resume(tmp_path, mlp_checkpoint, option)


@pytest.mark.parametrize("option", [["--sizes", "784", "8", "10"], ["--cost", "quadratic"],
                                    ["--digit", "3"]])
def test_traceback_a_conv_checkpoint_with_mlp_options_is_one_line(tmp_path,
                                                                 conv_checkpoint, option):
    assert_refused_on_resume(tmp_path, conv_checkpoint, option)


@pytest.mark.parametrize("change, words", [
    (lambda config: config.pop("layers"), "no list of layers"),
    (lambda config: config.update(layers=None), "no list of layers"),
    (lambda config: config.update(layers=[{"kind": "eval"}]), "layers: "),
    (lambda config: config.update(dtype=None), "dtype None: must be set"),
    (lambda config: config["options"].update(batch_size=None), "batch_size None"),
    (lambda config: config["options"].pop("eta"), "no 'eta'"),
    (lambda config: config["options"].update(sizes=[784, 10]), "unknown setting 'sizes'"),
])
def test_traceback_a_conv_checkpoint_lacking_or_nulling_a_field_names_it(
        tmp_path, conv_checkpoint, change, words):
    rewrite_conv_checkpoint(conv_checkpoint, lambda meta: change(meta["config"]))
    status, out, err = run("train", "--resume", conv_checkpoint.directory, "--epochs",
                           "2")
    one_error(err, status)
    assert err.startswith(f"nn-gpu: error: {conv_checkpoint.path}: its stored settings")
    assert words in err and "Epoch" not in out


def test_traceback_stored_layers_of_another_network_are_refused(tmp_path,
                                                                conv_checkpoint):
    other = [{**LAYERS[0], "filter_shape": [3, 1, 5, 5]}, {**LAYERS[1], "n_in": 432}]
    rewrite_conv_checkpoint(conv_checkpoint, lambda meta: meta["config"].update(layers=other))
    status, _, err = run("train", "--resume", conv_checkpoint.directory, "--epochs", "2")
    one_error(err, status)
    assert f"{conv_checkpoint.path}: the checkpoint is of another network" in err


# ------------------------------------------- silent wrong results of a resume
@pytest.mark.slow
def test_silent_eta_given_to_a_conv_resume_applies(tmp_path, conv_checkpoint):
    status, out, err = run("train", "--resume", conv_checkpoint.directory, "--eta",
                           "0.05", "--epochs", "2", "--history", tmp_path / "h.json")
    assert status == 0, err
    history = load_history(tmp_path / "h.json")
    assert [entry["eta"] for entry in history["epochs"]] == [0.1, 0.05]
    status, out, err = run("train", "--resume", conv_checkpoint.directory, "--epochs",
                           "3", "--history", tmp_path / "h.json")
    assert status == 0, err
    assert load_history(tmp_path / "h.json")["epochs"][-1]["eta"] == 0.05  # and stays


@pytest.mark.parametrize("option", [["--batch-size", "20"], ["--l2", "0.5"],
                                    ["--layers", "LAYERS"], ["--expand"], ["--seed", "3"],
                                    ["--early-stopping", "2"], ["--save-best"]])
def test_silent_options_a_conv_resume_cannot_change_are_refused(tmp_path,
                                                               conv_checkpoint, option):
    assert_refused_on_resume(tmp_path, conv_checkpoint, option)


def test_a_conv_resume_through_the_command_is_bit_for_bit_the_uninterrupted_run(
        tmp_path, conv_checkpoint):
    """(A guard of the shared loop, not a class of failure: it held before.)"""
    status, _, err = run("train", "--resume", conv_checkpoint.directory, "--epochs",
                         "2", "--save", tmp_path / "resumed.npz")
    assert status == 0, err
    status, _, err = run(*conv(tmp_path, "--epochs", "2", "--save",
                                       tmp_path / "straight.npz"))
    assert status == 0, err
    resumed, straight = (ConvNetwork.load(tmp_path / name, backend="numpy")
                         for name in ("resumed.npz", "straight.npz"))
    for a, b in zip(resumed.weights + resumed.biases, straight.weights + straight.biases):
        numpy.testing.assert_array_equal(a, b)


# -------------------------------------------------- unclear --layers messages
def test_unclear_a_fifo_layers_file_never_hangs(tmp_path):
    with deadline(10):
        status, _, err = run("train", "--layers", fifo(tmp_path / "l.json"))
    one_error(err, status)
    assert f"--layers {tmp_path / 'l.json'}: cannot be read" in err and "FIFO" in err


def test_unclear_a_device_as_layers_file_is_refused(tmp_path):
    with deadline(10), memory_cap():  # read to its end, /dev/zero would fill the memory
        status, _, err = run("train", "--layers", "/dev/zero")
    one_error(err, status)
    assert "--layers /dev/zero: cannot be read" in err and "character device" in err


def test_unclear_a_huge_layers_file_is_refused_by_its_size(tmp_path):
    huge = tmp_path / "l.json"
    huge.write_text("[" + " " * (2 << 20) + "]")
    status, _, err = run("train", "--layers", huge)
    one_error(err, status)
    assert f"--layers {huge}: cannot be read" in err and "more than any layers file" in err


@pytest.mark.parametrize("layers, words", [
    ([{**LAYERS[0], "image_shape": [1, 10, 10]}, {**LAYERS[1], "n_in": 18}],
     "the first layer must be 784"),
    ([LAYERS[0], {**LAYERS[1], "n_out": 5}], "the last 10 (digits)"),
])
def test_unclear_a_shape_mismatch_with_mnist_names_the_file_before_loading_data(
        tmp_path, layers, words):
    path = layers_file(tmp_path / "l.json", layers)
    status, _, err = run("train", "--layers", path, "--data", tmp_path / "no-mnist")
    one_error(err, status)
    assert err.startswith(f"nn-gpu: error: --layers {path}: layer sizes") and words in err


@pytest.mark.parametrize("layers, words", [
    ([{"kind": "fully_connected", "n_in": 784, "n_out": 10**9, "activation": "relu"},
      {"kind": "softmax", "n_in": 10**9, "n_out": 10}], "parameters) needs"),
    ([{**LAYERS[0], "filter_shape": [10**6, 1, 5, 5]},
      {**LAYERS[1], "n_in": 144 * 10**6}], "needs"),
])
def test_unclear_memory_a_layers_file_needs_names_the_file_not_sizes(tmp_path, layers,
                                                                     words):
    path = layers_file(tmp_path / "l.json", layers)
    status, _, err = run("train", "--layers", path, "--data", tmp_path / "no-mnist")
    one_error(err, status)
    assert str(path) in err and words in err and "--sizes" not in err


def test_unclear_mini_batches_too_large_for_memory_name_the_run(tmp_path):
    wide = [{**LAYERS[0], "filter_shape": [20000, 1, 5, 5]},
            {**LAYERS[1], "n_in": 2880000}]
    path = layers_file(tmp_path / "l.json", wide)
    status, _, err = run("train", "--layers", path, "--batch-size", "5000",
                         "--data", tmp_path / "no-mnist")
    one_error(err, status)
    assert f"training {path} in mini-batches of 5000 needs" in err


def test_silent_threads_given_to_a_conv_run_are_refused_not_ignored(tmp_path,
                                                                   conv_checkpoint):
    for argv in ([*conv(tmp_path), "--threads", "2"],
                 ["train", "--resume", conv_checkpoint.directory, "--epochs", "2",
                  "--threads", "2"]):
        status, out, err = run(*argv)
        one_error(err, status, 2)
        assert "--threads" in err and "a convolutional network does not use it" in err


# ------------------------------------------------------------- frictions
class SigtermAfterTwo(train_command.EpochReport):
    """The epoch report, then SIGTERM to this process after epoch 2 (as
    `kill` would: the command's handler turns it into an interrupt)."""

    def __call__(self, record):
        super().__call__(record)
        if record["epoch"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)


def suggested_command(err):
    """The resume command the interrupt message suggests, as argv for main()."""
    command = re.search(r"continue with `([^`]*)`", err)[1]
    words = shlex.split(command)
    assert words[:2] == ["nn-gpu", "train"]
    return words[1:]


@pytest.mark.slow
def test_friction_the_suggested_resume_keeps_the_whole_history(tmp_path, small_data,
                                                              monkeypatch):
    history, model = tmp_path / "run h.json", tmp_path / "m.npz"
    monkeypatch.setattr(train_command, "EpochReport", SigtermAfterTwo)
    status, _, err = run(*MLP, "--epochs", "4", "--checkpoint-dir", tmp_path / "ck",
                         "--history", history, "--save", model)
    assert status == 130 and epochs_of(history) == [1, 2]
    monkeypatch.setattr(train_command, "EpochReport", SigtermAfterTwo.__base__)
    argv = suggested_command(err)
    assert "--history" in argv and "--save" in argv
    status, _, err = run(*argv)
    assert status == 0, err
    assert epochs_of(history) == [1, 2, 3, 4] and model.exists()


@pytest.mark.slow
def test_friction_sigterm_then_the_suggested_command_keeps_the_whole_history(tmp_path,
                                                                            small_mnist):
    """The same flow as a user meets it: a separate process, SIGTERM after epoch 1."""
    history = tmp_path / "h.json"
    env = {**os.environ, "NN_GPU_DATA": str(small_mnist), "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "nn_gpu", *conv(tmp_path, "--epochs", "6",
                                                  "--checkpoint-dir", tmp_path / "ck",
                                                  "--history", history)]
    process = subprocess.Popen([str(word) for word in argv], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if history.exists() and load_history_or_none(history):
                break
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    done = epochs_of(history)
    resumed = subprocess.run([sys.executable, "-m", "nn_gpu", *suggested_command(err)],
                             env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert done and done == list(range(1, len(done) + 1)) and len(done) < 6
    assert epochs_of(history) == [1, 2, 3, 4, 5, 6]


def load_history_or_none(path):
    try:
        return load_history(path)["epochs"]
    except Exception:  # noqa: BLE001 - not written yet, or no epoch yet
        return None


@pytest.mark.slow
@pytest.mark.parametrize("option", [[], ["--cost", "cross_entropy"],
                                    ["--activation", "relu", "--cost", "log_likelihood"]])
def test_friction_a_run_stuck_at_chance_is_an_error_with_advice(tmp_path, small_data,
                                                               option):
    history = tmp_path / "h.json"
    status, out, err = run(*MLP, "--epochs", "12", "--eta", "1000", *option,
                           "--history", history, "--save", tmp_path / "m.npz")
    one_error(err, status)
    assert "training is stuck at chance after epoch" in err and "eta = 1000" in err
    assert len(epochs_of(history)) < 12 and not (tmp_path / "m.npz").exists()


@pytest.mark.slow
def test_friction_a_frozen_run_is_stuck_and_a_checkpoint_resumes_with_another_eta(
        tmp_path, small_data):
    status, _, err = run(*MLP, "--epochs", "12", "--eta", "1e-9",
                         "--checkpoint-dir", tmp_path / "ck")
    one_error(err, status)
    assert "stuck at chance" in err and f"kept in {tmp_path / 'ck'}" in err
    status, out, err = run("train", "--resume", tmp_path / "ck", "--eta", "3")
    assert status == 0, err


@pytest.mark.slow
def test_friction_healthy_runs_are_never_stuck(tmp_path, small_data):
    """Runs that learn, fast or slowly: the book's, a slow start (a tiny η that
    still lowers the cost), a conv net, a detector."""
    for argv in ([*MLP, "--epochs", "8"], [*MLP, "--epochs", "8", "--eta", "0.02"],
                 [*conv(tmp_path), "--epochs", "7"],
                 ["train", "--sizes", "784", "8", "1", "--digit", "3", "--epochs", "7"]):
        status, _, err = run(*argv)
        assert status == 0, (argv, err)


@pytest.mark.parametrize("option, words", [
    (["--epochs", "1"], "already holds 1 epochs and the run has 1 in all"),
    ([], "already holds 1 epochs and the run has 1 in all"),
])
def test_friction_a_resume_with_nothing_to_do_says_so_in_one_line(tmp_path,
                                                                  mlp_checkpoint, option,
                                                                  words):
    status, out, err = run("train", "--resume", mlp_checkpoint.directory, *option,
                           "--data", tmp_path / "no-mnist")
    one_error(err, status, 2)
    assert words in err and "--epochs N with N > 1" in err and out == ""


def test_friction_a_resume_of_a_run_that_stopped_early_has_nothing_to_do(tmp_path,
                                                                       small_data):
    status, _, err = run(*MLP, "--epochs", "6", "--eta", "1e-12", "--early-stopping",
                         "1", "--checkpoint-dir", tmp_path / "ck")
    assert status == 0, err
    status, out, err = run("train", "--resume", tmp_path / "ck", "--epochs", "9")
    one_error(err, status, 2)
    assert "the run stopped after epoch 2 (early stopping" in err and out == ""


@pytest.mark.slow
def test_friction_the_saved_epoch_is_said_and_save_best_keeps_the_best(tmp_path,
                                                                       small_data):
    status, out, err = run(*MLP[:-1], "--epochs", "4", "--eta", "3",
                           "--save", tmp_path / "last.npz")
    assert status == 0 and f"Model saved to {tmp_path / 'last.npz'} (epoch 4)" in out
    status, out, err = run(*MLP[:-1], "--epochs", "4", "--eta", "3", "--save-best",
                           "--save", tmp_path / "best.npz", "--history", tmp_path / "h.json")
    assert status == 0, err
    epochs = load_history(tmp_path / "h.json")["epochs"]
    best = max(epochs, key=lambda e: e["validation_accuracy"])
    assert f"(epoch {best['epoch']}, the best validation accuracy)" in out
    status, out, _ = run("evaluate", tmp_path / "best.npz")
    assert f"test accuracy: {round(best['test_accuracy'] * 200)} / 200" in out


@pytest.mark.slow
def test_friction_save_best_needs_save_and_resumes_bit_for_bit(tmp_path, small_data):
    status, _, err = run(*MLP, "--save-best")
    one_error(err, status, 2)
    assert "give --save FILE" in err
    base = [*MLP, "--eta", "3", "--save-best"]
    assert run(*base, "--epochs", "3", "--save", tmp_path / "a.npz")[0] == 0
    assert run(*base, "--epochs", "3", "--save", tmp_path / "x.npz",
               "--checkpoint-dir", tmp_path / "ck")[0] == 0
    status, _, err = run("train", "--resume", tmp_path / "ck", "--epochs", "5",
                         "--save", tmp_path / "b.npz")
    assert status == 0, err
    assert run(*base, "--epochs", "5", "--save", tmp_path / "c.npz")[0] == 0
    resumed, straight = (Network.load(tmp_path / n, backend="numpy") for n in ("b.npz", "c.npz"))
    for a, b in zip(resumed.weights + resumed.biases, straight.weights + straight.biases):
        numpy.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_friction_the_book_is_quoted_only_for_the_presets_own_run(tmp_path, small_data,
                                                                  monkeypatch):
    from nn_gpu.cli.train_run import Run

    run_of = Run("conv", {"epochs": 60, "batch_size": 10, "eta": 0.1, "l2": 0.0,
                          "expand": False, "eta_schedule": None, "early_stopping": None,
                          "monitor": []}, preset="ch6-conv1")
    assert run_of.uses_preset_settings()
    for change in ({"train_size": 2000}, {"changes": {"--eta": (0.1, 0.05)}}):
        assert not Run(**{**vars(run_of), **change}).uses_preset_settings()
    assert not Run(**{**vars(run_of), "options": {**run_of.options, "epochs": 1}}
                   ).uses_preset_settings()
    status, out, err = run("train", "--preset", "ch6-conv1", "--epochs", "1",
                           "--train-size", "100")
    assert status == 0, err
    assert "Test accuracy at the best validation epoch (1): " in out and "the book" not in out


@pytest.mark.slow
def test_friction_conv_curves_have_costs_and_a_readable_accuracy_axis(tmp_path, small_data):
    pytest.importorskip("matplotlib")
    from nn_gpu.analysis import plots

    status, _, err = run(*conv(tmp_path, "--epochs", "2", "--history",
                                       tmp_path / "h.json"))
    assert status == 0, err
    history = load_history(tmp_path / "h.json")
    assert all("validation_cost" in e and "test_cost" in e for e in history["epochs"])
    fig = plots.plot_curves(history, tmp_path / "c.png")
    cost_ax, _ = fig.axes
    assert len(cost_ax.get_lines()) == 2
    epochs = [{"epoch": e, "validation_accuracy": v, "test_accuracy": v + 0.001}
              for e, v in enumerate([0.94, 0.975, 0.981, 0.984, 0.986, 0.987, 0.988,
                                     0.989, 0.990, 0.990, 0.991], 1)]
    fig = plots.plot_curves({"config": {"layers": LAYERS}, "epochs": epochs},
                            tmp_path / "d.png")
    low, high = fig.axes[0].get_ylim()
    assert 97 < low < 98 and 99 < high < 99.5  # the 98-99% region fills the axis


def test_no_attribute_is_added_to_the_argparse_namespace(tmp_path, small_data,
                                                         monkeypatch):
    from nn_gpu.cli import build_parser

    seen = {}

    def recording(args, parser):
        before = set(vars(args))
        try:
            return train_command.cmd_train(args, parser)
        finally:
            seen["added"] = set(vars(args)) - before

    args = build_parser().parse_args([*MLP, "--epochs", "1"])
    parser = args.func.keywords["parser"]
    assert recording(args, parser) == 0 and seen["added"] == set()
