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
from types import SimpleNamespace

import numpy
import pytest
from conftest import REPO_ROOT, one_error, one_line, run

from nn_gpu.data import download
from nn_gpu.data.download import MIRRORS_ENV_VAR, download_mnist
from nn_gpu.data.mnist import FILES

LABELS = FILES["test_labels"]  # the smallest file: 10,008 bytes of content


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


pytestmark = pytest.mark.usefixtures("local_only")  # (conftest)


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_dl_a_mirror_fast_enough_but_never_done_meets_the_deadline(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "LOW_SPEED", (1, 60))
    monkeypatch.setattr(download, "DEADLINE_SECONDS", 1.0)
    dest = tmp_path / "d"
    dest.mkdir()
    with mirror(trickle(pause=0.01)) as url:
        problem = fetch_labels(dest, url)
    assert problem.startswith("gave up after 1.0 s") and leftovers(dest) == []


@pytest.mark.slow
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


def test_dl_mirror_option_is_used_and_named_in_the_advice(tmp_path, monkeypatch,
                                                          synthetic):
    monkeypatch.setattr(download, "FILES", {"test_labels": LABELS})
    monkeypatch.setenv(MIRRORS_ENV_VAR, "http://127.0.0.1:9/")  # the option wins over it
    dest = tmp_path / "d"
    with mirror(serve(synthetic)) as url:
        status, out, err = run("download", "--data", dest, "--mirror", url)
    assert status == 0, err
    assert f"{LABELS}: downloaded from {url}{LABELS}, SHA-256 verified" in out
    with mirror(serve(b"", length=10 ** 12)) as url:
        (dest / LABELS).unlink()
        status, out, err = run("download", "--data", dest, "--mirror", url)
    message = one_error(err, status)
    assert "`nn-gpu download --mirror URL`" in message and MIRRORS_ENV_VAR in message


@pytest.mark.parametrize("url", ["example.com/mnist", "ftp//x", "http://", "/srv/mnist"])
def test_dl_a_mirror_that_is_not_a_url_is_a_usage_error(url):
    status, out, err = run("download", "--mirror", url)
    assert "--mirror" in one_error(err, status, 2) and url in err


@pytest.mark.parametrize("command", ["download", "train", "info", "read"])
def test_dl_help_names_the_default_directory_of_this_environment(tmp_path,
                                                                monkeypatch, command):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("COLUMNS", "300")
    status, out, err = run(command, "--help")
    assert status == 0
    assert f"else {tmp_path / 'xdg' / 'nn_gpu' / 'mnist'})" in " ".join(out.split())


# ---------------------------------------------------------------------------
# Hints that fit the install: CuPy advice only where a GPU could use it,
# extras phrased for a clone or an installed package.
from nn_gpu import backends  # noqa: E402
from nn_gpu.backends import devices  # noqa: E402
from nn_gpu import version as nn_gpu_version  # noqa: E402

TINY_TRAIN = ["train", "--epochs", "1", "--train-size", "100", "--sizes", "784", "5", "10"]


@pytest.fixture
def no_cupy(monkeypatch):
    """`import cupy` fails, as on a machine without it."""
    monkeypatch.setitem(sys.modules, "cupy", None)


@pytest.mark.usefixtures("no_cupy", "mnist")
def test_hint_a_cpu_run_without_a_driver_gives_no_cupy_advice(monkeypatch):
    monkeypatch.setattr(devices, "nvidia_driver_found", lambda: False)
    status, out, err = run(*TINY_TRAIN)
    assert status == 0, err
    first = out.splitlines()[0]
    assert "no NVIDIA driver" in first and "pip install" not in first and "cuda1" not in first


@pytest.mark.usefixtures("no_cupy", "mnist")
def test_hint_a_machine_with_a_driver_is_told_how_to_use_it(monkeypatch):
    monkeypatch.setattr(devices, "nvidia_driver_found", lambda: True)
    status, out, err = run(*TINY_TRAIN)
    assert status == 0 and "pip install" in out.splitlines()[0] and "[cuda12]" in out


@pytest.mark.usefixtures("no_cupy")
@pytest.mark.parametrize("driver", [False, True])
def test_hint_asking_for_cupy_or_info_always_says_how_to_install_it(monkeypatch,
                                                                    driver):
    monkeypatch.setattr(devices, "nvidia_driver_found", lambda: driver)
    status, out, err = run(*TINY_TRAIN, "--backend", "cupy")
    assert "[cuda12]" in one_error(err, status)
    status, out, err = run("info")
    assert status == 0 and "[cuda12]" in next(line for line in out.splitlines()
                                                if line.startswith("CuPy usable"))


def test_hint_extras_are_phrased_for_a_clone(monkeypatch, tmp_path):
    tree = nn_gpu_version.source_tree()
    assert tree == REPO_ROOT  # the tests run from the clone
    monkeypatch.chdir(REPO_ROOT)
    assert nn_gpu_version.install_hint("plot") == "pip install -e '.[plot]'"
    monkeypatch.chdir(tmp_path)
    assert nn_gpu_version.install_hint("plot") == f"pip install -e '{REPO_ROOT}[plot]'"


def test_hint_extras_are_phrased_for_an_installed_package(monkeypatch, tmp_path):
    monkeypatch.setattr(nn_gpu_version, "_TREE", tmp_path)  # site-packages: no pyproject.toml
    assert nn_gpu_version.install_hint("image") == "pip install 'nn_gpu[image]'"
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\n')
    assert nn_gpu_version.install_hint("sweep") == "pip install 'nn_gpu[sweep]'"


def test_hint_every_extras_hint_is_the_installs(monkeypatch):
    from nn_gpu.analysis.plots import PLOT_HINT
    from nn_gpu.cli.sweep import INSTALL_HINT
    from nn_gpu.reading.images import PILLOW_HINT

    for hint, extra in ((PLOT_HINT, "plot"), (INSTALL_HINT, "sweep"), (PILLOW_HINT, "image"),
                        (backends.CUPY_INSTALL_HINT, "cuda12")):
        assert nn_gpu_version.install_hint(extra) in hint


# ---------------------------------------------------------------------------
# Options are never guessed from their first letters.
@pytest.mark.parametrize("argv, wrong", [
    (["train", "--epoch", "3"], "--epoch"),
    (["train", "--train-s", "100"], "--train-s"),
    (["evaluate", "model.npz", "--ens", "a.npz"], "--ens"),
    (["sweep", "space.toml", "--trial", "4"], "--trial"),
    (["read", "model.npz", "x.png", "--no-ch"], "--no-ch"),
    (["plot", "weights", "model.npz", "-o", "w.png", "--cou", "3"], "--cou"),
    (["download", "--mirr", "http://127.0.0.1:9/"], "--mirr"),
])
def test_opt_abbreviations_are_refused(argv, wrong):
    status, out, err = run(*argv)
    message = one_error(err, status, 2)
    assert "unrecognized arguments" in message and wrong in message


# ---------------------------------------------------------------------------
# A run given no seed records the seed it drew, and that seed repeats it.
@pytest.mark.usefixtures("mnist")
def test_opt_a_run_without_seed_records_the_seed_it_drew(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert run(*TINY_TRAIN, "--history", first, "--quiet")[0] == 0
    import json

    recorded = json.loads(first.read_text())
    seed = recorded["config"]["seed"]
    assert isinstance(seed, int) and seed >= 0
    assert run(*TINY_TRAIN, "--history", second, "--quiet", "--seed", seed)[0] == 0
    again = json.loads(second.read_text())
    keys = ("test_correct", "validation_correct", "train_cost")
    assert [{k: e.get(k) for k in keys} for e in again["epochs"]] == \
        [{k: e.get(k) for k in keys} for e in recorded["epochs"]]


def test_opt_networks_given_no_seed_know_the_one_they_drew():
    from nn_gpu import Network, Perceptron
    from nn_gpu.convnet import ConvNetwork, SoftmaxLayer

    for make in (lambda seed: Network([4, 3, 2], backend="numpy", seed=seed),
                 lambda seed: ConvNetwork([SoftmaxLayer(4, 2)], backend="numpy", seed=seed),
                 lambda seed: Perceptron(4, backend="numpy", seed=seed)):
        drawn = make(None)
        assert isinstance(drawn.seed, int)
        again = make(drawn.seed)
        weights = (lambda net: net.weights if isinstance(net, Perceptron) else net.weights[0])
        numpy.testing.assert_array_equal(numpy.asarray(weights(again)),
                                         numpy.asarray(weights(drawn)))


# ---------------------------------------------------------------------------
# The API's constructors check their arguments with the shared validators,
# and the error names the parameter.
def api_cases():
    from nn_gpu import Network, Perceptron
    from nn_gpu.convnet import ConvNetwork, ConvPoolLayer, FullyConnectedLayer, SoftmaxLayer
    from nn_gpu.data.mnist import one_vs_rest

    return [
        (lambda: Perceptron(2, seed=-1), "seed"),
        (lambda: Perceptron(2, seed=1.5), "seed"),
        (lambda: Perceptron(2, seed="7"), "seed"),
        (lambda: Perceptron(0), "n_inputs"),
        (lambda: ConvPoolLayer(28, (20, 1, 5, 5)), "image_shape"),
        (lambda: ConvPoolLayer((1, 28), (20, 1, 5, 5)), "image_shape"),
        (lambda: ConvPoolLayer((1, 28, 28), 5), "filter_shape"),
        (lambda: ConvPoolLayer((1, 28, 28), (20, 1, 5, "5")), "filter_shape"),
        (lambda: ConvPoolLayer((1, 28, 28), (20, 1, 29, 29)), "filter_shape"),
        (lambda: ConvPoolLayer((1, 8, 8), (20, 1, 5, 5), pool=5), "pool"),
        (lambda: ConvPoolLayer((1, 28, 28), (20, 1, 5, 5), pool=0), "pool"),
        (lambda: ConvPoolLayer((1, 28, 28), (20, 3, 5, 5)), "filter_shape"),
        (lambda: FullyConnectedLayer("3", 3), "n_in"),
        (lambda: SoftmaxLayer(3, 0), "n_out"),
        (lambda: FullyConnectedLayer(3, 3, p_dropout=1.0), "p_dropout"),
        (lambda: ConvNetwork([SoftmaxLayer(4, 2)], seed=-1), "seed"),
        (lambda: Network([4, 3, 2], seed=-2), "seed"),
        (lambda: one_vs_rest((numpy.zeros((3, 2)), numpy.arange(3)), 10), "digit"),
        (lambda: one_vs_rest((numpy.zeros((3, 2)), numpy.arange(3)), "9"), "digit"),
        (lambda: one_vs_rest((numpy.zeros((3, 2)), numpy.arange(3)), 9.0), "digit"),
        (lambda: one_vs_rest((numpy.zeros((3, 2)), numpy.arange(3)), True), "digit"),
    ]


@pytest.mark.parametrize("case", range(len(api_cases())))
def test_api_constructors_name_the_bad_parameter(case):
    from nn_gpu.errors import InvalidArgumentError

    make, name = api_cases()[case]
    with pytest.raises(InvalidArgumentError) as error:
        make()
    assert name in one_line(error.value)


def test_api_one_vs_rest_still_takes_numpy_digits():
    from nn_gpu.data.mnist import one_vs_rest

    assert one_vs_rest((None, numpy.arange(10)), numpy.int64(3))[1].tolist() == [
        0, 0, 0, 1, 0, 0, 0, 0, 0, 0]


# ---------------------------------------------------------------------------
# A layers file is read as a regular file of bounded size.
@pytest.mark.parametrize("make, problem", [
    (lambda d: "/dev/zero", "character device"),
    (lambda d: d, "directory"),
    (lambda d: (os.mkfifo(d / "fifo"), d / "fifo")[1], "FIFO"),
    (lambda d: ((d / "big.json").write_bytes(b" " * (2 << 20)), d / "big.json")[1],
     "more than any layers file"),
])
def test_msg_a_layers_file_is_a_bounded_regular_file(tmp_path, make, problem):
    from nn_gpu.errors import InvalidArgumentError
    from nn_gpu.presets.convnet import read_layers

    path = make(tmp_path)
    started = time.monotonic()
    with pytest.raises(InvalidArgumentError) as error:
        read_layers(path)
    message = one_line(error.value)
    assert message.startswith(f"{path}: ") and problem in message
    assert time.monotonic() - started < 5


# ---------------------------------------------------------------------------
# Unclear messages: a detector where a ten-digit model is needed, a conv
# model without a conv layer, divergence by λ.
@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    from nn_gpu import Network
    from nn_gpu.convnet import ConvNetwork, FullyConnectedLayer, SoftmaxLayer

    directory = tmp_path_factory.mktemp("models")
    Network([784, 6, 10], backend="numpy", seed=1).save(directory / "ten.npz")
    detector = Network([784, 6, 1], backend="numpy", seed=1)
    detector.last_training = {"digit": 9}
    detector.save(directory / "nine.npz")
    ConvNetwork([FullyConnectedLayer(784, 6), SoftmaxLayer(6, 10)], backend="numpy",
                seed=1).save(directory / "flat-conv.npz")
    return directory


@pytest.mark.usefixtures("mnist")
def test_msg_ensemble_with_digit_is_refused(model_files):
    status, out, err = run("evaluate", "--ensemble", model_files / "ten.npz",
                           model_files / "ten.npz", "--digit", "9")
    message = one_error(err, status, 2)
    assert "--digit" in message and "--ensemble" in message and out == ""


@pytest.mark.usefixtures("mnist")
@pytest.mark.parametrize("digit", [[], ["--digit", "9"]])
def test_msg_a_detector_in_an_ensemble_gets_the_right_hint(model_files, digit):
    status, out, err = run("evaluate", "--ensemble", model_files / "ten.npz",
                           model_files / "nine.npz", *digit)
    message = one_error(err, status, 2 if digit else 1)
    assert "add --digit" not in message
    if not digit:
        assert str(model_files / "nine.npz") in message and "ensemble" in message


@pytest.mark.usefixtures("mnist")
@pytest.mark.parametrize("kind", ["confusion", "misclassified"])
def test_msg_a_detector_in_plots_of_ten_digits_gets_the_right_hint(model_files,
                                                                   tmp_path, kind):
    pytest.importorskip("matplotlib")
    status, out, err = run("plot", kind, model_files / "nine.npz",
                           "-o", tmp_path / "p.png")
    message = one_error(err, status)
    assert "add --digit" not in message and "nn-gpu evaluate" in message
    assert str(model_files / "nine.npz") in message


def test_msg_plot_weights_draws_a_detectors_first_layer(model_files, tmp_path):
    pytest.importorskip("matplotlib")
    status, out, err = run("plot", "weights", model_files / "nine.npz",
                           "-o", tmp_path / "w.png", "--count", "4")
    assert status == 0, err
    assert (tmp_path / "w.png").read_bytes().startswith(b"\x89PNG")


def test_msg_plot_weights_of_a_conv_model_without_conv_layer_names_the_file(
        model_files, tmp_path):
    pytest.importorskip("matplotlib")
    status, out, err = run("plot", "weights", model_files / "flat-conv.npz",
                           "-o", tmp_path / "w.png")
    message = one_error(err, status)
    assert message.startswith(f"nn-gpu: error: {model_files / 'flat-conv.npz'}: ")
    assert "not convolutional" in message and not (tmp_path / "w.png").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("mnist")
@pytest.mark.parametrize("l2", ["1e308", "1e30"])
def test_msg_divergence_by_l2_names_l2(l2):
    status, out, err = run(*TINY_TRAIN, "--l2", l2, "--quiet")
    message = one_error(err, status)
    assert "diverged" in message and "--l2" in message and "eta = 3" in message


# ---------------------------------------------------------------------------
# Sweeps: a space file is data of bounded size; --trials is the study's total.
SPACE_YAML = "search:\n  eta: {low: 0.1, high: 1.0}\n"

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi")) \
    + "search:\n  hidden: {choices: [*i]}\n"


@pytest.mark.parametrize("text, key, problem", [
    ("fixed:\n  epochs: 2024-01-01\n" + SPACE_YAML, "fixed.epochs", '"2024-01-01"'),
    ("search:\n  eta: {low: 2024-01-01, high: 1}\n", "search.eta.low", '"2024-01-01"'),
    ("search:\n  cost: {choices: [2024-01-01 10:00:00]}\n", "search.cost.choices[0]",
     "2024-01-01T10:00:00"),
    ("fixed:\n  epochs: !!set {a, b}\n" + SPACE_YAML, "fixed.epochs", "a set is not a value"),
    ("fixed:\n  eta: !!binary aGVsbG8=\nsearch:\n  l2: {low: 0, high: 1}\n", "fixed.eta",
     "a bytes is not a value"),
    ("fixed:\n  1: 3\n" + SPACE_YAML, "fixed", "key 1 is not a name"),
    (BOMB, "the file holds more than 10,000 values", "aliases"),
    ("fixed:\n  epochs: " + "[" * 30 + "]" * 30 + "\n" + SPACE_YAML, "fixed.epochs",
     "nested more than"),
])
def test_sweep_space_values_that_are_not_plain_data_are_one_line(tmp_path, text, key,
                                                                 problem):
    pytest.importorskip("optuna")
    path = tmp_path / "space.yaml"
    path.write_text(text)
    started = time.monotonic()
    status, out, err = run("sweep", path, "--storage", tmp_path / "s.db")
    message = one_error(err, status)
    assert time.monotonic() - started < 10
    assert message.startswith(f"nn-gpu: error: {path}: ") and key in message, message
    assert problem in message and len(message) < 300


def test_sweep_a_date_where_text_is_expected_is_its_text(tmp_path):
    pytest.importorskip("yaml")
    from nn_gpu.sweep.space import load_space

    path = tmp_path / "space.yaml"
    path.write_text("name: 2024-01-01\n" + SPACE_YAML)
    assert load_space(path).name == "2024-01-01"
    toml = tmp_path / "space.toml"
    toml.write_text("name = 1979-05-27\n[search]\neta = { low = 0.1, high = 1.0 }\n")
    assert load_space(toml).name == "1979-05-27"


@pytest.fixture
def study_of():
    """An in-memory study whose trials are in the given states, as racing
    workers leave it (RUNNING: asked, not yet told)."""
    optuna = pytest.importorskip("optuna")
    from optuna.trial import TrialState

    def make(*states):
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        study = optuna.create_study(direction="maximize")
        for state in states:
            trial = study.ask()
            if state == "interrupted":
                trial.set_user_attr("interrupted", True)
                study.tell(trial, state=TrialState.FAIL)
            elif state != "running":
                study.tell(trial, 0.5 if state == "complete" else None,
                           state={"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
                                  "failed": TrialState.FAIL}[state])
        return study
    return make


def test_sweep_trials_is_the_total_whatever_the_race(study_of):
    from nn_gpu.sweep import study as sweep_study

    # Two workers asked at once for the study's last trial: numbers 3 and 4.
    study = study_of("complete", "pruned", "failed", "running", "running")
    assert not sweep_study.beyond_target(study, 3, 4)
    assert sweep_study.beyond_target(study, 4, 4)
    assert sweep_study.is_claimed(study, 4) and not sweep_study.is_done(study, 4)
    # Interrupted trials do not count (they are rerun).
    study = study_of("complete", "interrupted", "running")
    assert not sweep_study.beyond_target(study, 2, 2)
    assert not sweep_study.is_claimed(study, 3)


def test_sweep_a_surplus_trial_is_not_run_counted_or_shown(study_of, tmp_path, mnist):
    from nn_gpu.backends import get_backend
    from nn_gpu.sweep import study as sweep_study
    from nn_gpu.sweep import worker
    from nn_gpu.sweep.space import SearchSpace

    study = study_of("complete", "running")
    space = SearchSpace({"name": "s", "train_size": 100,
                         "search": {"eta": {"low": 0.1, "high": 1.0}}})
    objective = worker.Objective(space, None, get_backend("numpy"), seed=1, target=1)
    surplus = study.ask()  # the second worker's trial, beyond --trials 1
    with pytest.raises(worker.Surplus):
        objective(surplus)
    assert surplus.params == {} and surplus.user_attrs == {"surplus": True}
    study.tell(surplus, state=optuna_state("FAIL"))
    assert sweep_study.trials_done(study) == 1 and sweep_study.failed_trials(study) == set()
    assert [t.number for t in sweep_study.shown_trials(study)] == [0, 1]


def optuna_state(name):
    from optuna.trial import TrialState

    return getattr(TrialState, name)


def test_sweep_trials_help_says_it_is_the_total(monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    status, out, err = run("sweep", "--help")
    assert status == 0 and "the study's total" in " ".join(out.split())


# ---------------------------------------------------------------------------
# Reading: a detector cannot name digits; a picture too flat to hold digits
# is refused; the check's first training shows its progress; the labels of
# `--show` never overlap.
def number_png(path, size=(120, 40)):
    """A dark bar (a 1) on light paper, as a PNG."""
    from PIL import Image

    picture = numpy.full(size[::-1], 255, dtype=numpy.uint8)
    picture[size[1] // 4:3 * size[1] // 4, size[0] // 2 - 2:size[0] // 2 + 2] = 0
    Image.fromarray(picture).save(path)
    return path


@pytest.fixture
def no_check_training(monkeypatch):
    """`read` must not train the whole-digit check (minutes) in these cases."""
    from nn_gpu.cli import read

    def refuse(*args, **kwargs):
        raise AssertionError("the whole-digit check was asked for")
    monkeypatch.setattr(read, "default_check", refuse)


@pytest.mark.usefixtures("no_check_training")
def test_read_a_detector_is_refused_before_anything_is_trained(model_files, tmp_path):
    pytest.importorskip("PIL")
    status, out, err = run("read", model_files / "nine.npz",
                           number_png(tmp_path / "n.png"))
    message = one_error(err, status)
    assert message.startswith(f"nn-gpu: error: {model_files / 'nine.npz'}: ")
    assert "one output neuron" in message and "all 10 digits" in message and out == ""


def test_read_number_refuses_a_detector(tmp_path):
    pytest.importorskip("PIL")
    from nn_gpu import Network
    from nn_gpu.errors import InvalidArgumentError
    from nn_gpu.reading.reader import read_number

    with pytest.raises(InvalidArgumentError, match="one output neuron"):
        read_number(Network([784, 5, 1], backend="numpy", seed=0), number_png(tmp_path / "n.png"))


@pytest.mark.parametrize("size, problem", [
    ((20000, 40), "too flat"), ((40, 30000), "too narrow"), ((30000, 200), "too flat"),
    ((8, 8), "too small"),
])
def test_read_a_picture_too_flat_for_digits_is_refused(tmp_path, size, problem):
    pytest.importorskip("PIL")
    from nn_gpu import Network
    from nn_gpu.reading.images import ImageError
    from nn_gpu.reading.reader import read_number

    path = number_png(tmp_path / "flat.png", size)
    with pytest.raises(ImageError) as error:
        read_number(Network([784, 5, 10], backend="numpy", seed=0), path)
    message = one_line(error.value)
    assert message.startswith(f"{path}: {size[0]}x{size[1]} pixels") and problem in message
    array = numpy.ones(size[::-1])
    array[:, ::7] = 0.0
    with pytest.raises(ImageError, match=problem):
        read_number(Network([784, 5, 10], backend="numpy", seed=0), array)


@pytest.mark.usefixtures("no_check_training")
def test_read_cli_refuses_a_flat_picture_in_one_line(model_files, tmp_path):
    pytest.importorskip("PIL")
    path = number_png(tmp_path / "flat.png", (20000, 40))
    status, out, err = run("read", model_files / "ten.npz", path, "--no-check")
    assert "too flat" in one_error(err, status) and out == ""


class Bars:
    """Records the progress bars asked for."""

    def __init__(self):
        self.made = []

    def __call__(self, description, total, unit):
        bar = SimpleNamespace(description=description, total=total, unit=unit, done=0,
                              closed=False)
        bar.update = lambda n: setattr(bar, "done", bar.done + n)
        bar.close = lambda: setattr(bar, "closed", True)
        self.made.append(bar)
        return bar


@pytest.mark.slow
def test_read_the_checks_training_shows_its_progress(mnist):
    pytest.importorskip("PIL")
    from nn_gpu.reading import whole_digit

    bars = Bars()
    whole_digit.train_whole_digit_check(mnist[0], count=3, progress=bars)
    cutting, training = bars.made
    assert (cutting.total, cutting.done, cutting.closed) == (3, 3, True)
    assert "cutting" in cutting.description and "training" in training.description
    assert training.total == training.done > 0 and training.total % whole_digit.EPOCHS == 0
    assert training.closed


@pytest.mark.parametrize("terminal", [True, False])
def test_read_cli_draws_bars_on_a_terminal_and_says_how_long(model_files, tmp_path,
                                                             monkeypatch, terminal):
    pytest.importorskip("PIL")
    from nn_gpu.cli import read
    from nn_gpu.cli.common import terminal_bar
    from nn_gpu.reading import whole_digit

    asked = {}

    def check(data_dir, say, progress):
        asked["progress"] = progress
        say(f"training the whole-digit check ... ({whole_digit.TRAINING_TIME})")
        return None
    monkeypatch.setattr(read, "default_check", check)
    status, out, err = run("read", model_files / "ten.npz", number_png(tmp_path / "n.png"),
                           terminal=terminal)
    assert status == 0, err
    assert asked["progress"] is (terminal_bar if terminal else None)
    assert "minutes" in whole_digit.TRAINING_TIME


def test_read_the_check_is_announced_with_an_estimate(mnist, tmp_path, monkeypatch):
    from nn_gpu.reading import whole_digit

    said = []
    monkeypatch.setattr(whole_digit, "train_whole_digit_check",
                        lambda training, progress=None: whole_digit.Network([1568, 2, 1],
                                                                            backend="numpy"))
    whole_digit.whole_digit_check(mnist[0], cache_dir=tmp_path, say=said.append)
    assert said and "minutes" in said[0] and str(tmp_path) in said[0]


def test_read_labels_of_narrow_boxes_never_overlap(tmp_path):
    pytest.importorskip("matplotlib")
    import itertools

    from nn_gpu.reading.reader import Reading, draw_reading

    grey = numpy.ones((60, 240))
    boxes = [(20, 10, 24, 50), (26, 10, 30, 50), (32, 10, 36, 50), (38, 10, 42, 50),
             (100, 10, 140, 50), (150, 12, 156, 48)]
    for x0, y0, x1, y1 in boxes:
        grey[y0:y1, x0:x1] = 0.0
    reading = Reading("111101", (0.99, 0.98, 0.97, 0.96, 0.5, 0.9), tuple(boxes))
    fig = draw_reading(grey, reading, tmp_path / "read.png")
    assert (tmp_path / "read.png").read_bytes().startswith(b"\x89PNG")
    renderer = fig.canvas.get_renderer()
    labels = [text.get_window_extent(renderer) for text in fig.axes[0].texts]
    assert len(labels) == 6
    for a, b in itertools.combinations(labels, 2):
        assert not a.overlaps(b), (a, b)
    title = fig.axes[0].title.get_window_extent(renderer)
    assert not any(title.overlaps(label) for label in labels)


def test_read_label_levels_stack_only_what_overlaps():
    from nn_gpu.reading.reader import label_levels

    assert label_levels([(0, 10), (5, 15), (12, 20), (30, 40), (8, 9)]) == [0, 1, 0, 0, 2]
    assert label_levels([(0, 10), (10, 20), (20, 30)]) == [0, 0, 0]
    assert label_levels([]) == []


# ---------------------------------------------------------------------------
# From Python, sgd's progress is a callback away, and the README shows it.
def test_opt_the_readme_shows_how_to_watch_sgd_from_python(capsys):
    import re

    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    (shown,) = re.findall(r"net\.sgd\([^`]*?callback=(lambda [^\n]*)\)\n", readme)
    from nn_gpu import Network

    rng = numpy.random.default_rng(0)
    training = (rng.random((40, 4)), rng.integers(0, 2, 40))
    validation = (rng.random((10, 4)), rng.integers(0, 2, 10))
    Network([4, 3, 2], backend="numpy", seed=0).sgd(training, 3, 10, 0.5,
                                                     validation_data=validation,
                                                     callback=eval(shown))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["1", "2", "3"]
