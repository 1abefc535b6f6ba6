"""Tests for nn_gpu.data.mnist: the genuine data set, and every malformed-file error."""

import gzip as gzip_module
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import have_mnist, mnist_dir

from nn_gpu.data.mnist import (
    DATA_ENV_VAR,
    FILES,
    load_mnist,
    read_idx_images,
    read_idx_labels,
    resolve_data_dir,
)
from nn_gpu.errors import DataError

IMAGES, LABELS = 2051, 2049


def write_idx(path, magic, dims, payload, gzip=True):
    """Write an IDX file: big-endian magic, one uint32 per dimension, payload."""
    data = struct.pack(f">I{len(dims)}I", magic, *dims) + bytes(payload)
    path = Path(path)
    path.write_bytes(gzip_module.compress(data, compresslevel=1) if gzip else data)
    return path


def write_images(path, n, rows=28, cols=28):
    pixels = (np.arange(n * rows * cols) % 256).astype(np.uint8)
    return write_idx(path, IMAGES, (n, rows, cols), pixels.tobytes())


def write_labels(path, labels):
    return write_idx(path, LABELS, (len(labels),), bytes(labels))


def write_dataset(directory, n_train, n_test, n_train_labels=None, n_test_labels=None):
    """A complete synthetic data directory with the four MNIST file names."""
    write_images(directory / FILES["train_images"], n_train)
    write_labels(directory / FILES["train_labels"],
                 [i % 10 for i in range(n_train if n_train_labels is None else n_train_labels)])
    write_images(directory / FILES["test_images"], n_test)
    write_labels(directory / FILES["test_labels"],
                 [i % 10 for i in range(n_test if n_test_labels is None else n_test_labels)])
    return directory


def names(path):
    """A pytest.raises match pattern requiring the file path in the message."""
    return re.escape(str(path))


# --------------------------------------------------------------------------
# Genuine MNIST


@pytest.fixture(scope="module")
def real_dir():
    """The genuine data, where conftest finds it."""
    if not have_mnist():
        pytest.skip(f"genuine MNIST not found in {mnist_dir()}: set {DATA_ENV_VAR} to a "
                    "directory holding the four .gz files")
    return mnist_dir()


@pytest.fixture(scope="module")
def real(real_dir):
    return load_mnist(real_dir)


def test_real_split_sizes_shapes_and_dtypes(real):
    for (x, y), n in zip(real, (50_000, 10_000, 10_000)):
        assert x.shape == (n, 784) and x.dtype == np.float32
        assert y.shape == (n,) and y.dtype == np.int64


def test_real_pixel_range(real):
    for x, _ in real:
        assert x.min() == 0.0 and x.max() == 1.0
        # Every value is some byte / 255.
        assert np.array_equal(np.rint(x[:1000] * 255) / np.float32(255), x[:1000])


def test_real_labels_are_balanced_digits(real):
    for _, y in real:
        assert y.min() == 0 and y.max() == 9
        share = np.bincount(y, minlength=10) / len(y)
        assert np.all(share > 0.07) and np.all(share < 0.13), share


def test_real_known_first_labels(real):
    (_, y_train), _, (_, y_test) = real
    assert list(y_train[:5]) == [5, 0, 4, 1, 9]
    assert list(y_test[:3]) == [7, 2, 1]


def test_real_validation_is_last_10000_training_images(real, real_dir):
    (x_train, y_train), (x_val, y_val), _ = real
    labels = read_idx_labels(real_dir / FILES["train_labels"])
    assert np.array_equal(y_train, labels[:50_000])
    assert np.array_equal(y_val, labels[50_000:])
    images = read_idx_images(real_dir / FILES["train_images"])
    assert images.shape == (60_000, 784) and images.dtype == np.uint8
    assert np.array_equal(x_val[-1], images[-1] / np.float32(255))


def test_real_loader_is_deterministic_and_found_through_env(real, real_dir, monkeypatch):
    monkeypatch.setenv(DATA_ENV_VAR, str(real_dir))
    again = load_mnist()
    for (x1, y1), (x2, y2) in zip(real, again):
        assert np.array_equal(x1, x2) and np.array_equal(y1, y2)


# --------------------------------------------------------------------------
# Synthetic data: the happy path


def test_synthetic_load(tmp_path):
    write_dataset(tmp_path, n_train=10_003, n_test=4)
    (x, y), (xv, yv), (xt, yt) = load_mnist(tmp_path)
    assert x.shape == (3, 784) and xv.shape == (10_000, 784) and xt.shape == (4, 784)
    assert list(y) == [0, 1, 2] and yv[0] == 3 and list(yt) == [0, 1, 2, 3]
    assert x[0, 255] == 1.0 and x[0, 0] == 0.0


def test_read_idx_helpers(tmp_path):
    images = read_idx_images(write_images(tmp_path / "i.gz", 2))
    assert images.shape == (2, 784) and images.dtype == np.uint8 and images[0, 3] == 3
    labels = read_idx_labels(write_labels(tmp_path / "l.gz", [9, 0, 3]))
    assert labels.dtype == np.uint8 and list(labels) == [9, 0, 3]


def test_empty_files_are_valid(tmp_path):
    assert read_idx_images(write_images(tmp_path / "i.gz", 0)).shape == (0, 784)
    assert read_idx_labels(write_labels(tmp_path / "l.gz", [])).shape == (0,)


# --------------------------------------------------------------------------
# Synthetic data: every error names the file and says what to do


def test_missing_directory(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=names(missing)) as info:
        load_mnist(missing)
    message = str(info.value)
    assert "not found" in message and "\n" not in message
    assert "--data" in message and DATA_ENV_VAR in message and "nn-gpu download" in message


def test_data_path_is_a_file(tmp_path):
    not_dir = write_labels(tmp_path / "file.gz", [1])
    with pytest.raises(DataError, match=names(not_dir) + ".*not a directory"):
        load_mnist(not_dir)


def test_missing_file(tmp_path):
    write_dataset(tmp_path, 10_001, 1)
    (tmp_path / FILES["test_labels"]).unlink()
    with pytest.raises(DataError, match=names(tmp_path / FILES["test_labels"]) +
                       ".*not found.*nn-gpu download"):
        load_mnist(tmp_path)


def test_not_gzip(tmp_path):
    path = write_idx(tmp_path / "x.gz", LABELS, (1,), b"\x01", gzip=False)
    with pytest.raises(DataError, match=names(path) + ".*not a gzip file"):
        read_idx_labels(path)


def test_truncated_gzip(tmp_path):
    path = write_images(tmp_path / "x.gz", 50)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=names(path) + ".*truncated or corrupt gzip"):
        read_idx_images(path)


def test_corrupt_gzip(tmp_path):
    path = write_labels(tmp_path / "x.gz", [1, 2, 3])
    raw = bytearray(path.read_bytes())
    raw[-8] ^= 0xFF  # break the CRC-32 in the gzip trailer
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=names(path) + ".*truncated or corrupt gzip"):
        read_idx_labels(path)


def test_corrupt_deflate_data(tmp_path):
    path = write_images(tmp_path / "x.gz", 5)
    raw = bytearray(path.read_bytes())
    raw[10:30] = b"\xff" * 20  # garbage right after the gzip header
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=names(path) + ".*truncated or corrupt gzip"):
        read_idx_images(path)


def test_wrong_magic(tmp_path):
    path = write_images(tmp_path / "x.gz", 1)
    with pytest.raises(DataError, match=names(path) + ".*magic.*expected 2049, found 2051"):
        read_idx_labels(path)
    path = write_labels(tmp_path / "y.gz", [1])
    with pytest.raises(DataError, match=names(path) + ".*magic.*expected 2051, found 2049"):
        read_idx_images(path)


@pytest.mark.parametrize("raw", [b"", b"\x00\x00", struct.pack(">III", IMAGES, 1, 28)])
def test_header_too_short(tmp_path, raw):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip_module.compress(raw))
    with pytest.raises(DataError, match=names(path) + ".*header too short"):
        read_idx_images(path)


def test_data_shorter_than_header(tmp_path):
    path = write_idx(tmp_path / "x.gz", IMAGES, (3, 28, 28), bytes(2 * 784))
    with pytest.raises(DataError, match=names(path) + ".*shorter than the header"):
        read_idx_images(path)
    path = write_idx(tmp_path / "y.gz", LABELS, (5,), bytes(4))
    with pytest.raises(DataError, match=names(path) + ".*shorter than the header"):
        read_idx_labels(path)


def test_data_longer_than_header(tmp_path):
    path = write_idx(tmp_path / "x.gz", IMAGES, (1, 28, 28), bytes(784 + 1))
    with pytest.raises(DataError, match=names(path) + ".*longer than the header"):
        read_idx_images(path)
    path = write_idx(tmp_path / "y.gz", LABELS, (2,), bytes(3))
    with pytest.raises(DataError, match=names(path) + ".*longer than the header"):
        read_idx_labels(path)


@pytest.mark.parametrize("rows, cols", [(27, 28), (28, 29), (32, 32)])
def test_image_size_not_28x28(tmp_path, rows, cols):
    path = write_images(tmp_path / "x.gz", 2, rows, cols)
    with pytest.raises(DataError, match=names(path) + f".*{rows}x{cols}, expected 28x28"):
        read_idx_images(path)


def test_label_out_of_range(tmp_path):
    path = write_labels(tmp_path / "x.gz", [1, 9, 10, 255])
    with pytest.raises(DataError, match=names(path) + ".*label 10 at index 2"):
        read_idx_labels(path)


@pytest.mark.parametrize("which", ["train", "test"])
def test_image_label_count_mismatch(tmp_path, which):
    counts = {"n_train_labels": 10_000} if which == "train" else {"n_test_labels": 3}
    write_dataset(tmp_path, 10_001, 2, **counts)
    labels = tmp_path / FILES[f"{which}_labels"]
    images = tmp_path / FILES[f"{which}_images"]
    with pytest.raises(DataError, match=names(labels) + ".*labels but " + names(images)):
        load_mnist(tmp_path)


def test_too_few_training_examples_for_validation(tmp_path):
    write_dataset(tmp_path, 10, 2)
    with pytest.raises(DataError, match=names(tmp_path / FILES["train_labels"]) + ".*validation"):
        load_mnist(tmp_path)


def test_every_message_is_one_line(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"\x1f\x8b" + b"\n" * 40)
    with pytest.raises(DataError) as info:
        read_idx_images(path)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------
# resolve_data_dir


def test_resolve_argument_beats_env(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"


def test_resolve_env_beats_default(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "env"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir() == tmp_path / "env"


def test_resolve_default_uses_xdg_data_home(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir() == tmp_path / "xdg" / "nn_gpu" / "mnist"


@pytest.mark.parametrize("unset", ["delenv", "empty"])
def test_resolve_default_falls_back_to_home(tmp_path, monkeypatch, unset):
    monkeypatch.setenv("HOME", str(tmp_path))
    if unset == "delenv":
        monkeypatch.delenv(DATA_ENV_VAR, raising=False)
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv(DATA_ENV_VAR, "")
        monkeypatch.setenv("XDG_DATA_HOME", "")
    assert resolve_data_dir() == tmp_path / ".local" / "share" / "nn_gpu" / "mnist"


def test_resolve_expands_user(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_dir("~/mnist") == tmp_path / "mnist"


def test_load_uses_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "from-env"))
    with pytest.raises(DataError, match=names(tmp_path / "from-env")):
        load_mnist()
