"""`nn-gpu serve`'s JSON API and its answers to hostile requests.

The API's reading is checked against `nn-gpu read --json` (and the single
digit's against `nn-gpu predict`) on the same image, with a small network
and whole-digit check trained here (conftest.py). Hostile requests go
through raw sockets where an HTTP client would tidy them; after each the
server must still read. The command itself runs as a process: its URL line,
a model file removed while it serves, nothing written to disk, Ctrl-C.
(The page in a real browser: tests/test_serve_browser.py.)
"""

import base64
import http.client
import io
import json
import re
import select
import signal
import socket
import threading
import time
import zlib
from importlib import resources
from pathlib import Path

import numpy
import pytest

Image = pytest.importorskip("PIL.Image",
                            reason="Pillow is not installed: pip install 'nn_gpu[image]'")

from nn_gpu.data.composed import GAPS, compose_number  # noqa: E402
from nn_gpu.serve import Reader, Server  # noqa: E402
from nn_gpu.serve.server import ASSETS  # noqa: E402

from conftest import mnist_dir, run  # noqa: E402
from serving import confident_digits, serve_command, stop  # noqa: E402

LIMIT = 2 ** 20  # the test server's body limit (the command's is 10 MiB)


# ------------------------------------------------------------------ helpers
def png(picture):
    """Greys in [0, 1] (0 black) as PNG bytes."""
    out = io.BytesIO()
    Image.fromarray(numpy.uint8(numpy.round(numpy.asarray(picture) * 255))).save(out, "PNG")
    return out.getvalue()


def call(port, method, path, body=None, headers=None, host="127.0.0.1"):
    """(status, parsed JSON or bytes, headers) of one request."""
    connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    kind = response.getheader("Content-Type", "")
    return response.status, json.loads(data) if kind == "application/json" else data, response


def raw(port, data, pause=None):
    """The bytes a raw request ``data`` gets back (``pause``: send it a
    byte at a time, that many seconds apart); an HTTP client would tidy it."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        if pause is None:
            conn.sendall(data)
        else:
            for byte in data:
                if select.select([conn], [], [], 0)[0]:
                    break  # the server has answered (given up on us): read it
                conn.sendall(bytes([byte]))
                time.sleep(pause)
        chunks = []
        try:
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:  # after its answer, for what it did not read
            pass
    return b"".join(chunks)


def answer(data):
    """(status, JSON body) of a raw HTTP response."""
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def post(port, body, path="/api/read?file=number.png", kind="image/png"):
    return call(port, "POST", path, body, {"Content-Type": kind})


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def known(mnist, trained_model):
    """Test digits the small network reads right on their own, confidently."""
    return confident_digits(trained_model[0], mnist[2], 2000, 0.9)


@pytest.fixture(scope="module")
def number(known):
    """(PNG bytes, truth) of a four-digit number of known digits."""
    rng = numpy.random.default_rng(7)
    rows = rng.choice(len(known[0]), size=4, replace=False)
    picture, _ = compose_number(known[0][rows], rng, GAPS)
    return png(picture), "".join(str(d) for d in known[1][rows])


@pytest.fixture(scope="module")
def server(trained_model, reading_check):
    """The API on a free loopback port, in this process, with short
    timeouts, at most 6 clients and a 1 MiB body limit; ``said`` collects
    what it logs."""
    said = []
    reader = Reader(trained_model[0], reading_check[0], "model.npz")
    running = Server("127.0.0.1", 0, reader, max_clients=6, timeout=0.5, deadline=2.0,
                     max_body=LIMIT, say=said.append)
    running.said = said
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


@pytest.fixture
def port(server, number):
    """The test server's port; after the test, it must still read, having
    logged nothing."""
    yield server.server_port
    status, found, _ = post(server.server_port, number[0])
    assert status == 200 and found["digits"] == number[1]
    assert server.said == []


@pytest.fixture
def check_cache(reading_check, monkeypatch):
    """`nn-gpu read` finds MNIST and the small check already trained."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(reading_check[1]))
    monkeypatch.setenv("NN_GPU_DATA", str(mnist_dir()))


# ----------------------------------------------------------------- the API
@pytest.mark.slow
def test_api_answers_what_read_json_prints(port, number, trained_model, tmp_path, check_cache,
                                           monkeypatch):
    (tmp_path / "number.png").write_bytes(number[0])
    monkeypatch.chdir(tmp_path)
    status, out, err = run("read", trained_model[1], "number.png", "--json")
    assert status == 0 and err == ""
    printed = json.loads(out)
    assert printed["digits"] == number[1]

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("POST", "/api/read?file=number.png", number[0],
                       {"Content-Type": "image/png"})
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Content-Type") == "application/json"
    assert response.read().decode() == out  # the very same line
    connection.close()

    data_url = "data:image/png;base64," + base64.b64encode(number[0]).decode()
    for body in ({"image": data_url}, {"image": base64.b64encode(number[0]).decode()}):
        status, found, _ = post(port, json.dumps(body).encode(), kind="application/json")
        assert status == 200 and found == printed
    status, found, _ = post(port, number[0], "/api/read")
    assert status == 200 and found == {**printed, "file": "image"}

    status, found, _ = post(port, number[0], "/api/read?file=number.png&views=1")
    views = found.pop("views")
    assert status == 200 and found == printed
    assert len(views) == len(printed["digits"])
    assert all(len(view) == 784 and min(view) == 0 and max(view) > 200 for view in views)


def test_api_reads_with_a_conv_model(reading_conv_model, number, tmp_path, reading_check,
                                     check_cache, monkeypatch):
    """A ConvNetwork serves as a Network does (the Reader is what the server calls)."""
    net, path = reading_conv_model
    (tmp_path / "number.png").write_bytes(number[0])
    monkeypatch.chdir(tmp_path)
    status, out, _ = run("read", path, "number.png", "--json")
    reader = Reader(net, reading_check[0], "conv.npz")
    assert status == 0 and reader.read(number[0], "number.png") + "\n" == out
    assert reader.about() == {"model": "conv.npz", "sizes": [784, 864, 10],
                              "kind": "convolutional", "check": True}


def test_api_digit_answers_as_predict(port, known, trained_model, tmp_path, monkeypatch):
    (tmp_path / "digit.png").write_bytes(png(1 - known[0][3].reshape(28, 28)))  # dark on light
    monkeypatch.chdir(tmp_path)
    status, out, _ = run("predict", trained_model[1], "digit.png")
    assert status == 0
    label, chances = re.match(r"digit\.png: (\d) \([\d.]+\)  (.*)$", out.strip()).groups()
    printed = [float(pair.split(":")[1]) for pair in chances.split()]

    status, found, _ = post(port, (tmp_path / "digit.png").read_bytes(),
                            "/api/digit?file=digit.png")
    assert status == 200 and found["file"] == "digit.png"
    assert found["digit"] == int(label) == known[1][3]
    assert found["probabilities"] == printed
    activations = numpy.array(found["activations"])
    assert len(activations) == 10 and numpy.argmax(activations) == found["digit"]
    assert numpy.allclose(activations / activations.sum(), printed, atol=2e-4)
    from nn_gpu.reading.images import to_mnist
    expected = numpy.round(to_mnist(tmp_path / "digit.png") * 255)
    assert found["input"] == expected.astype(int).tolist()


def test_the_page_and_its_files(port):
    status, about, _ = call(port, "GET", "/api/model")
    assert status == 200
    assert about == {"model": "model.npz", "sizes": [784, 60, 10], "kind": "fully connected",
                     "check": True}
    folder = resources.files("nn_gpu.serve") / "assets"
    for path, (name, kind) in ASSETS.items():
        status, body, response = call(port, "GET", path)
        assert status == 200 and body == (folder / name).read_bytes()
        assert response.getheader("Content-Type") == kind
    page = call(port, "GET", "/")[2]
    assert "default-src 'none'" in page.getheader("Content-Security-Policy")
    assert page.getheader("X-Content-Type-Options") == "nosniff"
    status, body, _ = call(port, "HEAD", "/app.js")
    assert status == 200 and body == b""


def test_the_page_needs_nothing_from_elsewhere():
    """Offline: no URL in the page's files leads off the server."""
    folder = resources.files("nn_gpu.serve") / "assets"
    for name, _ in set(ASSETS.values()):
        text = (folder / name).read_text()
        addresses = re.findall(r"(?:https?:)?//[\w.-]+\.\w+", text)
        assert addresses in ([], ["http://www.w3.org"]), (name, addresses)
        assert "@import" not in text and "cdn" not in text.lower()


# ------------------------------------------------------------ hostile paths
SECRET = b"root:"  # /etc/passwd's first line; the package's own code holds "import"
TRAVERSALS = [
    "/../etc/passwd", "/../../../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/..%2f..%2fetc%2fpasswd", "/..%252f..%252fetc%252fpasswd",
    "/%c0%ae%c0%ae/etc/passwd", "/assets/../server.py", "/app.js/../../server.py",
    "/../server.py", "/..%5c..%5cserver.py", "/..\\..\\server.py", "//etc/passwd",
    "/%2fetc%2fpasswd", "/assets/app.js", "/app.js%00.html", "/server.py", "/reader.py",
    "/__init__.py", "/api/../../../etc/passwd", "/./app.js/..", "/etc/passwd",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_nothing_outside_the_assets_is_served(port, path):
    data = raw(port, f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode("latin-1"))
    status, found = answer(data)
    assert status == 404 and "no such page" in found["error"]
    assert SECRET not in data and b"import" not in data


def test_unknown_api_paths_and_methods(port):
    cases = [("POST", "/api/nothing", 404, "no such API"), ("POST", "/../api/read", 404, "no such"),
             ("GET", "/api/read", 405, "POST it"), ("POST", "/", 405, "only read"),
             ("PUT", "/api/read", 501, "Unsupported method"),
             ("DELETE", "/app.js", 501, "Unsupported method"),
             ("GET", "/?x=1", 400, "unknown parameter")]
    for method, path, status, message in cases:
        found = answer(raw(port, f"{method} {path} HTTP/1.0\r\nContent-Length: 0\r\n\r\n"
                                 .encode()))
        assert found[0] == status and message in found[1]["error"], (method, path, found)


@pytest.mark.parametrize("request_bytes, status, message", [
    (b"HELLO\r\n\r\n", 400, "Bad request"),
    (b"GET / HTTP/7.0\r\n\r\n", 505, "version"),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.0\r\n\r\n", 414, "URI Too Long"),
    (b"GET / HTTP/1.0\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431, "Line too long"),
    (b"GET / HTTP/1.0\r\n" + b"X: y\r\n" * 200 + b"\r\n", 431, "Too many headers"),
])
def test_garbage_requests_get_json_errors(port, request_bytes, status, message):
    found = answer(raw(port, request_bytes))
    assert found[0] == status and message in found[1]["error"]


def test_a_page_elsewhere_cannot_reach_it_by_dns_rebinding(port):
    for host, status in ((f"127.0.0.1:{port}", 200), (f"localhost:{port}", 200),
                         ("localhost", 200), (f"evil.example:{port}", 421),
                         ("127.0.0.1.evil.example", 421)):
        found = raw(port, f"GET /api/model HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        assert answer(found)[0] == status, host


# ------------------------------------------------------------ hostile bodies
def bomb():
    """A valid PNG of 12,000 x 12,000 white pixels (144 million: more than
    Pillow's limit) in a few kilobytes."""
    width = height = 12000
    row = b"\x00" + b"\xff" * (width // 8)  # filter byte, then 1-bit pixels
    pixels = zlib.compress(row * height, 9)

    def chunk(kind, data):
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


def dots():
    """A page of 2,900 dots: no number, and too many candidate pieces to hold."""
    rng = numpy.random.default_rng(0)
    return png(numpy.where(rng.random((300, 1024)) < 0.02, 0.0, 1.0))


def wave():
    """One stroke waving up and down across 1,024 pixels every 12: few
    strokes, but too many places to cut them."""
    from PIL import ImageDraw

    picture = Image.new("L", (1024, 1000), 255)
    x = numpy.arange(1024)
    ImageDraw.Draw(picture).line(list(zip(x.tolist(), (500 + 300 * numpy.sin(
        2 * numpy.pi * x / 12)).tolist())), fill=0, width=3)
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


BODIES = {
    "empty body": (b"", "image/png", 400, "has no body"),
    "not an image": (b"a shopping list", "image/png", 422, "not an image file Pillow can read"),
    "a truncated PNG": (None, "image/png", 422, "damaged image"),
    "a blank page": (png(numpy.ones((100, 300))), "image/png", 422, "no number found"),
    "a decompression bomb": (bomb(), "image/png", 422, "too large"),
    "a page of dots": (dots(), "image/png", 422, "2,934 separate strokes, too many"),
    "a tight wave": (wave(), "image/png", 422, "too many strokes too close together"),
    "malformed JSON": (b'{"image": "iVBOR', "application/json", 400, "not valid JSON"),
    "JSON not an object": (b'["iVBOR"]', "application/json", 400, 'key "image"'),
    "JSON without image": (b'{"picture": "iVBOR"}', "application/json", 400, 'key "image"'),
    "JSON image not text": (b'{"image": 12}', "application/json", 400, 'key "image"'),
    "bad base64": (b'{"image": "not base64!"}', "application/json", 400, "not valid base64"),
    "data URL not base64": (b'{"image": "data:image/png,abc"}', "application/json", 400,
                            "without"),
    "JSON nested deep": (b"[" * 100000 + b"]" * 100000, "application/json", 400,
                         "not valid JSON"),
    "JSON not UTF-8": (b'{"image": "\xff\xfe"}', "application/json", 400, "not valid JSON"),
}


@pytest.mark.parametrize("case", BODIES)
def test_bad_bodies_get_one_clear_error(port, number, case):
    body, kind, status, message = BODIES[case]
    if body is None:
        body = number[0][:len(number[0]) // 2]
    found = post(port, body, "/api/read?file=upload.png", kind)
    assert found[0] == status and message in found[1]["error"], found[:2]
    if status == 422:
        assert found[1]["error"].startswith("upload.png: ")
    if "strokes" not in message:  # (a single digit is never cut: dots are a digit's ink)
        assert post(port, body, "/api/digit?file=upload.png", kind)[0] == status


@pytest.mark.parametrize("query, message", [
    ("file=a&file=b", "given 2 times"), ("size=3", "unknown parameter 'size'"),
    ("views=maybe", "views= must be 1 or 0"), ("file=" + "x" * 300, "1 to 255 printable"),
    ("file=a%0Ab", "printable"), ("file", "malformed query"), ("a=1&b=2&c=3&d=4", "malformed"),
])
def test_bad_parameters(port, number, query, message):
    status, found, _ = post(port, number[0], f"/api/read?{query}")
    assert status == 400 and message in found["error"]


def test_bodies_over_the_limit_are_refused_unread(port):
    head = f"POST /api/read HTTP/1.0\r\nContent-Type: image/png\r\nContent-Length: {LIMIT + 1}"
    status, found = answer(raw(port, (head + "\r\n\r\n").encode()))
    assert status == 413 and f"more than the {LIMIT:,}" in found["error"]
    status, found, _ = post(port, b"\x89PNG" + bytes(2 * LIMIT))  # really sent
    assert status == 413
    status, found, _ = post(port, b"x" * 10, "/api/read", "image/png")
    assert status == 422


@pytest.mark.parametrize("headers, status, message", [
    ("", 411, "Content-Length"),
    ("Transfer-Encoding: chunked\r\n", 411, "chunked"),
    ("Content-Length: lots\r\n", 400, "not a number"),
    ("Content-Length: -5\r\n", 400, "not a number"),
    ("Content-Length: 100\r\n", 400, "ended after 5 of its 100 bytes"),
])
def test_bodies_without_a_true_length(port, headers, status, message):
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        conn.sendall(f"POST /api/read HTTP/1.0\r\n{headers}\r\nhello".encode())
        conn.shutdown(socket.SHUT_WR)  # and no more
        data = b"".join(iter(lambda: conn.recv(65536), b""))
    found = answer(data)
    assert found[0] == status and message in found[1]["error"]


# ---------------------------------------------------------- slow and many
@pytest.mark.slow
def test_slow_clients_time_out_while_others_are_served(port, number):
    """A silent client and one sending a byte every 0.3 s (each within the
    0.5 s timeout, past the 2 s deadline) get 408; the server reads on."""
    results = {}

    def silent():
        results["silent"] = raw(port, b"")

    def trickle():
        results["trickle"] = raw(port, b"GET /api/model HTTP/1.0\r\n" + b"X: y\r\n" * 10,
                                 pause=0.3)

    threads = [threading.Thread(target=silent), threading.Thread(target=trickle)]
    for thread in threads:
        thread.start()
    status, found, _ = post(port, number[0])
    assert status == 200 and found["digits"] == number[1]
    for thread in threads:
        thread.join(60)
    for name in ("silent", "trickle"):
        status, found = answer(results[name])
        assert status == 408 and "too slowly" in found["error"]


@pytest.mark.slow
def test_many_clients_at_once(trained_model, number):
    """Beyond 3 connections at once, the next are told 503 straight away;
    readings run side by side answer the same; then it serves on."""
    said = []
    crowded = Server("127.0.0.1", 0, Reader(trained_model[0], None), max_clients=3,
                     timeout=10, say=said.append)
    threading.Thread(target=crowded.serve_forever, daemon=True).start()
    port = crowded.server_port
    try:
        expected = post(port, number[0])[1]
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        try:
            assert answer(raw(port, b"GET / HTTP/1.0\r\n\r\n"))[0] == 503
            busy = [post(port, number[0]) for _ in range(3)]
        finally:
            for conn in held:
                conn.close()
        assert all(status == 503 and "busy" in found["error"] for status, found, _ in busy)
        answers = []

        def client():
            for _ in range(3):
                answers.append(post(port, number[0])[:2])
        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert len(answers) == 24
        served = [found for status, found in answers if status == 200]
        assert served and all(found == expected for found in served)
        assert all(status == 503 for status, _ in answers if status != 200)
        for _ in range(100):  # the last clients' threads finish
            if post(port, number[0])[0] == 200:
                break
            time.sleep(0.1)
        else:
            pytest.fail("still busy after every client left")
        assert said == []
    finally:
        crowded.shutdown()
        crowded.server_close()


def test_an_error_inside_is_one_line_and_the_server_goes_on(server, number, monkeypatch):
    def broken(*args):
        raise RuntimeError("a bug\nover two lines")
    monkeypatch.setattr(server.reader, "read", broken)
    status, found, _ = post(server.server_port, number[0])
    assert status == 500 and "RuntimeError" in found["error"]
    assert server.said == ["error answering POST /api/read?file=number.png: RuntimeError: "
                           "a bug over two lines"]
    server.said.clear()
    monkeypatch.undo()
    assert post(server.server_port, number[0])[0] == 200


# -------------------------------------------------------------- the command
def start(model, cwd, cache_home, *extra):
    """:func:`serving.serve_command`, failing where it printed no URL: (process, port)."""
    process, port, line = serve_command(model, cwd, cache_home, *extra)
    if port is None:
        process.kill()
        pytest.fail(f"no URL line: {line!r}; stderr: {process.communicate()[1]}")
    return process, port


@pytest.mark.slow
def test_the_command_serves_until_ctrl_c_and_writes_nothing(trained_model, reading_check,
                                                             number, tmp_path):
    """The model is read once: removed, then replaced by garbage, while
    serving, it changes nothing. Nothing is written in the working or
    temporary directory, or the cache."""
    work = tmp_path / "work"
    work.mkdir()
    model = tmp_path / "copy.npz"
    model.write_bytes(Path(trained_model[1]).read_bytes())
    cache = sorted(p.name for p in (reading_check[1] / "nn_gpu").iterdir())
    process, port = start(model, work, reading_check[1])
    try:
        first = post(port, number[0])
        assert first[0] == 200 and first[1]["digits"] == number[1]
        model.unlink()
        assert post(port, number[0])[:2] == first[:2]
        model.write_bytes(b"not a model any more")
        assert post(port, number[0])[:2] == first[:2]
        assert post(port, b"junk")[0] == 422 and post(port, bomb())[0] == 422
        assert answer(raw(port, b"GET /../etc/passwd HTTP/1.0\r\n\r\n"))[0] == 404
        assert post(port, number[0])[:2] == first[:2]
    finally:
        out, err = stop(process, signal.SIGINT)
    assert process.returncode == 0 and out == ""
    assert err == "nn-gpu serve: stopped\n"  # and no traceback
    assert list(work.iterdir()) == []
    assert sorted(p.name for p in (reading_check[1] / "nn_gpu").iterdir()) == cache


@pytest.mark.parametrize("case, status, message", [
    ("port out of range", 2, "expected a port 0-65535"),
    ("missing model", 1, "model file not found"),
    ("wrong model", 1, "do not fit digit images"),
    ("port taken", 1, "another program listens there"),
    ("no such host", 1, "not an address of this machine"),
])
def test_command_errors_are_one_line(trained_model, tmp_path, monkeypatch, case, status,
                                     message):
    from nn_gpu import Network

    argv = ["serve", str(trained_model[1]), "--no-check", "--port", "0"]
    taken = None
    if case == "port out of range":
        argv[-1] = "70000"
    elif case == "missing model":
        argv[1] = str(tmp_path / "nope.npz")
    elif case == "wrong model":
        Network([784, 5, 3], backend="numpy").save(tmp_path / "other.npz")
        argv[1] = str(tmp_path / "other.npz")
    elif case == "port taken":
        taken = socket.create_server(("127.0.0.1", 0))
        argv[-1] = str(taken.getsockname()[1])
    else:
        argv += ["--host", "no-such-host.invalid"]
    try:
        monkeypatch.chdir(tmp_path)
        found, out, err = run(*argv)
    finally:
        if taken is not None:
            taken.close()
    assert found == status and out == ""
    assert err.count("\n") == 1 and message in err, err
