"""The hostile suite of the newer surfaces: downloads, `read`, the sweep's
space files, the small commands' options and hints, and the API's
constructors (issue #22's second battery and frictions).

Each test is named after its class (``test_dl_`` downloads, ``test_hint_``
hints that fit the install, ``test_read_`` reading, ``test_sweep_`` sweeps,
``test_opt_`` options, ``test_msg_`` unclear messages, ``test_api_``
constructors), so ``pytest --collect-only -q tests/cli/test_hostile_surfaces.py
| grep -c test_dl_`` counts a class's cases. Mirrors are local servers:
nothing here reaches the internet.
"""

import contextlib
import gzip
import hashlib
import http.server
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from types import SimpleNamespace

import numpy
import pytest
from conftest import REPO_ROOT

from nn_gpu import cli
from nn_gpu.data import download
from nn_gpu.data.download import MIRRORS_ENV_VAR, DownloadError, download_mnist
from nn_gpu.data.mnist import DATA_ENV_VAR, FILES

LABELS = FILES["test_labels"]  # the smallest file: 10,008 bytes of content


def one_line(text):
    """A message meant for a user: one line, no traceback."""
    text = str(text).strip()
    assert "\n" not in text and "Traceback" not in text and len(text) < 600, text
    return text


def run(capsys, *argv):
    """(status, stdout, stderr) of ``nn-gpu ARGV`` in this process."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = cli.main([str(word) for word in argv])
    out, err = capsys.readouterr()
    assert not [w for w in caught if issubclass(w.category, (RuntimeWarning, UserWarning))], \
        [str(w.message) for w in caught]
    return status, out, err


def one_error(err, status, expected_status=1):
    """The one error line of a failed command (and its status checked)."""
    assert status == expected_status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nn-gpu"), err
    return one_line(lines[0])


# ---------------------------------------------------------------------------
# Downloads: a mirror is data; its answer is bounded in size, time and mode.
def labels_content():
    """Small valid IDX labels content (10 labels)."""
    return b"\x00\x00\x08\x01\x00\x00\x00\x0a" + bytes(range(10))


@pytest.fixture
def synthetic(monkeypatch):
    """The labels file made small: its checksum and size are the synthetic one's."""
    content = labels_content()
    monkeypatch.setitem(download.SHA256, LABELS, hashlib.sha256(content).hexdigest())
    monkeypatch.setitem(download.RAW_BYTES, LABELS, len(content))
    return gzip.compress(content, mtime=0)


@pytest.fixture(autouse=True)
def local_only(monkeypatch):
    """No proxies, no request beyond the local test servers."""
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    real = urllib.request.urlopen

    def guarded(url, *args, **kwargs):
        assert str(url).startswith("http://127.0.0.1:"), f"test tried to reach {url}"
        return real(url, *args, **kwargs)
    monkeypatch.setattr(urllib.request, "urlopen", guarded)


@contextlib.contextmanager
def mirror(answer):
    """A local HTTP server whose every GET is answered by ``answer(handler)``;
    yields its base URL. Handlers of a client that went away just end."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            try:
                answer(self)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def serve(body, length=None):
    """An answer: ``body`` (bytes) with its Content-Length (or ``length``)."""
    def answer(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body) if length is None else length))
        handler.end_headers()
        handler.wfile.write(body)
    return answer


#: The start of a gzip file whose first deflate block stores 65,535 bytes
#: uncompressed: zeros after it are valid content for a while.
STORED_GZIP = bytes([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0, 0xff, 0xff, 0, 0])


def trickle(first=STORED_GZIP, pause=0.05, stop=None):
    """An answer that never ends: valid gzip data, a byte every ``pause``
    seconds (no length)."""
    def answer(handler):
        handler.send_response(200)
        handler.end_headers()
        handler.wfile.write(first)
        while stop is None or not stop.is_set():
            handler.wfile.write(b"\x00")
            handler.wfile.flush()
            time.sleep(pause)
    return answer


def endless(handler):
    """An answer that never ends, as fast as it goes: valid gzip data
    (empty stored deflate blocks) that decompresses to nothing."""
    handler.send_response(200)
    handler.end_headers()
    handler.wfile.write(STORED_GZIP[:10])
    block = bytes([0, 0, 0, 0xff, 0xff]) * 10000
    while True:
        handler.wfile.write(block)


def leftovers(directory):
    """Every file in ``directory`` that is not one of MNIST's four."""
    return sorted(set(os.listdir(directory)) - set(FILES.values())) if directory.exists() else []


def fetch_labels(dest, url):
    """download_mnist for the labels file only (the others are not asked for)."""
    return download._fetch(url.rstrip("/") + "/" + LABELS, dest, LABELS, 5)


def test_dl_a_trickling_mirror_is_given_up(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "LOW_SPEED", (1000, 1.0))
    dest = tmp_path / "d"
    dest.mkdir()
    with mirror(trickle()) as url:
        started = time.monotonic()
        problem = fetch_labels(dest, url)
    assert time.monotonic() - started < 10
    assert problem.startswith("too slow") and "bytes/s" in problem
    assert leftovers(dest) == [] and not (dest / LABELS).exists()


def test_dl_a_mirror_fast_enough_but_never_done_meets_the_deadline(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "LOW_SPEED", (1, 60))
    monkeypatch.setattr(download, "DEADLINE_SECONDS", 1.0)
    dest = tmp_path / "d"
    dest.mkdir()
    with mirror(trickle(pause=0.01)) as url:
        problem = fetch_labels(dest, url)
    assert problem.startswith("gave up after 1.0 s") and leftovers(dest) == []


def test_dl_the_whole_download_names_the_slow_mirror_and_tries_the_next(tmp_path, monkeypatch,
                                                                        synthetic):
    monkeypatch.setattr(download, "LOW_SPEED", (1000, 1.0))
    monkeypatch.setattr(download, "FILES", {"test_labels": LABELS})
    dest = tmp_path / "d"
    with mirror(trickle()) as slow, mirror(serve(synthetic)) as good:
        download_mnist(dest, mirrors=(slow, good), timeout=5)
    assert gzip.decompress((dest / LABELS).read_bytes()) == labels_content()
    assert leftovers(dest) == []


def test_dl_an_endless_answer_stops_at_the_largest_the_file_can_be(tmp_path):
    dest = tmp_path / "d"
    dest.mkdir()
    with mirror(endless) as url:
        problem = fetch_labels(dest, url)
    assert "goes on past" in problem and f"{download.max_download_bytes(LABELS):,}" in problem
    assert leftovers(dest) == []


def test_dl_a_content_length_too_large_is_refused_before_reading(tmp_path, synthetic):
    dest = tmp_path / "d"
    dest.mkdir()
    with mirror(serve(b"", length=10 ** 12)) as url:
        problem = fetch_labels(dest, url)
    assert problem.startswith("its answer is 1,000,000,000,000 bytes, more than any copy")
    assert leftovers(dest) == []


def test_dl_a_gzip_bomb_is_stopped_at_the_files_size(tmp_path, synthetic):
    bomb = gzip.compress(b"\x00" * (64 << 20), compresslevel=9)  # 64 MiB in ~64 KiB
    assert len(bomb) < download.max_download_bytes(LABELS)
    dest = tmp_path / "d"
    dest.mkdir()
    with mirror(serve(bomb)) as url:
        problem = fetch_labels(dest, url)
    assert problem == f"decompresses to more than the 18 bytes of {LABELS}"
    assert leftovers(dest) == []


def test_dl_an_existing_file_too_large_to_be_mnist_is_not_read_through(tmp_path, synthetic):
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / LABELS).write_bytes(b"\x00" * (download.max_download_bytes(LABELS) + 1))
    problem = download._check(dest / LABELS, LABELS)
    assert "more than any" in problem


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_dl_files_get_the_mode_the_umask_gives(tmp_path, synthetic, umask, mode):
    dest = tmp_path / "d"
    dest.mkdir()
    previous = os.umask(umask)
    try:
        with mirror(serve(synthetic)) as url:
            assert fetch_labels(dest, url) is None
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(dest / LABELS).st_mode) == mode


def test_dl_a_refreshed_file_keeps_its_mode(tmp_path, synthetic):
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / LABELS).write_bytes(b"damaged")
    os.chmod(dest / LABELS, 0o640)
    with mirror(serve(synthetic)) as url:
        assert fetch_labels(dest, url) is None
    assert stat.S_IMODE(os.stat(dest / LABELS).st_mode) == 0o640


def download_process(dest, url, *more):
    """`nn-gpu download` against ``url``, in a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "nn_gpu", "download", "--data", str(dest), "--mirror", url,
         *more], env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "NO_PROXY": "*",
                      "no_proxy": "*"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_dl_sigterm_mid_download_leaves_no_partial_file(tmp_path):
    dest = tmp_path / "d"
    stop = threading.Event()
    with mirror(trickle(pause=0.02, stop=stop)) as url:
        process = download_process(dest, url)
        try:
            deadline = time.monotonic() + 60
            while not leftovers(dest) and time.monotonic() < deadline:  # writing its file
                time.sleep(0.05)
            assert leftovers(dest), "the download never started"
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=30)
        finally:
            stop.set()
            if process.poll() is None:
                process.kill()
    assert process.returncode == 130 and err.strip() == "nn-gpu: interrupted", err
    assert leftovers(dest) == []


def test_dl_later_downloads_remove_what_killed_ones_left(tmp_path, synthetic, monkeypatch):
    monkeypatch.setattr(download, "FILES", {"test_labels": LABELS})
    dest = tmp_path / "d"
    dest.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [dest / f".{LABELS}.k3j_9x2a.part",                   # an earlier version's
             dest / f".{LABELS}.{dead.pid}.abcd1234.tmp"]         # a writer killed by -9
    fresh = dest / f".{LABELS}.q8w7e6r5.part"                     # maybe still being written
    hour_ago = time.time() - 3600
    for path in [*stale, fresh]:
        path.write_bytes(b"\x1f\x8b partial")
    for path in stale:
        os.utime(path, (hour_ago, hour_ago))
    with mirror(serve(synthetic)) as url:
        download_mnist(dest, mirrors=url, timeout=5)
    assert leftovers(dest) == [fresh.name]


def test_dl_mirror_option_is_used_and_named_in_the_advice(tmp_path, capsys, monkeypatch,
                                                          synthetic):
    monkeypatch.setattr(download, "FILES", {"test_labels": LABELS})
    monkeypatch.setenv(MIRRORS_ENV_VAR, "http://127.0.0.1:9/")  # the option wins over it
    dest = tmp_path / "d"
    with mirror(serve(synthetic)) as url:
        status, out, err = run(capsys, "download", "--data", dest, "--mirror", url)
    assert status == 0, err
    assert f"{LABELS}: downloaded from {url}{LABELS}, SHA-256 verified" in out
    with mirror(serve(b"", length=10 ** 12)) as url:
        (dest / LABELS).unlink()
        status, out, err = run(capsys, "download", "--data", dest, "--mirror", url)
    message = one_error(err, status)
    assert "`nn-gpu download --mirror URL`" in message and MIRRORS_ENV_VAR in message


@pytest.mark.parametrize("url", ["example.com/mnist", "ftp//x", "http://", "/srv/mnist"])
def test_dl_a_mirror_that_is_not_a_url_is_a_usage_error(capsys, url):
    status, out, err = run(capsys, "download", "--mirror", url)
    assert "--mirror" in one_error(err, status, 2) and url in err


@pytest.mark.parametrize("command", ["download", "train", "info", "read"])
def test_dl_help_names_the_default_directory_of_this_environment(capsys, tmp_path,
                                                                monkeypatch, command):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("COLUMNS", "300")
    status, out, err = run(capsys, command, "--help")
    assert status == 0
    assert f"else {tmp_path / 'xdg' / 'nn_gpu' / 'mnist'})" in " ".join(out.split())
