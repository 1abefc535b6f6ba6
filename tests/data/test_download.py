"""Tests for nn_gpu.data.download against a local HTTP server: they never touch the internet."""

import contextlib
import functools
import gzip
import hashlib
import http.server
import os
import re
import shutil
import socket
import struct
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import mnist_dir

from nn_gpu.cli import main
from nn_gpu.data import download
from nn_gpu.data.download import (
    DEFAULT_MIRRORS,
    MIRRORS_ENV_VAR,
    SHA256,
    download_mnist,
    first_run_data_dir,
)
from nn_gpu.data.mnist import DATA_ENV_VAR, FILES, read_idx_images, read_idx_labels
from nn_gpu.errors import DataError

TIMEOUT = 5  # seconds per request; the server is local, so this only bounds a hang
GENUINE = mnist_dir()  # read before any test unsets $NN_GPU_DATA


def synthetic_content(name):
    """Small valid IDX content for ``name``, different for every file."""
    seed = sum(name.encode())
    if "images" in name:
        pixels = (np.arange(3 * 784) + seed) % 256
        return struct.pack(">IIII", 2051, 3, 28, 28) + pixels.astype(np.uint8).tobytes()
    return struct.pack(">II", 2049, 3) + bytes([seed % 10, 1, 2])


def gz(content, level=9, mtime=0):
    return gzip.compress(content, compresslevel=level, mtime=mtime)


pytestmark = pytest.mark.usefixtures("local_only")  # (conftest)


@pytest.fixture
def server(tmp_path, monkeypatch):
    """An HTTP server on 127.0.0.1 serving tmp_path/www; www/good/ holds the four files.

    SHA256 is patched to the synthetic files' checksums. ``requests`` records
    every path asked for.
    """
    root = tmp_path / "www"
    good = root / "good"
    good.mkdir(parents=True)
    checksums = {}
    for name in FILES.values():
        content = synthetic_content(name)
        (good / name).write_bytes(gz(content))
        checksums[name] = hashlib.sha256(content).hexdigest()
    monkeypatch.setattr(download, "SHA256", checksums)

    with http_server(root) as (url, requests):
        yield SimpleNamespace(url=url, root=root, good=good, requests=requests)


@contextlib.contextmanager
def http_server(root):
    """Serve the directory ``root`` on 127.0.0.1; yields (base URL, paths requested)."""
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(TIMEOUT)


def closed_port_url():
    """A localhost URL on which nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def assert_only_final_files(directory, names):
    """No temporary or partial files are left behind."""
    assert sorted(os.listdir(directory)) == sorted(names)


# --------------------------------------------------------------------------


def test_constants():
    assert set(SHA256) == set(FILES.values())
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in SHA256.values())
    assert DEFAULT_MIRRORS and all(m.startswith("https://") and m.endswith("/")
                                   for m in DEFAULT_MIRRORS)


def test_sha256_matches_genuine_mnist():
    env = os.environ.get(DATA_ENV_VAR)
    root = Path(env) if env else Path(__file__).resolve().parents[3] / "shared/data/mnist"
    if not all((root / name).is_file() for name in FILES.values()):
        pytest.skip(f"genuine MNIST not found: set {DATA_ENV_VAR}")
    for name in FILES.values():
        content = gzip.decompress((root / name).read_bytes())
        assert hashlib.sha256(content).hexdigest() == SHA256[name], name


def test_download_success(server, tmp_path):
    dest = tmp_path / "new" / "mnist"
    assert download_mnist(dest, mirrors=(server.url + "good/",), timeout=TIMEOUT) == dest
    assert_only_final_files(dest, FILES.values())
    for name in FILES.values():
        assert gzip.decompress((dest / name).read_bytes()) == synthetic_content(name)
    assert read_idx_images(dest / FILES["train_images"]).shape == (3, 784)
    assert len(read_idx_labels(dest / FILES["test_labels"])) == 3
    assert len(server.requests) == 4


def test_mirror_without_trailing_slash_and_single_string(server, tmp_path):
    download_mnist(tmp_path / "d", mirrors=server.url + "good", timeout=TIMEOUT)
    assert_only_final_files(tmp_path / "d", FILES.values())


def test_falls_back_to_second_mirror_after_404(server, tmp_path):
    mirrors = (server.url + "missing/", server.url + "good/")
    download_mnist(tmp_path / "d", mirrors=mirrors, timeout=TIMEOUT)
    assert_only_final_files(tmp_path / "d", FILES.values())
    for name in FILES.values():
        assert server.requests.count(f"/missing/{name}") == 1
        assert server.requests.count(f"/good/{name}") == 1


def test_falls_back_after_unreachable_mirror_and_bad_content(server, tmp_path):
    bad = server.root / "bad"
    bad.mkdir()
    for name in FILES.values():
        (bad / name).write_bytes(b"<html>Not really MNIST</html>")
    mirrors = (closed_port_url(), server.url + "bad/", server.url + "good/")
    download_mnist(tmp_path / "d", mirrors=mirrors, timeout=TIMEOUT)
    assert_only_final_files(tmp_path / "d", FILES.values())


def test_all_mirrors_failing_raises(server, tmp_path):
    first, second = server.url + "missing/", closed_port_url()
    dest = tmp_path / "d"
    name = FILES["train_images"]
    with pytest.raises(DataError) as info:
        download_mnist(dest, mirrors=(first, second), timeout=TIMEOUT)
    message = str(info.value)
    assert str(dest / name) in message and "\n" not in message
    assert first + name in message and "HTTP 404" in message
    assert second + name in message
    assert_only_final_files(dest, [])


def test_checksum_mismatch_leaves_no_file(server, tmp_path, monkeypatch):
    name = FILES["train_images"]
    monkeypatch.setitem(download.SHA256, name, "0" * 64)
    dest = tmp_path / "d"
    with pytest.raises(DataError, match=re.escape(name) + ".*SHA-256.*expected 0{64}"):
        download_mnist(dest, mirrors=(server.url + "good/",), timeout=TIMEOUT)
    assert_only_final_files(dest, [])


def test_checksum_mismatch_keeps_existing_file_untouched(server, tmp_path, monkeypatch):
    name = FILES["train_labels"]
    monkeypatch.setitem(download.SHA256, name, "0" * 64)
    dest = tmp_path / "d"
    dest.mkdir()
    for other in FILES.values():  # the files before it in the order are fine
        if other == name:
            break
        (dest / other).write_bytes(gz(synthetic_content(other)))
    (dest / name).write_bytes(b"old, partial download")
    existing = sorted(os.listdir(dest))
    with pytest.raises(DataError, match=re.escape(str(dest / name))):
        download_mnist(dest, mirrors=(server.url + "good/",), timeout=TIMEOUT)
    assert (dest / name).read_bytes() == b"old, partial download"
    assert_only_final_files(dest, existing)


def test_present_valid_files_are_not_downloaded_again(server, tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    before = {}
    for name in FILES.values():
        # Re-gzipped differently from the mirror: only the content must match.
        before[name] = gz(synthetic_content(name), level=1, mtime=12345)
        (dest / name).write_bytes(before[name])
    download_mnist(dest, mirrors=(server.url + "good/",), timeout=TIMEOUT)
    assert server.requests == []
    assert {name: (dest / name).read_bytes() for name in FILES.values()} == before


def test_only_missing_or_invalid_files_are_downloaded(server, tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    keep, corrupt = FILES["train_images"], FILES["test_images"]
    (dest / keep).write_bytes(gz(synthetic_content(keep)))
    (dest / corrupt).write_bytes(gz(synthetic_content(corrupt))[:-10])  # truncated
    download_mnist(dest, mirrors=(server.url + "good/",), timeout=TIMEOUT)
    assert sorted(server.requests) == sorted(f"/good/{n}" for n in FILES.values() if n != keep)
    assert gzip.decompress((dest / corrupt).read_bytes()) == synthetic_content(corrupt)
    assert_only_final_files(dest, FILES.values())


def test_dest_that_is_a_file_raises(tmp_path):
    not_dir = tmp_path / "file"
    not_dir.write_text("x")
    with pytest.raises(DataError, match=re.escape(str(not_dir))):
        download_mnist(not_dir, mirrors=(closed_port_url(),), timeout=TIMEOUT)


# ------------------------------------------------ the first run of a command
@pytest.fixture
def fresh_machine(tmp_path, monkeypatch):
    """No MNIST anywhere: no $NN_GPU_DATA, an empty per-user data directory."""
    monkeypatch.delenv(DATA_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(MIRRORS_ENV_VAR, raising=False)
    return tmp_path / "xdg" / "nn_gpu" / "mnist"


@pytest.fixture
def real_mirror(monkeypatch):
    """A local server with the genuine MNIST files, named by $NN_GPU_MNIST_MIRRORS."""
    root = GENUINE
    if not all((root / name).is_file() for name in FILES.values()):
        pytest.skip(f"genuine MNIST not found in {root}: set {DATA_ENV_VAR}")
    with http_server(root) as (url, requests):
        monkeypatch.setenv(MIRRORS_ENV_VAR, url)
        yield SimpleNamespace(url=url, root=root, requests=requests)


class Bars:
    """Records the progress bars download_mnist asks for."""

    def __init__(self):
        self.made = []

    def __call__(self, name, total):
        bar = SimpleNamespace(name=name, total=total, done=0, closed=False)
        bar.update = lambda n: setattr(bar, "done", bar.done + n)
        bar.close = lambda: setattr(bar, "closed", True)
        self.made.append(bar)
        return bar


def test_first_run_downloads_the_genuine_files_into_the_default_dir(fresh_machine, real_mirror):
    said, bars = [], Bars()
    directory = first_run_data_dir(say=said.append, progress=bars)
    assert directory == fresh_machine
    assert_only_final_files(directory, FILES.values())
    for name in FILES.values():  # byte for byte, and with the genuine checksums
        assert (directory / name).read_bytes() == (real_mirror.root / name).read_bytes()
    assert sorted(real_mirror.requests) == sorted(f"/{name}" for name in FILES.values())
    assert said[0].startswith(f"MNIST is not in {directory} yet: downloading the four files")
    assert [line.split(":")[0] for line in said[1:5]] == list(FILES.values())
    assert all("SHA-256 verified" in line for line in said[1:5])
    assert said[-1] == f"MNIST is ready in {directory}"
    sizes = [(real_mirror.root / name).stat().st_size for name in FILES.values()]
    assert [(b.name, b.total, b.done, b.closed) for b in bars.made] == [
        (name, size, size, True) for name, size in zip(FILES.values(), sizes)]
    # The next run finds the files and asks for nothing.
    assert first_run_data_dir(say=said.append) == directory
    assert len(real_mirror.requests) == 4 and said[-1] == f"MNIST is ready in {directory}"


def test_only_the_missing_files_are_fetched(fresh_machine, real_mirror):
    fresh_machine.mkdir(parents=True)
    for name in list(FILES.values())[:3]:
        shutil.copy(real_mirror.root / name, fresh_machine / name)
    first_run_data_dir()
    assert real_mirror.requests == [f"/{FILES['test_labels']}"]


@pytest.mark.parametrize("named", ["--data", DATA_ENV_VAR])
def test_a_named_directory_is_never_downloaded_into(fresh_machine, real_mirror, tmp_path,
                                                     monkeypatch, named):
    mine = tmp_path / "mine"
    if named == "--data":
        assert first_run_data_dir(mine) == mine
    else:
        monkeypatch.setenv(DATA_ENV_VAR, str(mine))
        assert first_run_data_dir() == mine
    assert real_mirror.requests == [] and not mine.exists() and not fresh_machine.exists()


def test_first_run_without_a_network_says_where_to_put_the_files(fresh_machine, monkeypatch):
    monkeypatch.setenv(MIRRORS_ENV_VAR, closed_port_url())
    with pytest.raises(DataError) as info:
        first_run_data_dir()
    message = str(info.value)
    assert "\n" not in message and message.startswith("could not download MNIST (")
    assert f"in {fresh_machine} by hand" in message
    assert all(name in message for name in FILES.values())
    assert_only_final_files(fresh_machine, [])


# ------------------------------------------ the same, through `nn-gpu train`
TRAIN = ["train", "--epochs", "1", "--train-size", "300", "--sizes", "784", "10", "10"]


@pytest.mark.slow
def test_train_on_a_fresh_machine_downloads_mnist_and_trains(fresh_machine, real_mirror, capsys):
    assert main(TRAIN) == 0
    out, err = capsys.readouterr()
    said = err.splitlines()
    assert said[0].startswith(f"MNIST is not in {fresh_machine} yet: downloading the four "
                              f"files (about 11 MB) from {real_mirror.url}")
    assert [line.split(":")[0] for line in said[1:5]] == list(FILES.values())
    assert said[5:] == [f"MNIST is ready in {fresh_machine}"]  # no bar: not a terminal
    assert re.search(r"^Epoch 1: \d+ / 10000 ", out, re.MULTILINE)
    assert_only_final_files(fresh_machine, FILES.values())
    assert main(TRAIN) == 0  # the second run just trains
    assert capsys.readouterr().err == "" and len(real_mirror.requests) == 4


@pytest.mark.parametrize("named", ["--data", DATA_ENV_VAR])
def test_train_never_downloads_into_a_named_directory(fresh_machine, real_mirror, tmp_path,
                                                      monkeypatch, capsys, named):
    mine = tmp_path / "mine"
    mine.mkdir()
    if named == "--data":
        rc = main([*TRAIN, "--data", str(mine)])
    else:
        monkeypatch.setenv(DATA_ENV_VAR, str(mine))
        rc = main(TRAIN)
    out, err = capsys.readouterr()
    assert rc == 1 and out == "" and err.count("\n") == 1, err
    assert f"put the four files {', '.join(FILES.values())} in {mine}" in err
    assert f"`nn-gpu download --data {mine}`" in err
    assert real_mirror.requests == [] and os.listdir(mine) == []


def test_train_without_a_network_says_where_to_put_the_files(fresh_machine, monkeypatch,
                                                             capsys):
    monkeypatch.setenv(MIRRORS_ENV_VAR, closed_port_url())
    assert main(TRAIN) == 1
    out, err = capsys.readouterr()
    status, error = err.splitlines()
    assert out == "" and status.startswith(f"MNIST is not in {fresh_machine} yet")
    assert error.startswith("nn-gpu: error: could not download MNIST (")
    assert error.endswith(f"in {fresh_machine} by hand, fetch them from another mirror "
                          "(`nn-gpu download --mirror URL`), or pass --data DIR where they are")


@pytest.mark.slow
def test_on_a_terminal_each_file_gets_a_progress_bar(fresh_machine, real_mirror, monkeypatch,
                                                     capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main([*TRAIN, "--quiet"]) == 0
    err = capsys.readouterr().err
    tqdm = pytest.importorskip("tqdm")
    for name in FILES.values():  # tqdm's bar: the file's name and its size (from Content-Length)
        size = tqdm.tqdm.format_sizeof((real_mirror.root / name).stat().st_size, divisor=1024)
        assert re.search(re.escape(name) + r": +0%\|.*\| 0\.00/" + re.escape(size), err), err
        assert f"{name}: downloaded from {real_mirror.url}{name}, SHA-256 verified" in err
