"""The hostile suite: damaged, tampered and special files, careless output
paths, absurd values, signals and memory limits (issue #12).

Each test is named after the class of failure it guards (``test_cNN_...``,
the numbering of the issue), so ``pytest --collect-only -q tests/test_hostile.py
| grep -c test_c05`` counts the cases of a class. Every one of them failed
before the fix. A FIFO that would hang is guarded by an alarm; memory is
capped with RLIMIT_AS where a case would otherwise allocate gigabytes.
"""

import contextlib
import gzip
import io
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import warnings
import zipfile
import zlib

import numpy
import pytest
from conftest import REPO_ROOT, one_error, one_line, run
from fuzzing import memory_cap

from nn_gpu import Network
from nn_gpu.data import mnist
from nn_gpu.data.expand import CACHE_NAME, expanded_training_set
from nn_gpu.errors import (
    CheckpointError,
    DataError,
    InvalidArgumentError,
    MemoryBudgetError,
    ModelFileError,
    NNGpuError,
)
from nn_gpu.io import fileio
from nn_gpu.training.checkpoint import Checkpoint

SMALL = [5, 4, 3]


class Blocked(BaseException):
    """A call blocked (not an Exception: no handler of the code under test may catch it)."""


@contextlib.contextmanager
def deadline(seconds=5):
    """Fail, instead of hanging the suite, where a call blocks (on a FIFO)."""
    def expired(signum, frame):
        raise Blocked(f"blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def fifo(path):
    os.mkfifo(path)
    return path


def char_device(path):
    """A character device node like /dev/null, or skip where one cannot be made."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, AttributeError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    return path


def saved_model(path, sizes=SMALL, seed=0):
    Network(sizes, backend="numpy", seed=seed).save(path)
    return path


def trained_checkpoint(directory, mnist_slice, epochs=1):
    net = Network([784, 8, 10], backend="numpy", seed=1)
    net.sgd(mnist_slice[0], epochs, 10, 0.5, validation_data=mnist_slice[1],
            checkpoint=Checkpoint(directory))
    return Checkpoint(directory)


def rewrite_checkpoint(checkpoint, change_state=None, change_arrays=None, change_meta=None):
    """Write ``checkpoint`` back with its state, arrays or metadata changed
    (as a tamperer would)."""
    meta, arrays = checkpoint.load(Network.checkpoint_arrays)
    arrays = {name: numpy.array(array) for name, array in arrays.items()}
    for change, what in ((change_state, meta["state"]), (change_arrays, arrays),
                         (change_meta, meta)):
        if change:
            change(what)
    with zipfile.ZipFile(checkpoint.path, "w") as archive:
        for name, array in {"metadata": numpy.array(json.dumps(meta)), **arrays}.items():
            with archive.open(f"{name}.npy", "w") as member:
                numpy.lib.format.write_array(member, array, allow_pickle=False)


def resume(checkpoint, mnist_slice, epochs=2):
    net = Network([784, 8, 10], backend="numpy", seed=1)
    return net.sgd(mnist_slice[0], epochs, 10, 0.5, validation_data=mnist_slice[1],
                   checkpoint=checkpoint, resume=True)


# ---------------------------------------------------------------------------
# 1. A checkpoint is data: damaged values are reported as damage, naming it.
@pytest.mark.parametrize("value", [numpy.nan, numpy.inf, -numpy.inf])
@pytest.mark.parametrize("array", ["w0", "b1"])
def test_c01_non_finite_weights_in_a_checkpoint_are_damage(tmp_path, mnist_slice, value, array):
    checkpoint = trained_checkpoint(tmp_path / "ck", mnist_slice)

    def poison(arrays):
        arrays[array].flat[0] = value
    rewrite_checkpoint(checkpoint, change_arrays=poison)
    with pytest.raises(CheckpointError) as error:
        resume(checkpoint, mnist_slice)
    message = one_line(error.value)
    assert str(checkpoint.path) in message and "damaged" in message and array in message
    assert "diverged" not in message and "too large" not in message


@pytest.mark.parametrize("change, what", [
    (lambda s: s.update(history="epochs"), "history"),
    (lambda s: s.update(history=[{"epoch": 7}]), "history"),
    (lambda s: s["watch"].update(eta=-1.0), "eta"),
    (lambda s: s["watch"].update(eta="fast"), "eta"),
    (lambda s: s["watch"].update(eta=float("nan")), "eta"),
    (lambda s: s["watch"].update(best=7.5), "best"),
    (lambda s: s["watch"].update(since_best=-3), "since_best"),
    (lambda s: s["watch"].update(best_epoch="first"), "best_epoch"),
    (lambda s: s.update(watch=[]), "schedule"),
])
def test_c01_malformed_stored_state_names_the_checkpoint(tmp_path, mnist_slice, change, what):
    checkpoint = trained_checkpoint(tmp_path / "ck", mnist_slice)
    rewrite_checkpoint(checkpoint, change_state=change)
    with pytest.raises(CheckpointError) as error:
        resume(checkpoint, mnist_slice)
    message = one_line(error.value)
    assert message.startswith(f"{checkpoint.path}: checkpoint is damaged") and what in message


def test_c01_a_checkpoint_of_the_earlier_conv_loop_says_so(tmp_path, mnist_slice):
    """Conv runs once had a loop of their own, whose checkpoints keep their
    settings as given (eta, not eta0) and no eta schedule: not damaged, older."""
    checkpoint = trained_checkpoint(tmp_path / "ck", mnist_slice)

    def earlier(state):
        del state["watch"]
        state["settings"] = {"mini_batch_size": 10, "eta": 0.03, "l2": 1.0, "train_size": 1000}
    rewrite_checkpoint(checkpoint, change_state=earlier)
    with pytest.raises(CheckpointError) as error:
        resume(checkpoint, mnist_slice)
    message = one_line(error.value)
    assert message.startswith(f"{checkpoint.path}: a checkpoint of an earlier nn_gpu")
    assert "damaged" not in message


# ---------------------------------------------------------------------------
# 3. Outputs never replace what is not a regular file, and follow links.
def test_c03_a_fifo_at_the_output_is_refused_not_replaced(tmp_path):
    path = fifo(tmp_path / "out.npz")
    with pytest.raises(fileio.OutputError) as error:
        saved_model(path)
    assert "FIFO" in one_line(error.value) and str(path) in str(error.value)
    assert stat.S_ISFIFO(os.lstat(path).st_mode)


def test_c03_a_device_at_the_output_is_refused_not_replaced(tmp_path):
    path = char_device(tmp_path / "null")
    with pytest.raises(fileio.OutputError) as error:
        with fileio.atomic_write(path, "w") as handle:
            handle.write("{}")
    assert "character device" in one_line(error.value)
    assert stat.S_ISCHR(os.lstat(path).st_mode)


def test_c03_a_link_to_a_device_is_refused_and_stays_a_link(tmp_path):
    device = char_device(tmp_path / "null")
    link = tmp_path / "history.json"
    link.symlink_to(device)
    with pytest.raises(fileio.OutputError) as error:
        with fileio.atomic_write(link, "w") as handle:
            handle.write("{}")
    assert "a link to" in one_line(error.value) and "character device" in str(error.value)
    assert link.is_symlink() and stat.S_ISCHR(os.stat(link).st_mode)


def test_c03_a_link_to_stdout_is_never_replaced(tmp_path):
    link = tmp_path / "out.json"
    link.symlink_to("/dev/stdout")
    code = ("import sys; from nn_gpu.io.fileio import atomic_write\n"
            f"with atomic_write({str(link)!r}, 'w') as h: h.write('x')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=60)
    assert result.returncode != 0 and "OutputError" in result.stderr
    assert link.is_symlink() and os.readlink(link) == "/dev/stdout"


def test_c03_writing_through_a_link_keeps_the_link(tmp_path):
    target = tmp_path / "models" / "real.npz"
    target.parent.mkdir()
    saved_model(target, seed=1)
    link = tmp_path / "current.npz"
    link.symlink_to(target)
    saved_model(link, seed=2)
    assert link.is_symlink() and link.resolve() == target
    assert numpy.array_equal(Network.load(target, "numpy").weights[0],
                             Network(SMALL, backend="numpy", seed=2).weights[0])


# ---------------------------------------------------------------------------
# 4. Outputs that can never be written are found before any work; write
# errors name the user's file, never the hidden temporary one.
@pytest.mark.parametrize("where", ["/proc/nn-gpu-out.npz", "/proc/self/nn-gpu/out.npz",
                                   "{tmp}/missing/out.npz", "{tmp}"])
def test_c04_check_output_refuses_what_can_never_be_written(tmp_path, where):
    path = where.format(tmp=tmp_path)
    with pytest.raises(fileio.OutputError) as error:
        fileio.check_output(path)
    assert one_line(error.value).startswith(f"{path}: ")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("code, words", [(28, "No space left on device"),
                                         (122, "Disk quota exceeded"),
                                         (5, "Input/output error")])
def test_c04_a_failed_write_names_the_users_file(tmp_path, monkeypatch, code, words):
    path = tmp_path / "model.npz"
    saved_model(path, seed=1)
    before = path.read_bytes()

    def fail(fd):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(fileio.OutputError) as error:
        saved_model(path, seed=2)
    message = one_line(error.value)
    assert message.startswith(f"{path}: cannot be written ({words})") and ".tmp" not in message
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]


def test_c04_a_file_size_limit_is_reported_with_the_users_file(tmp_path):
    """A real write error (RLIMIT_FSIZE: EFBIG) from a real write, not a stand-in."""
    path = tmp_path / "big.npz"
    code = ("import resource, signal, sys, numpy\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
            "from nn_gpu import Network\n"
            "from nn_gpu.errors import NNGpuError\n"
            "try:\n"
            f"    Network([784, 100, 10], backend='numpy', seed=0).save({str(path)!r})\n"
            "except NNGpuError as e:\n"
            "    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=120)
    assert result.stdout.startswith(f"{path}: cannot be written (File too large)"), result
    assert not os.listdir(tmp_path)


def test_c04_a_checkpoint_dir_that_is_a_file_is_refused_before_training(tmp_path):
    path = tmp_path / "ck"
    path.write_text("my notes")
    with pytest.raises(CheckpointError) as error:
        Checkpoint(path).check_writable()
    assert one_line(error.value).startswith(f"{path}: is a file, not a directory")
    assert path.read_text() == "my notes"


# ---------------------------------------------------------------------------
# 5. Memory: declared sizes are checked against the memory available before
# anything is allocated (under a 512 MB cap here).
HUGE_NETWORKS = [[784, 200_000, 10], [784, 30_000, 30_000, 10], [10**9, 10**9], [2**40, 2]]


@pytest.mark.parametrize("sizes", HUGE_NETWORKS)
def test_c05_a_network_too_large_for_memory_is_one_line(sizes):
    with memory_cap(512 << 20), pytest.raises(MemoryBudgetError) as error:
        Network(sizes, backend="numpy")
    message = one_line(error.value)
    assert "more than the" in message and "of memory available" in message and "sizes" in message


class RepeatedDeflate:
    """A compressor for zipfile that deflates a run of zero chunks in no time:
    after a full flush deflate blocks stand alone, so the compressed form of
    one zero chunk can be repeated (this makes a 0.6 MB member of 627 MB)."""

    CHUNK = bytes(1 << 22)

    def __init__(self):
        self.real = zlib.compressobj(9, zlib.DEFLATED, -15)
        once = zlib.compressobj(9, zlib.DEFLATED, -15)
        self.block = once.compress(self.CHUNK) + once.flush(zlib.Z_FULL_FLUSH)

    def compress(self, data):
        if data == self.CHUNK:
            return self.block
        return self.real.compress(data) + self.real.flush(zlib.Z_FULL_FLUSH)

    def flush(self, mode=zlib.Z_FINISH):
        return self.real.flush(mode)


def deflated_model(path, sizes):
    """A genuine, loadable-in-principle model whose zero weights are deflated."""
    meta = {"format": "nn_gpu.network", "version": 1, "sizes": sizes, "cost": "quadratic",
            "activation": "sigmoid", "dtype": "float32", "init": "normal", "training": None}
    original = zipfile._get_compressor
    zipfile._get_compressor = lambda kind, level=None: RepeatedDeflate()
    try:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            with archive.open("metadata.npy", "w") as member:
                numpy.lib.format.write_array(member, numpy.array(json.dumps(meta)))
            for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
                for name, shape in ((f"w{l}", (n_out, n_in)), (f"b{l}", (n_out,))):
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                        numpy.lib.format.write_array_header_1_0(
                            member, {"descr": "<f4", "fortran_order": False, "shape": shape})
                        left = 4 * n_in * n_out if name[0] == "w" else 4 * n_out
                        while left:
                            chunk = RepeatedDeflate.CHUNK[:min(left, len(RepeatedDeflate.CHUNK))]
                            member.write(chunk)
                            left -= len(chunk)
    finally:
        zipfile._get_compressor = original
    return path


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory):
    return deflated_model(tmp_path_factory.mktemp("wide") / "wide.npz", [784, 200_000, 10])


def test_c05_a_small_file_declaring_a_huge_layer_is_one_line(wide_model):
    assert wide_model.stat().st_size < 2 << 20
    with memory_cap(512 << 20), pytest.raises(ModelFileError) as error:
        Network.load(wide_model, backend="numpy")
    message = one_line(error.value)
    assert message.startswith(f"{wide_model}: declares a network of sizes [784, 200000, 10]")
    assert "of memory available" in message


def test_c05_a_checkpoint_declaring_a_huge_network_is_one_line(tmp_path, wide_model):
    (tmp_path / "ck").mkdir()
    with zipfile.ZipFile(wide_model) as model:
        meta = json.loads(str(numpy.load(io.BytesIO(model.read("metadata.npy")))))
    document = {"format": "nn_gpu.checkpoint", "version": 1, "model": meta,
                "state": {}, "config": None}
    with zipfile.ZipFile(tmp_path / "ck" / "checkpoint.npz", "w") as archive:
        with archive.open("metadata.npy", "w") as member:
            numpy.lib.format.write_array(member, numpy.array(json.dumps(document)))
    with memory_cap(512 << 20), pytest.raises(CheckpointError) as error:
        Checkpoint(tmp_path / "ck").load(Network.checkpoint_arrays)
    assert "of memory available" in one_line(error.value)


def gzipped_idx(path, magic, dims, payload=b""):
    path.write_bytes(gzip.compress(struct.pack(f">I{len(dims)}I", magic, *dims) + payload))
    return path


def gzip_bomb(path, dims, size):
    """A gzip IDX file of ``dims`` holding ``size`` zero bytes, made in no time
    from one precompressed block (see RepeatedDeflate). Its trailer (CRC, length)
    is left zero: a reader that stops where the header says never reaches it."""
    deflate = RepeatedDeflate()
    header = struct.pack(f">I{len(dims)}I", mnist.IMAGES_MAGIC, *dims)
    blocks = size // len(RepeatedDeflate.CHUNK)
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + deflate.compress(header)
                     + deflate.block * blocks + deflate.flush() + bytes(8))
    return path


@pytest.mark.parametrize("make, words", [
    (lambda p: p.symlink_to("/dev/zero"), "a character device"),
    (lambda p: p.symlink_to("/dev/urandom"), "a character device"),
    (lambda p: (p.touch(), os.truncate(p, 8 << 30)), "8,589,934,592 bytes"),  # sparse
    (lambda p: (p.write_bytes(b"\x1f\x8b"), os.truncate(p, 1 << 30)), "1,073,741,824 bytes"),
    (lambda p: gzip_bomb(p, (2**21, 28, 28), 2**21 * 784 + (1 << 26)), "more than any MNIST"),
    (lambda p: gzip_bomb(p, (2, 2**15, 2**14 + 1), 2**30 + (1 << 26)), "more than any MNIST"),
])
def test_c05_data_files_are_checked_before_they_are_read(tmp_path, make, words):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    make(path)
    with memory_cap(256 << 20), deadline(), pytest.raises(DataError) as error:
        mnist.read_idx_images(path)
    message = one_line(error.value)
    assert message.startswith(f"{path}: ") and words in message


# ---------------------------------------------------------------------------
# 6. Overflow and NaN in training are reported by the divergence check, not
# by NumPy warnings on the way.
@pytest.mark.parametrize("cost, activation, extra", [
    ("cross_entropy", "sigmoid", {}),                  # invalid value in logaddexp
    ("quadratic", "relu", {"dropout": 0.2}),           # overflow in matmul
    ("log_likelihood", "relu", {"l1": 0.1}),           # invalid value in subtract
    ("log_likelihood", "sigmoid", {"dropout": 0.2}),   # invalid value in multiply
])
def test_c06_divergence_raises_no_numpy_warning(mnist_slice, cost, activation, extra):
    net = Network([784, 8, 10], cost=cost, activation=activation, backend="numpy", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(NNGpuError, match="diverged"):
            net.sgd(mnist_slice[0], 3, 10, 1e30, validation_data=mnist_slice[1],
                    monitor_training_cost=True, **extra)


# ---------------------------------------------------------------------------
# 7. Seeds: a negative or non-integer seed is an error that says "seed".
@pytest.mark.parametrize("seed", [-1, -(2**70), 1.5, "3", True, [1, -2]])
def test_c07_a_bad_seed_is_an_error_naming_seed(seed):
    with pytest.raises(InvalidArgumentError) as error:
        Network(SMALL, backend="numpy", seed=seed)
    assert one_line(error.value).startswith("seed must be a whole number >= 0")


# ---------------------------------------------------------------------------
# 8. Special files given as inputs never hang and never get read whole.
def test_c08_a_fifo_as_an_mnist_file_is_refused_at_once(tmp_path):
    path = fifo(tmp_path / "t10k-images-idx3-ubyte.gz")
    with deadline(), pytest.raises(DataError) as error:
        mnist.read_idx_images(path)
    assert "FIFO" in one_line(error.value)


def test_c08_a_fifo_as_a_model_is_refused_at_once(tmp_path):
    path = fifo(tmp_path / "model.npz")
    with deadline(), pytest.raises(ModelFileError) as error:
        Network.load(path, backend="numpy")
    assert "FIFO" in one_line(error.value)


def test_c08_a_fifo_as_the_expanded_cache_is_left_alone(tmp_path):
    cache = fifo(tmp_path / CACHE_NAME)
    rng = numpy.random.default_rng(0)
    training = (rng.integers(0, 256, (4, 784)).astype(numpy.float32) / 255,
                rng.integers(0, 10, 4))
    with deadline():
        X, labels = expanded_training_set(training, cache_dir=tmp_path)
    assert X.shape == (20, 784) and stat.S_ISFIFO(os.lstat(cache).st_mode)


def test_c08_a_directory_as_a_model_says_so(tmp_path):
    with pytest.raises(ModelFileError) as error:
        Network.load(tmp_path, backend="numpy")
    assert "is a directory" in one_line(error.value)


# ---------------------------------------------------------------------------
# 9. Messages name the file and say what to do.
def test_c09_a_test_set_of_no_images_names_the_file(tmp_path, monkeypatch):
    source = mnist.resolve_data_dir(os.environ.get("NN_GPU_DATA") or None)
    if not source.is_dir():
        pytest.skip("MNIST not found: set NN_GPU_DATA")
    for name in mnist.FILES.values():
        (tmp_path / name).symlink_to(source / name)
    (tmp_path / mnist.FILES["test_images"]).unlink()
    (tmp_path / mnist.FILES["test_labels"]).unlink()
    gzipped_idx(tmp_path / mnist.FILES["test_images"], mnist.IMAGES_MAGIC, (0, 28, 28))
    gzipped_idx(tmp_path / mnist.FILES["test_labels"], mnist.LABELS_MAGIC, (0,))
    with pytest.raises(DataError) as error:
        mnist.load_mnist(tmp_path)
    message = one_line(error.value)
    assert message.startswith(f"{tmp_path / mnist.FILES['test_images']}: holds no images")
    assert "nn-gpu download" in message


@pytest.mark.parametrize("damage", ["labels", "original-row"])
def test_c09_a_damaged_expanded_cache_is_rebuilt_not_trained_on(tmp_path, damage):
    rng = numpy.random.default_rng(1)
    training = (rng.integers(0, 256, (6, 784)).astype(numpy.float32) / 255,
                rng.integers(0, 10, 6))
    expected = expanded_training_set(training, cache_dir=tmp_path)
    path = tmp_path / CACHE_NAME
    with numpy.load(path) as cache:
        members = dict(cache)
    if damage == "labels":
        members["labels"][3] = 77
    else:
        members["images"][5, 100] ^= 0xFF
    numpy.savez(path, **members)
    got = expanded_training_set(training, cache_dir=tmp_path)
    assert numpy.array_equal(got[1], expected[1]) and numpy.array_equal(got[0], expected[0])
    with numpy.load(path) as cache:  # and rewritten whole
        assert numpy.array_equal(cache["labels"], expected[1])


# ---------------------------------------------------------------------------
# 11. Non-finite pixels are an error, never normalised away.
@pytest.mark.parametrize("bad", [numpy.inf, -numpy.inf, numpy.nan])
def test_c11_a_float_image_with_non_finite_pixels_is_refused(tmp_path, bad):
    Image = pytest.importorskip("PIL.Image")
    from nn_gpu.reading.images import ImageError, to_mnist

    pixels = numpy.zeros((28, 28), numpy.float32)
    pixels[8:20, 12:16] = 1.0
    pixels[0, 0] = bad
    path = tmp_path / "digit.tif"
    Image.fromarray(pixels, mode="F").save(path)
    with pytest.raises(ImageError) as error:
        to_mnist(path)
    assert one_line(error.value).startswith(f"{path}: 1 pixels are NaN or infinite")


def test_c11_a_decompression_bomb_is_one_line(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    from nn_gpu.reading.images import ImageError, to_mnist

    path = tmp_path / "bomb.png"
    Image.new("1", (12_000, 8_000)).save(path)  # 96 Mpixels: over Pillow's warning limit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError) as error:
            to_mnist(path)
    assert "too large" in one_line(error.value)


def test_c11_a_fifo_image_is_refused_at_once(tmp_path):
    pytest.importorskip("PIL.Image")
    from nn_gpu.reading.images import ImageError, to_mnist

    path = fifo(tmp_path / "digit.png")
    with deadline(), pytest.raises(ImageError) as error:
        to_mnist(path)
    assert "FIFO" in one_line(error.value)


# ---------------------------------------------------------------------------
# 12. Temporary files a killed writer left behind are cleaned up by the next write.
def stale(path, age, pid=None):
    path.write_bytes(b"half a model")
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_c12_stale_temporaries_of_the_same_file_are_removed(tmp_path):
    gone = [stale(tmp_path / f".model.npz.{dead_pid()}.abcd1234.tmp", 120),
            stale(tmp_path / ".model.npz.k2j4_x9a.tmp", 3 * 24 * 3600),  # old naming, old
            stale(tmp_path / f".model.npz.{os.getppid()}.zzzzzzzz.tmp", 3 * 24 * 3600)]
    kept = [stale(tmp_path / f".model.npz.{dead_pid()}.abcd1235.tmp", 5),  # still fresh
            stale(tmp_path / f".model.npz.{os.getppid()}.abcd1236.tmp", 120),  # writer alive
            stale(tmp_path / ".model.npz.k2j4_x9b.tmp", 120),  # old naming: no pid
            stale(tmp_path / f".other.npz.{dead_pid()}.abcd1237.tmp", 120),
            stale(tmp_path / f".model.npz.{dead_pid()}.notours.tmp.bak", 120),
            stale(tmp_path / "model.npz.12.abcd1238.tmp", 120)]
    link = tmp_path / f".model.npz.{dead_pid()}.abcd1239.tmp"  # only regular files go
    link.symlink_to(tmp_path / "precious")
    os.utime(link, (0, 0), follow_symlinks=False)
    directory = tmp_path / f".model.npz.{dead_pid()}.abcd1240.tmp"
    directory.mkdir()
    os.utime(directory, (0, 0))
    saved_model(tmp_path / "model.npz")
    assert not any(path.exists() for path in gone)
    assert all(path.exists() for path in kept) and link.is_symlink() and directory.is_dir()


def test_c12_a_write_killed_by_sigkill_is_cleaned_up_by_the_next(tmp_path):
    path = tmp_path / "big.bin"
    code = ("import os, signal\nfrom nn_gpu.io.fileio import atomic_write\n"
            f"with atomic_write({str(path)!r}) as h:\n"
            "    h.write(bytes(1 << 20)); h.flush()\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                   timeout=60)
    [left] = tmp_path.iterdir()
    assert left.name.startswith(".big.bin.") and left.stat().st_size == 1 << 20
    os.utime(left, (time.time() - 120, time.time() - 120))
    with fileio.atomic_write(path) as handle:
        handle.write(b"whole")
    assert os.listdir(tmp_path) == ["big.bin"] and path.read_bytes() == b"whole"


# ---------------------------------------------------------------------------
# 13. Absurd plot inputs: one line, before matplotlib sees them.
def history_file(path, epochs):
    path.write_text(json.dumps({"config": {}, "epochs": epochs}))
    return path


@pytest.mark.parametrize("epochs, words", [
    ([{"epoch": 1, "validation_accuracy": 1e308}], "validation_accuracy must be a fraction"),
    ([{"epoch": 1, "test_accuracy": -0.5}], "test_accuracy must be a fraction"),
    ([{"epoch": 1e308, "test_accuracy": 0.5}], '"epoch" must be a whole number'),
    ([{"epoch": 10**12, "test_accuracy": 0.5}], '"epoch" must be a whole number'),
    ([{"epoch": 1, "train_cost": float("nan")}], "train_cost must be a finite number"),
    ([{"epoch": 1, "train_cost": float("inf")}], "train_cost must be a finite number"),
    ([{"test_accuracy": 0.5}], '"epoch" must be a whole number'),
    ([{"epoch": 1, "test_accuracy": 0.5}, {"validation_accuracy": 0.6}], "epoch entry 2"),
])
def test_c13_absurd_history_values_are_one_line(tmp_path, epochs, words):
    from nn_gpu.io.history import HistoryError, load_history

    path = history_file(tmp_path / "h.json", epochs)
    with pytest.raises(HistoryError) as error:
        load_history(path)
    message = one_line(error.value)
    assert message.startswith(f"{path}: ") and words in message


def test_c13_deeply_nested_history_json_is_one_line(tmp_path):
    from nn_gpu.io.history import HistoryError, load_history

    path = tmp_path / "h.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(HistoryError) as error:
        load_history(path)
    assert "nested too deeply" in one_line(error.value)


@pytest.mark.parametrize("dpi", [100_000, 10**9, 1e308])
def test_c13_a_huge_dpi_is_refused_before_drawing(tmp_path, dpi):
    pytest.importorskip("matplotlib")
    from nn_gpu.analysis.plots import plot_curves

    history = {"config": {}, "epochs": [{"epoch": 1, "test_accuracy": 0.9}]}
    with memory_cap(512 << 20), pytest.raises(InvalidArgumentError) as error:
        plot_curves(history, tmp_path / "c.png", dpi=dpi)
    assert "use a dpi of at most" in one_line(error.value)
    assert not os.listdir(tmp_path)


# ===========================================================================
# The command line: one line on stderr, a non-zero status, nothing lost.
TRAIN = ["train", "--train-size", "300", "--sizes", "784", "8", "10", "--batch-size", "10",
         "--seed", "1", "--quiet"]


@pytest.fixture(scope="module")
def one_epoch_checkpoint(tmp_path_factory, small_mnist):
    """The checkpoint directory of a run of 1 epoch, trained once for the module
    (a checkpoint holds no path: a copy resumes as the original does)."""
    directory = tmp_path_factory.mktemp("one_epoch") / "ck"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NN_GPU_DATA", str(small_mnist))
        status, _, err = run(*TRAIN, "--epochs", "1", "--checkpoint-dir", directory)
    assert status == 0, err
    return directory


@pytest.fixture
def checkpointed(tmp_path, small_data, one_epoch_checkpoint):
    """A run of 1 epoch checkpointed in tmp_path/ck (a copy of
    :func:`one_epoch_checkpoint`, for this test to tamper with)."""
    shutil.copytree(one_epoch_checkpoint, tmp_path / "ck")
    return Checkpoint(tmp_path / "ck")


# 1. ----------------------------------------------- a checkpoint is data
@pytest.mark.parametrize("key", ["history", "save", "checkpoint_dir", "data", "quiet",
                                 "backend"])
def test_c01_cli_a_checkpoint_never_chooses_outputs_or_side_effects(tmp_path,
                                                                    checkpointed, key):
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file")
    value = {"quiet": False, "backend": "numpy"}.get(key, str(victim))
    rewrite_checkpoint(checkpointed, change_meta=lambda m: m["config"].update({key: value}))
    status, out, err = run("train", "--resume", tmp_path / "ck", "--epochs", "2")
    assert err.startswith(f"nn-gpu: error: {checkpointed.path}: ") and repr(key) in err
    one_error(err, status)
    assert victim.read_text() == "the user's file" and "Epoch" not in out


@pytest.mark.parametrize("key, value", [
    ("seed", -1), ("seed", "7"), ("eta", -1.0), ("eta", "fast"), ("l2", "x"),
    ("sizes", [784, -8, 10]), ("sizes", "784 8 10"), ("sizes", [784, 8, 11]),
    ("batch_size", 10**9), ("dtype", "float16"), ("method", "evil"), ("epochs", 0),
    ("expand", "yes"), ("monitor", ["everything"]), ("train_size", 10**9),
])
def test_c01_cli_malformed_stored_settings_name_the_checkpoint(tmp_path, checkpointed,
                                                               key, value):
    def tamper(meta):
        where = meta["config"] if key in meta["config"] else meta["config"]["options"]
        where[key] = value
    rewrite_checkpoint(checkpointed, change_meta=tamper)
    status, out, err = run("train", "--resume", tmp_path / "ck", "--epochs", "2")
    one_error(err, status)
    assert err.startswith(f"nn-gpu: error: {checkpointed.path}: its stored settings"), err
    assert "Epoch" not in out


def test_c01_cli_nan_weights_are_damage_not_divergence(tmp_path, checkpointed):
    rewrite_checkpoint(checkpointed, change_arrays=lambda a: a["w1"].fill(numpy.nan))
    status, _, err = run("train", "--resume", tmp_path / "ck", "--epochs", "2")
    one_error(err, status)
    assert "checkpoint is damaged" in err and "diverged" not in err and "last good" not in err


# 2. ------------------------------------------- options given with --resume
def test_c02_resume_with_a_new_eta_applies_it_and_says_so_first(tmp_path,
                                                                checkpointed):
    history = tmp_path / "h.json"
    status, out, err = run("train", "--resume", tmp_path / "ck", "--epochs", "2",
                           "--eta", "0.125", "--history", history)
    assert status == 0, err
    status, out, err = run("train", "--resume", tmp_path / "ck", "--epochs", "3",
                           "--history", history)
    assert status == 0, err
    etas = [entry["eta"] for entry in json.loads(history.read_text())["epochs"]]
    assert etas == [3.0, 0.125, 0.125]  # and a later resume keeps it


def test_c02_the_first_line_says_what_the_resume_changes(tmp_path, checkpointed):
    status, out, err = run("train", "--resume", tmp_path / "ck", "--epochs", "2",
                           "--eta", "0.5", "--backend", "numpy")
    assert status == 0, err
    assert out.splitlines()[0] == (f"Resuming after epoch 1 from {checkpointed.path}, with "
                                   "--epochs 2 (was 1), --eta 0.5 (was 3) for the epochs "
                                   "still to run")


@pytest.mark.parametrize("option", [
    ["--sizes", "784", "9", "10"], ["--batch-size", "20"], ["--seed", "5"],
    ["--dtype", "float64"], ["--preset", "ch1-30"], ["--train-size", "200"],
    ["--cost", "cross_entropy"], ["--l2", "1"], ["--expand"], ["--method", "per_example"],
    ["--momentum", "0.5"], ["--monitor", "training-cost"],
])
def test_c02_options_a_resume_cannot_change_are_refused(tmp_path, checkpointed,
                                                        option):
    before = checkpointed.path.read_bytes()
    status, out, err = run("train", "--resume", tmp_path / "ck", *option)
    one_error(err, status, 2)
    assert f"{option[0]} cannot be given with it" in err
    assert "may change only --epochs, --eta, --history, --save" in err
    assert checkpointed.path.read_bytes() == before and out == ""


# 3. ------------------------------------ outputs never destroy the user's files
def test_c03_cli_save_and_history_on_one_file_are_refused(tmp_path, small_data):
    mine = tmp_path / "mine.json"
    mine.write_text("keep me")
    status, out, err = run(*TRAIN, "--epochs", "1", "--save", mine, "--history", mine)
    one_error(err, status)
    assert "is the same file as --history" in err and mine.read_text() == "keep me"


def test_c03_cli_save_into_the_checkpoint_is_refused(tmp_path, small_data):
    (tmp_path / "ck").mkdir()
    status, _, err = run(*TRAIN, "--epochs", "1", "--checkpoint-dir", tmp_path / "ck",
                         "--save", tmp_path / "ck" / "checkpoint.npz")
    one_error(err, status)
    assert "is the same file as" in err


@pytest.mark.parametrize("kind", ["weights", "misclassified", "confusion"])
@pytest.mark.parametrize("same", ["path", "hard link", "symlink"])
def test_c03_cli_a_plot_never_replaces_its_model(tmp_path, small_data, kind, same):
    pytest.importorskip("matplotlib")
    model = saved_model(tmp_path / "m.npz", [784, 8, 10])
    before = model.read_bytes()
    output = {"path": model, "hard link": tmp_path / "h.npz", "symlink": tmp_path / "s.npz"}[same]
    if same == "hard link":
        os.link(model, output)
    elif same == "symlink":
        output.symlink_to(model)
    status, _, err = run("plot", kind, model, "-o", output)
    one_error(err, status)
    assert "is the same file as MODEL" in err and model.read_bytes() == before


def test_c03_cli_a_plot_never_replaces_its_history(tmp_path):
    pytest.importorskip("matplotlib")
    history = history_file(tmp_path / "h.json", [{"epoch": 1, "test_accuracy": 0.5}])
    before = history.read_bytes()
    status, _, err = run("plot", "curves", history, "-o", history)
    one_error(err, status)
    assert history.read_bytes() == before


@pytest.mark.parametrize("flag", ["--save", "--history"])
@pytest.mark.parametrize("special", ["fifo", "device", "link to /dev/stdout"])
def test_c03_cli_special_files_as_outputs_are_refused_before_training(tmp_path, small_data,
                                                                     flag, special):
    path = tmp_path / "out"
    if special == "fifo":
        fifo(path)
    elif special == "device":
        char_device(path)
    else:
        path.symlink_to("/dev/stdout")
    with deadline(10):
        status, out, err = run(*TRAIN, "--epochs", "1", flag, path)
    one_error(err, status)
    assert err.startswith(f"nn-gpu: error: {flag} {path}: is ") and "Epoch" not in out
    assert not stat.S_ISREG(os.lstat(path).st_mode)  # still what it was


def test_c03_cli_bench_outputs_on_one_file_are_refused(tmp_path, small_data):
    status, _, err = run("bench", "--json", tmp_path / "b", "--plot", tmp_path / "b")
    one_error(err, status)
    assert "--plot" in err and "is the same file as --json" in err


@pytest.mark.parametrize("name", ["../elsewhere", "/tmp/other", "a/b", ".hidden", "x" * 101,
                                  "", 42])
def test_c03_a_space_name_is_never_a_path(tmp_path, name):
    from nn_gpu.sweep.space import SearchSpace, SpaceError

    with pytest.raises(SpaceError) as error:
        SearchSpace({"name": name, "search": {"eta": {"low": 0.1, "high": 1.0}}},
                    source=str(tmp_path / "space.toml"))
    assert one_line(error.value).startswith(f"{tmp_path / 'space.toml'}: name: must be a name")


# 4. ----------------------------------------- found before any work starts
@pytest.mark.parametrize("flag", ["--save", "--history"])
@pytest.mark.parametrize("where", ["/proc/nn-gpu-model.npz", "/sys/kernel/nn-gpu-model.npz"])
def test_c04_cli_an_unwritable_output_is_refused_before_training(tmp_path, small_data, flag,
                                                                 where):
    status, out, err = run(*TRAIN, "--epochs", "1", flag, where)
    one_error(err, status)
    assert err.startswith(f"nn-gpu: error: {flag} {where}: ") and ".tmp" not in err
    assert "Epoch" not in out and "Best" not in out


def test_c04_cli_a_checkpoint_dir_that_is_a_file_is_refused_before_training(tmp_path,
                                                                           small_data):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    status, out, err = run(*TRAIN, "--epochs", "1", "--checkpoint-dir", notes)
    one_error(err, status)
    assert "is a file, not a directory" in err and notes.read_text() == "mine"
    assert "Best" not in out


# 5. --------------------------------------------------------------- memory
@pytest.mark.parametrize("argv", [
    [*TRAIN, "--sizes", "784", "200000", "10"],
    [*TRAIN, "--sizes", "784", "50000", "50000", "10"],
    ["bench", "--sizes", "784", "100000", "100000", "10", "--train-size", "100",
     "--batch-sizes", "10"],
])
def test_c05_cli_a_network_too_large_is_one_line_before_loading(small_data, argv):
    with memory_cap(1 << 30):
        status, out, err = run(*argv)
    one_error(err, status)
    assert "of memory available" in err and "choose smaller layer sizes" in err


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_c05_cli_running_out_of_memory_is_one_line(tmp_path, small_data, monkeypatch,
                                                   command):
    from numpy._core._exceptions import _ArrayMemoryError

    def exhausted(*args, **kwargs):
        raise _ArrayMemoryError((10**12,), numpy.dtype("float64"))
    monkeypatch.setattr(Network, "evaluate" if command == "evaluate" else "sgd", exhausted)
    argv = (["evaluate", saved_model(tmp_path / "m.npz", [784, 8, 10])] if command == "evaluate"
            else [*TRAIN, "--epochs", "1"])
    status, _, err = run(*argv)
    one_error(err, status)
    assert "out of memory" in err and "--batch-size" in err


@pytest.mark.parametrize("kind", ["curves", "weights", "confusion", "misclassified"])
def test_c05_cli_a_huge_dpi_is_refused_before_anything_is_read(tmp_path, kind):
    pytest.importorskip("matplotlib")
    status, _, err = run("plot", kind, tmp_path / "absent", "-o", tmp_path / "p.png",
                         "--dpi", "100000")
    one_error(err, status)
    assert "--dpi" in err and "use a dpi of at most" in err


# 6. ----------------------------------------------- one line means one line
def test_c06_cli_divergence_is_the_only_line(small_data):
    status, _, err = run(*TRAIN, "--epochs", "2", "--eta", "1e30", "--cost",
                         "cross_entropy")
    one_error(err, status)
    assert "diverged" in err


def test_c06_cli_a_model_with_huge_weights_evaluates_without_warnings(tmp_path, small_data):
    net = Network([784, 8, 10], backend="numpy", seed=0)
    net.weights[0][...] = 3e38  # finite, but their sums overflow
    net.save(tmp_path / "m.npz")
    status, out, err = run("evaluate", tmp_path / "m.npz")
    assert status == 0 and err == "" and "accuracy" in out


# 7. --------------------------------------------------------------- seeds
@pytest.mark.parametrize("argv", [["train", "--seed", "-1"], ["train", "--seed", "-99"],
                                  ["sweep", "space.toml", "--seed", "-3"]])
def test_c07_cli_a_negative_seed_is_a_usage_error(argv):
    status, _, err = run(*argv)
    one_error(err, status, 2)
    assert "--seed" in err


@pytest.mark.slow
def test_c07_a_sweep_whose_trials_fail_exits_non_zero(tmp_path, small_data):
    pytest.importorskip("optuna")
    space = tmp_path / "space.toml"
    space.write_text('name = "failing"\ntrain_size = 100\n[fixed]\nepochs = 1\n'
                     '[search]\nhidden = { choices = [[100000000]] }\n')
    status = subprocess.run(
        [sys.executable, "-m", "nn_gpu", "sweep", space, "--trials", "1", "--quiet",
         "--storage", tmp_path / "s.db", "--seed", "0"], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd=tmp_path, timeout=300)
    assert status.returncode == 1, status
    assert "Traceback" not in status.stderr and "trial 0 failed in this run" in status.stderr


# 8. -------------------------------------------------------- special files
def test_c08_cli_a_fifo_in_the_data_dir_never_hangs(tmp_path, monkeypatch, small_mnist):
    for name in mnist.FILES.values():
        (tmp_path / name).symlink_to(small_mnist / name)
    (tmp_path / mnist.FILES["test_labels"]).unlink()
    fifo(tmp_path / mnist.FILES["test_labels"])
    model = saved_model(tmp_path / "m.npz", [784, 8, 10])
    with deadline(10):
        status, _, err = run("evaluate", model, "--data", tmp_path)
    one_error(err, status)
    assert "FIFO" in err


@pytest.mark.parametrize("command", [
    lambda d: ["predict", saved_model(d / "m.npz", [784, 8, 10]), fifo(d / "seven.png")],
    lambda d: ["plot", "curves", fifo(d / "h.json"), "-o", d / "c.png"],
    lambda d: ["evaluate", fifo(d / "model.npz")],
    lambda d: ["sweep", fifo(d / "space.toml")],
])
def test_c08_cli_fifos_as_inputs_never_hang(tmp_path, small_data, command):
    pytest.importorskip("PIL")
    argv = command(tmp_path)
    with deadline(10):
        status, _, err = run(*argv)
    one_error(err, status)


# 9. ------------------------------------- messages name the file, say what to do
def test_c09_cli_a_history_whose_entries_lack_epochs_names_the_file(tmp_path):
    pytest.importorskip("matplotlib")
    history = history_file(tmp_path / "h.json", [{"test_accuracy": 0.5}, {"seconds": 3}])
    status, _, err = run("plot", "curves", history, "-o", tmp_path / "c.png")
    one_error(err, status)
    assert err.startswith(f"nn-gpu: error: {history}: epoch entry 1: \"epoch\"")
    assert "nn-gpu train --history" in err


def test_c09_cli_a_bad_space_name_is_reported_as_the_name(tmp_path):
    pytest.importorskip("optuna")
    space = tmp_path / "space.toml"
    space.write_text('name = "runs/old/study"\n[search]\neta = { low = 0.1, high = 1.0 }\n')
    status, _, err = run("sweep", space)
    one_error(err, status)
    assert err.startswith(f"nn-gpu: error: {space}: name: ") and "--storage" not in err


def test_c09_cli_an_empty_test_set_names_the_file(tmp_path, small_mnist):
    for name in mnist.FILES.values():
        (tmp_path / name).symlink_to(small_mnist / name)
    for key, magic, dims in (("test_images", mnist.IMAGES_MAGIC, (0, 28, 28)),
                             ("test_labels", mnist.LABELS_MAGIC, (0,))):
        (tmp_path / mnist.FILES[key]).unlink()
        gzipped_idx(tmp_path / mnist.FILES[key], magic, dims)
    model = saved_model(tmp_path / "m.npz", [784, 8, 10])
    status, _, err = run("evaluate", model, "--data", tmp_path)
    one_error(err, status)
    assert f"{tmp_path / mnist.FILES['test_images']}: holds no images" in err


# 10. ---------------------------------------------- Ctrl-C outside training
def interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("argv, where", [
    (lambda d: ["evaluate", saved_model(d / "m.npz", [784, 8, 10])], "mnist"),
    (lambda d: ["evaluate", saved_model(d / "m.npz", [784, 8, 10])], "model"),
    (lambda d: ["plot", "confusion", saved_model(d / "m.npz", [784, 8, 10]), "-o",
                d / "c.png"], "mnist"),
    (lambda d: ["predict", saved_model(d / "m.npz", [784, 8, 10]), d / "x.png"], "model"),
    (lambda d: ["plot", "misclassified", saved_model(d / "m.npz", [784, 8, 10]), "-o",
                d / "c.png"], "mnist"),
])
def test_c10_ctrl_c_outside_training_is_one_line_and_130(tmp_path, small_data, monkeypatch,
                                                         argv, where):
    if where == "predict":
        pytest.importorskip("PIL")
    argv = argv(tmp_path)
    if where == "model":
        monkeypatch.setattr("nn_gpu.model.network.input_stream", interrupt)
    else:
        monkeypatch.setattr(mnist, "read_input", interrupt)
    status, _, err = run(*argv)
    one_error(err, status, 130)
    assert "nn-gpu: interrupted" in err


# 11. --------------------------------------------------- silently wrong
def test_c11_cli_predict_refuses_an_image_with_an_infinite_pixel(tmp_path, small_data):
    Image = pytest.importorskip("PIL.Image")
    pixels = numpy.zeros((28, 28), numpy.float32)
    pixels[6:22, 13:15] = 1.0
    pixels[20, 3] = numpy.inf
    Image.fromarray(pixels, mode="F").save(tmp_path / "one.tif")
    model = saved_model(tmp_path / "m.npz", [784, 8, 10])
    status, out, err = run("predict", model, tmp_path / "one.tif")
    one_error(err, status)
    assert "NaN or infinite" in err and out == ""


# 12. ------------------------------------------- leftovers of kill -9
def test_c12_cli_a_save_cleans_the_leftovers_of_a_killed_save(tmp_path, small_data):
    leftover = stale(tmp_path / f".m.npz.{dead_pid()}.q1w2e3r4.tmp", 600)
    status, _, err = run(*TRAIN, "--epochs", "1", "--save", tmp_path / "m.npz")
    assert status == 0, err
    assert not leftover.exists() and (tmp_path / "m.npz").is_file()


# 13. --------------------------------------------------- absurd plot inputs
@pytest.mark.parametrize("epochs", [[{"epoch": 1, "validation_accuracy": 1e308}],
                                    [{"epoch": 1e308, "test_accuracy": 0.5}]])
def test_c13_cli_absurd_history_values_are_one_line(tmp_path, epochs):
    pytest.importorskip("matplotlib")
    history = history_file(tmp_path / "h.json", epochs)
    status, _, err = run("plot", "curves", history, "-o", tmp_path / "c.png")
    one_error(err, status)
    assert err.startswith(f"nn-gpu: error: {history}: epoch entry 1: ")
    assert not (tmp_path / "c.png").exists()


def test_c13_cli_deeply_nested_history_is_one_line(tmp_path):
    pytest.importorskip("matplotlib")
    history = tmp_path / "h.json"
    history.write_text('{"epochs": ' + "[" * 100_000 + "]" * 100_000 + "}")
    status, _, err = run("plot", "curves", history, "-o", tmp_path / "c.png")
    one_error(err, status)
    assert "nested too deeply" in err


def test_c08_a_fifo_as_a_conv_model_never_hangs(tmp_path):
    """ConvNetwork.load, like Network.load, refuses a FIFO instead of blocking on it."""
    from nn_gpu.convnet import ConvNetwork

    with deadline(10), pytest.raises(ModelFileError, match="not a regular"):
        ConvNetwork.load(fifo(tmp_path / "conv.npz"), backend="numpy")
