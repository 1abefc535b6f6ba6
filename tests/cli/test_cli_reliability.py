"""nn-gpu train as an interrupted, diverging or long run meets it:
checkpoints, resume, SIGTERM, divergence, out of GPU memory, progress."""

import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time

import numpy
import pytest
from conftest import REPO_ROOT, mnist_dir, run

from nn_gpu import Network
from nn_gpu.training.checkpoint import Checkpoint

SMALL = ["--train-size", "2000", "--sizes", "784", "16", "10", "--seed", "3", "--momentum", "0.5",
         "--eta-schedule", "1"]


@pytest.fixture(autouse=True)
def data(monkeypatch, mnist):
    monkeypatch.setenv("NN_GPU_DATA", str(mnist_dir()))


@pytest.mark.slow
def test_two_epochs_and_a_resume_equal_four_epochs(tmp_path):
    assert run("train", *SMALL, "--epochs", "4", "--save", str(tmp_path / "a.npz"))[0] == 0
    assert run("train", *SMALL, "--epochs", "2",
               "--checkpoint-dir", str(tmp_path / "ck"))[0] == 0
    status, out, _ = run("train", "--resume", str(tmp_path / "ck"), "--epochs", "4",
                         "--save", str(tmp_path / "b.npz"), "--history", str(tmp_path / "h.json"))
    assert status == 0 and "Resuming after epoch 2" in out and "Epoch 3:" in out
    with numpy.load(tmp_path / "a.npz") as a, numpy.load(tmp_path / "b.npz") as b:
        for name in a.files:
            if name != "metadata":
                numpy.testing.assert_array_equal(a[name], b[name])
    history = json.loads((tmp_path / "h.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2, 3, 4]
    assert history["config"]["momentum"] == 0.5


@pytest.mark.slow
def test_a_checkpoint_is_never_overwritten_by_another_run(tmp_path):
    run("train", *SMALL, "--epochs", "1", "--checkpoint-dir", str(tmp_path / "ck"))
    before = (tmp_path / "ck" / "checkpoint.npz").read_bytes()
    status, out, err = run("train", *SMALL, "--epochs", "1",
                           "--checkpoint-dir", str(tmp_path / "ck"))
    assert status == 1 and "already holds a checkpoint" in err and "Epoch" not in out
    assert len(err.strip().splitlines()) == 1
    assert (tmp_path / "ck" / "checkpoint.npz").read_bytes() == before


@pytest.mark.slow
def test_resume_from_a_damaged_checkpoint_is_one_clear_line(tmp_path):
    run("train", *SMALL, "--epochs", "1", "--checkpoint-dir", str(tmp_path / "ck"))
    path = tmp_path / "ck" / "checkpoint.npz"
    path.write_bytes(path.read_bytes()[:1000])
    status, _, err = run("train", "--resume", str(tmp_path / "ck"))
    assert status == 1 and "damaged or not an nn_gpu checkpoint" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_divergence_exits_non_zero_with_the_epoch_and_the_cause(tmp_path):
    with numpy.errstate(all="ignore"):
        status, out, err = run("train", "--train-size", "1000", "--epochs", "3",
                               "--activation", "relu", "--cost", "cross_entropy",
                               "--init", "scaled", "--eta", "1e30")
    assert status == 1
    assert "diverged in epoch 1" in err and "too large" in err and "Traceback" not in err


def test_out_of_gpu_memory_is_one_line_with_a_suggestion(monkeypatch):
    class OutOfMemoryError(Exception):  # what cupy raises, by name
        pass

    def exhausted(*args, **kwargs):
        raise OutOfMemoryError("Out of memory allocating 4,000,000,000 bytes")
    monkeypatch.setattr(Network, "sgd", exhausted)
    status, _, err = run("train", "--train-size", "100", "--epochs", "1")
    assert status == 1
    assert "out of GPU memory" in err and "4,000,000,000 bytes" in err and "--batch-size" in err


def child_env():
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "NN_GPU_DATA": str(mnist_dir())}


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_the_run_resumes(tmp_path):
    command = [sys.executable, "-m", "nn_gpu", "train", "--train-size", "5000", "--epochs", "200",
               "--checkpoint-dir", str(tmp_path / "ck")]
    child = subprocess.Popen(command, env=child_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (tmp_path / "ck" / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert "Interrupted after epoch" in err and "--resume" in err and "Traceback" not in err
    meta, _ = Checkpoint(tmp_path / "ck").load(Network.checkpoint_arrays)  # whole, and loadable
    done = len(meta["state"]["history"])
    assert 1 <= done < 200 and f"checkpoint of epoch {done}" in err


def read_terminal(command):
    """Run ``command`` with stderr on an 80x24 pseudo-terminal; return
    (stdout, what the terminal received, exit status)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    child = subprocess.Popen(command, env=child_env(), stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)  # the child holds the terminal now: read it while it runs
    received = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        received += chunk
    os.close(leader)
    stdout = child.stdout.read().decode()
    return stdout, received.decode(errors="replace"), child.wait(timeout=120)


@pytest.mark.slow
def test_a_progress_bar_only_on_a_terminal():
    command = [sys.executable, "-m", "nn_gpu", "train", "--train-size", "3000", "--epochs", "1"]
    stdout, terminal, status = read_terminal(command)
    assert status == 0 and "Epoch 1:" in stdout
    assert "examples" in terminal                   # tqdm drew on the terminal
    piped = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and "examples" not in piped.stderr
