"""Tests for nn_gpu.data.expand: pixel shifts, the expanded set's order, its cache."""

import errno
import os
import zipfile

import numpy as np
import pytest

from nn_gpu.data import expand
from nn_gpu.data.expand import (
    CACHE_NAME,
    FORMAT_VERSION,
    SHIFTS,
    expanded_training_set,
    shift_images,
)
from nn_gpu.errors import InvalidArgumentError

UP, DOWN, LEFT, RIGHT = (-1, 0), (1, 0), (0, -1), (0, 1)


def one_pixel(row, col, value=1.0, dtype=np.float32):
    """A batch of one 28x28 image, flattened, with a single lit pixel."""
    image = np.zeros((28, 28), dtype=dtype)
    image[row, col] = value
    return image.reshape(1, 784)


def lit(X):
    """(row, col) of every non-zero pixel of a one-image batch."""
    return [tuple(int(v) for v in rc) for rc in np.argwhere(X.reshape(28, 28))]


def book_shift(image, d, axis, index_position, index):
    """One displacement exactly as Nielsen's expand_mnist.py does it."""
    new_img = np.roll(image.reshape(-1, 28), d, axis)
    if index_position == "first":
        new_img[index, :] = np.zeros(28)
    else:
        new_img[:, index] = np.zeros(28)
    return new_img.reshape(784)


def make_training(seed, n):
    """A synthetic training set quantised like load_mnist's (bytes / 255)."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (n, 784)).astype(np.float32)
    X /= np.float32(255)
    return X, rng.integers(0, 10, n).astype(np.int64)


def expected_expansion(X, labels):
    rows = [shift_images(X[i:i + 1], dy, dx)[0] for i in range(len(X)) for dy, dx in SHIFTS]
    return np.array(rows, dtype=np.float32), np.repeat(labels, 5)


@pytest.fixture
def count_shifts(monkeypatch):
    """Count the calls the expansion makes to shift_images."""
    calls = []
    real = expand.shift_images

    def spy(*args, **kwargs):
        calls.append(args[1:])
        return real(*args, **kwargs)

    monkeypatch.setattr(expand, "shift_images", spy)
    return calls


def forbid_shifts(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("shift_images called: the cache was not used")

    monkeypatch.setattr(expand, "shift_images", boom)


# --------------------------------------------------------------------------
# shift_images


@pytest.mark.parametrize("shift, where", [
    (UP, (9, 5)), (DOWN, (11, 5)), (LEFT, (10, 4)), (RIGHT, (10, 6)),
    ((0, 0), (10, 5)), ((-2, 3), (8, 8)),
])
def test_shift_moves_a_single_pixel(shift, where):
    X = one_pixel(10, 5, 0.5)
    shifted = shift_images(X, *shift)
    assert lit(shifted) == [where]
    assert shifted.reshape(28, 28)[where] == np.float32(0.5)
    assert shifted.shape == X.shape and shifted.dtype == X.dtype
    assert shifted is not X and lit(X) == [(10, 5)]  # input untouched


@pytest.mark.parametrize("pixel, shift, where", [
    ((0, 7), UP, None), ((0, 7), DOWN, (1, 7)),
    ((27, 7), DOWN, None), ((27, 7), UP, (26, 7)),
    ((7, 0), LEFT, None), ((7, 0), RIGHT, (7, 1)),
    ((7, 27), RIGHT, None), ((7, 27), LEFT, (7, 26)),
])
def test_shift_drops_pixels_at_the_edge(pixel, shift, where):
    shifted = shift_images(one_pixel(*pixel), *shift)
    assert lit(shifted) == ([] if where is None else [where])


def test_shift_does_not_wrap_around():
    X = np.ones((2, 784), dtype=np.uint8)
    up = shift_images(X, *UP).reshape(2, 28, 28)
    assert (up[:, 27, :] == 0).all() and (up[:, :27, :] == 1).all()
    right = shift_images(X, *RIGHT).reshape(2, 28, 28)
    assert (right[:, :, 0] == 0).all() and (right[:, :, 1:] == 1).all()
    assert not shift_images(X, 28, 0).any() and not shift_images(X, 0, -30).any()


def test_shift_matches_the_books_np_roll():
    X, _ = make_training(0, 4)
    for (dy, dx), args in [(DOWN, (1, 0, "first", 0)), (UP, (-1, 0, "first", 27)),
                           (RIGHT, (1, 1, "last", 0)), (LEFT, (-1, 1, "last", 27))]:
        expected = np.array([book_shift(x, *args) for x in X])
        np.testing.assert_array_equal(shift_images(X, dy, dx), expected)


def test_shift_accepts_a_single_flat_image_and_rejects_other_shapes():
    image = one_pixel(3, 3)[0]
    assert lit(shift_images(image, *DOWN)) == [(4, 3)]
    with pytest.raises(InvalidArgumentError, match="784"):
        shift_images(np.zeros((2, 28, 28)), 1, 0)


# --------------------------------------------------------------------------
# expanded_training_set without a cache


def test_expansion_order_and_size():
    X, labels = make_training(1, 3)
    X_before = X.copy()
    X5, labels5 = expanded_training_set((X, labels))
    assert X5.shape == (15, 784) and X5.dtype == np.float32
    assert labels5.shape == (15,) and labels5.dtype == np.int64
    np.testing.assert_array_equal(labels5, np.repeat(labels, 5))
    for i in range(3):
        np.testing.assert_array_equal(X5[5 * i], X[i])  # original first
        for k, (dy, dx) in enumerate([UP, DOWN, LEFT, RIGHT], start=1):
            np.testing.assert_array_equal(X5[5 * i + k], shift_images(X[i:i + 1], dy, dx)[0])
    np.testing.assert_array_equal(X, X_before)  # input untouched


def test_pixels_are_bytes_over_255_like_load_mnist():
    rng = np.random.default_rng(2)
    X = rng.random((4, 784), dtype=np.float32)  # not multiples of 1/255
    X[0, :2] = 0.0, 1.0
    X5, _ = expanded_training_set((X, np.arange(4)))
    u8 = np.rint(X * 255).astype(np.uint8)
    expected = u8.astype(np.float32)
    expected /= np.float32(255)
    np.testing.assert_array_equal(X5[0::5], expected)
    assert X5.min() >= 0 and X5.max() <= 1


def test_empty_training_set():
    X5, labels5 = expanded_training_set((np.zeros((0, 784), np.float32), np.zeros(0, np.int64)))
    assert X5.shape == (0, 784) and labels5.shape == (0,)


@pytest.mark.parametrize("X, labels, match", [
    (np.zeros((3, 783)), np.zeros(3, int), "shape"),
    (np.zeros(784), np.zeros(1, int), "shape"),
    (np.zeros((3, 784)), np.zeros(2, int), "labels"),
    (np.zeros((3, 784)), np.zeros(3), "integers"),
    (np.full((3, 784), 2.0), np.zeros(3, int), r"\[0, 1\]"),
    (np.full((3, 784), -0.5), np.zeros(3, int), r"\[0, 1\]"),
    (np.full((3, 784), np.nan), np.zeros(3, int), r"\[0, 1\]"),
])
def test_invalid_training_sets_are_rejected(X, labels, match):
    with pytest.raises(InvalidArgumentError, match=match):
        expanded_training_set((X, labels))


def test_training_must_be_a_pair():
    with pytest.raises(InvalidArgumentError, match="pair"):
        expanded_training_set(np.zeros((3, 784)))


# --------------------------------------------------------------------------
# the cache


def test_cache_round_trip(tmp_path, monkeypatch):
    training = make_training(3, 5)
    first = expanded_training_set(training, cache_dir=tmp_path)
    path = tmp_path / CACHE_NAME
    assert path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [CACHE_NAME]  # no temp files left
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["format_version", "images", "labels", "source_sha256"]
        assert int(npz["format_version"]) == FORMAT_VERSION
        assert npz["images"].dtype == np.uint8 and npz["images"].shape == (25, 784)
        assert npz["labels"].dtype == np.int64
        assert len(str(npz["source_sha256"])) == 64

    forbid_shifts(monkeypatch)
    second = expanded_training_set(training, cache_dir=str(tmp_path))  # str works too
    for a, b in zip(first, second):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(second[0], expected_expansion(*training)[0])


@pytest.mark.parametrize("change", ["pixel", "label", "size"])
def test_cache_invalidated_when_the_source_changes(tmp_path, count_shifts, change):
    X, labels = make_training(4, 4)
    expanded_training_set((X, labels), cache_dir=tmp_path)
    assert len(count_shifts) == 5
    X, labels = X.copy(), labels.copy()
    if change == "pixel":
        X[2, 300] = 1 - X[2, 300]
    elif change == "label":
        labels[1] = (labels[1] + 1) % 10
    else:
        X, labels = X[:3], labels[:3]

    got = expanded_training_set((X, labels), cache_dir=tmp_path)
    assert len(count_shifts) == 10  # recomputed
    expected = expected_expansion(X, labels)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])

    again = expanded_training_set((X, labels), cache_dir=tmp_path)  # rewritten for the new source
    assert len(count_shifts) == 10
    np.testing.assert_array_equal(again[0], expected[0])


def _truncated(good):
    return good[: len(good) // 2]


def _flipped(good):
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF  # inside the images: zip CRC mismatch
    return bytes(bad)


def _other_version(good, tmp_path):
    path = tmp_path / "other.npz"
    path.write_bytes(good)
    with np.load(path) as npz:
        members = dict(npz)
    members["format_version"] = np.int64(FORMAT_VERSION + 1)
    np.savez(path, **members)
    return path.read_bytes()


def _missing_member(good, tmp_path):
    path = tmp_path / "other.npz"
    path.write_bytes(good)
    with np.load(path) as npz:
        members = {k: npz[k] for k in npz.files if k != "labels"}
    np.savez(path, **members)
    return path.read_bytes()


def _wrong_shape(good, tmp_path):
    path = tmp_path / "other.npz"
    path.write_bytes(good)
    with np.load(path) as npz:
        members = dict(npz)
    members["images"] = members["images"][:-1]
    np.savez(path, **members)
    return path.read_bytes()


@pytest.mark.parametrize("corrupt", [
    lambda good, tmp: b"",
    lambda good, tmp: b"not a zip file at all",
    lambda good, tmp: _truncated(good),
    lambda good, tmp: _flipped(good),
    _other_version,
    _missing_member,
    _wrong_shape,
], ids=["empty", "garbage", "truncated", "bit-flip", "other-version", "missing-member",
        "wrong-shape"])
def test_bad_cache_is_recomputed_and_rewritten(tmp_path, monkeypatch, count_shifts, corrupt):
    training = make_training(5, 3)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    expected = expanded_training_set(training, cache_dir=cache_dir)
    path = cache_dir / CACHE_NAME
    path.write_bytes(corrupt(path.read_bytes(), tmp_path))

    got = expanded_training_set(training, cache_dir=cache_dir)
    assert len(count_shifts) == 10  # computed twice, no crash
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert zipfile.is_zipfile(path)

    forbid_shifts(monkeypatch)  # the rewritten cache is good again
    again = expanded_training_set(training, cache_dir=cache_dir)
    np.testing.assert_array_equal(again[0], expected[0])


def test_unwritable_cache_dir_is_skipped_silently(tmp_path):
    cache_dir = tmp_path / "readonly"
    cache_dir.mkdir()
    cache_dir.chmod(0o500)
    try:
        if os.access(cache_dir, os.W_OK):
            pytest.skip("chmod 0o500 does not stop this user writing (running as root?)")
        training = make_training(6, 2)
        got = expanded_training_set(training, cache_dir=cache_dir)
        assert list(cache_dir.iterdir()) == []
    finally:
        cache_dir.chmod(0o700)
    expected = expected_expansion(*training)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_failing_cache_write_is_skipped_silently(tmp_path, monkeypatch, code):
    """Same as above, but also where root ignores permissions: writing fails."""
    def refuse(path, mode="wb"):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(expand, "atomic_write", refuse)
    training = make_training(7, 2)
    got = expanded_training_set(training, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    np.testing.assert_array_equal(got[0], expected_expansion(*training)[0])


def test_missing_cache_dir_is_not_created(tmp_path):
    training = make_training(8, 2)
    got = expanded_training_set(training, cache_dir=tmp_path / "absent")
    assert not (tmp_path / "absent").exists()
    np.testing.assert_array_equal(got[0], expected_expansion(*training)[0])


# --------------------------------------------------------------------------
# Genuine MNIST (the session fixture `mnist` skips when the data is absent)


@pytest.fixture(scope="module")
def expanded_real(mnist):
    training, _, _ = mnist
    return training, expanded_training_set(training)


def test_real_expanded_set(expanded_real):
    (X, labels), (X5, labels5) = expanded_real
    assert X.shape == (50_000, 784)
    assert X5.shape == (250_000, 784) and X5.dtype == np.float32
    assert labels5.shape == (250_000,) and labels5.dtype == np.int64
    np.testing.assert_array_equal(X5[0], X[0])
    np.testing.assert_array_equal(X5[1], shift_images(X[:1], *UP)[0])
    # every original is bit-identical to load_mnist's, in its place
    assert np.array_equal(X5[0::5].view(np.uint32), X.view(np.uint32))
    np.testing.assert_array_equal(labels5, np.repeat(labels, 5))
    # image 0's shifts as the book computes them (np.roll, then zero the edge)
    for k, args in [(1, (-1, 0, "first", 27)), (2, (1, 0, "first", 0)),
                    (3, (-1, 1, "last", 27)), (4, (1, 1, "last", 0))]:
        np.testing.assert_array_equal(X5[k], book_shift(X[0], *args))
    # the digit in image 0 (a 5) does not touch the border, so shifts keep its ink
    assert np.isclose(X5[:5].sum(axis=1), X[0].sum(), rtol=1e-6).all()


def test_real_cache_round_trip_is_exact(mnist, tmp_path, monkeypatch):
    (X, labels), _, _ = mnist
    training = X[:2000], labels[:2000]
    first = expanded_training_set(training, cache_dir=tmp_path)
    forbid_shifts(monkeypatch)
    second = expanded_training_set(training, cache_dir=tmp_path)
    assert np.array_equal(first[0].view(np.uint32), second[0].view(np.uint32))
    np.testing.assert_array_equal(first[1], second[1])
    assert np.array_equal(second[0][0::5].view(np.uint32), X[:2000].view(np.uint32))
