"""The HTTP server of ``nn-gpu serve``: the page and the JSON API.

Built on the standard library's :mod:`http.server` (a thread per
connection), with what a server open to any local program needs:

- only the page's own files are served, from a fixed table read out of the
  package when the server starts (:data:`ASSETS`): a path is looked up in it,
  never joined to a directory, so ``..`` in any spelling finds nothing;
- a request body over :data:`MAX_BODY` bytes, one without a Content-Length,
  a malformed JSON, a non-image or a decompression bomb, an unknown path or
  parameter each get one JSON error ``{"error": "..."}`` with its status;
- every read from a client times out (:data:`TIMEOUT` seconds of silence,
  :data:`DEADLINE` for the whole request), so a slow client holds a thread
  for a bounded time; beyond :data:`MAX_CLIENTS` connections at once the next
  ones are answered 503 (busy) straight away;
- when it listens on loopback, a request whose Host header names another
  machine is refused (a web page elsewhere cannot reach it by DNS rebinding);
- one connection per request (HTTP/1.0), nothing written to disk, and an
  error in one request is one line on stderr, never the end of the server.

The API is described in docs/serve.md.
"""

import base64
import binascii
import errno
import io
import ipaddress
import json
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from ..errors import NNGpuError
from ..reading.images import ImageError

MAX_BODY = 10 * 2 ** 20  # bytes of a request body: a phone's photo, base64-encoded too
MAX_CLIENTS = 32          # connections served at once; more are answered 503
TIMEOUT = 10.0            # seconds a client may stay silent while sending its request
DEADLINE = 60.0           # seconds a client may take to send its whole request
MAX_NAME = 255            # characters of the ?file= name an answer carries
DRAIN = 64 * 2 ** 20      # bytes of a refused body read (and dropped) after the answer

#: URL path -> (asset file, content type): everything the server ever sends
#: that is not JSON.
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
#: The page's scripts, styles, images and requests come from the server
#: itself; its digits are drawn on canvases (no inline code runs).
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' "
               "data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
               "frame-ancestors 'none'")
LOOPBACK_NAMES = {"localhost", "localhost.", "ip6-localhost"}


class ServeError(NNGpuError):
    """The server cannot start (no address to listen on, the page's files missing)."""


class RequestError(Exception):
    """A request answered with an error: its HTTP status and message, and
    how many bytes of its body to read (and drop) after answering."""

    def __init__(self, status, message, unread=0):
        super().__init__(message)
        self.status, self.unread = status, unread


def load_assets():
    """{URL path: (bytes, content type)} of :data:`ASSETS`, read from the
    installed package once."""
    folder = resources.files(__package__) / "assets"
    try:
        files = {name: (folder / name).read_bytes() for name, _ in set(ASSETS.values())}
    except OSError as exc:
        raise ServeError(f"the page's files are missing from the installed package "
                         f"({exc.filename or folder}); reinstall nn_gpu") from None
    return {path: (files[name], kind) for path, (name, kind) in ASSETS.items()}


# ------------------------------------------------------------------ the body
def image_bytes(body, content_type):
    """The image in a request body: the body itself, or, for
    ``application/json``, the base64 (or ``data:`` URL) of its "image" key."""
    if not body:
        raise RequestError(400, "the request has no body: send an image (PNG, JPEG...) or "
                                'a JSON object {"image": "<base64 or data: URL>"}')
    if content_type.split(";")[0].strip().lower() != "application/json":
        return body
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise RequestError(400, f"the body is not valid JSON ({exc})") from None
    image = document.get("image") if isinstance(document, dict) else None
    if not isinstance(image, str):
        raise RequestError(400, 'a JSON body must be an object with the key "image": '
                                "the image's bytes in base64, or a data: URL")
    if image.startswith("data:"):
        header, _, image = image.partition(",")
        if not header.endswith(";base64"):
            raise RequestError(400, '"image" is a data: URL without ";base64"')
    try:
        return base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, '"image" is not valid base64') from None


def query_options(query, allowed):
    """{name: value} of the URL's query, each name one of ``allowed`` and given once."""
    try:
        pairs = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query),
                         max_num_fields=len(allowed) + 1)
    except ValueError:
        raise RequestError(400, f"malformed query string: {query[:80]!r}") from None
    for key, values in pairs.items():
        if key not in allowed:
            raise RequestError(400, f"unknown parameter {key[:40]!r}; known: "
                                    f"{', '.join(sorted(allowed))}")
        if len(values) > 1:
            raise RequestError(400, f"parameter {key!r} is given {len(values)} times")
    return {key: values[0] for key, values in pairs.items()}


def file_name(options):
    """The ``file`` parameter: the name the answer gives the image (default "image")."""
    name = options.get("file", "image")
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise RequestError(400, f"file= must be 1 to {MAX_NAME} printable characters")
    return name


def flag(options, key):
    value = options.get(key, "0").lower()
    if value not in ("0", "1", "true", "false"):
        raise RequestError(400, f"{key}= must be 1 or 0, got {value[:20]!r}")
    return value in ("1", "true")


# -------------------------------------------------------------- the requests
class DeadlineSocket(io.RawIOBase):
    """A connection's input, whose every receive fails with ``TimeoutError``
    after ``timeout`` seconds of silence or once the ``deadline``
    (time.monotonic) has passed, however the bytes trickle in;
    ``timed_out`` says it happened."""

    def __init__(self, connection, timeout, deadline):
        super().__init__()
        self.connection, self.timeout, self.deadline = connection, timeout, deadline
        self.timed_out = False

    def readable(self):
        return True

    def readinto(self, buffer):
        left = self.deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError("the request took too long")
            self.connection.settimeout(min(self.timeout, left))
            return self.connection.recv_into(buffer)
        except TimeoutError:
            self.timed_out = True
            raise


class Handler(BaseHTTPRequestHandler):
    """One request: a page file (GET), the model's description (GET
    /api/model), or a reading (POST /api/read, /api/digit)."""

    server_version = "nn-gpu-serve"
    sys_version = ""
    protocol_version = "HTTP/1.0"
    default_request_version = "HTTP/1.0"  # a garbled request line is answered with headers

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        self.answered = False
        self.command, self.requestline = "", ""  # (until a request line comes)
        self.request_version = self.default_request_version
        self.rfile.close()  # read through the deadline instead:
        self.source = DeadlineSocket(self.connection, self.server.timeout_s,
                                     time.monotonic() + self.server.deadline_s)
        self.rfile = io.BufferedReader(self.source)

    def handle(self):
        super().handle()
        if self.source.timed_out and not self.answered:  # http.server drops it silently
            self.send_json(408, {"error": "the request came too slowly; send it at once"})

    # --------------------------------------------------------- answering
    def send_json(self, status, document):
        self.send_body(status, (json.dumps(document) + "\n").encode(), "application/json")

    def send_body(self, status, body, content_type, headers=()):
        self.answered = True
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:  # the client is gone (or stopped reading): nothing to tell it
            self.close_connection = True

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (bad request line, header too long,
        unknown method) as JSON, like every other error."""
        reason = message or self.responses.get(code, ("error",))[0]
        self.send_json(code, {"error": f"{reason} ({code})"})

    def log_request(self, code="-", size="-"):
        """No line per request: errors inside are logged (:meth:`answer`)."""

    def log_error(self, format, *args):  # noqa: A002 - http.server's signature
        """Nor per refused request: the client is told."""

    # ---------------------------------------------------------- routing
    def do_GET(self):
        self.answer(self.get)

    def do_HEAD(self):
        self.answer(self.get)

    def do_POST(self):
        self.answer(self.post)

    def answer(self, route):
        try:
            self.check_host()
            route(urlsplit(self.path))
        except RequestError as exc:
            self.send_json(exc.status, {"error": str(exc)})
            self.discard(exc.unread)
        except TimeoutError:
            raise  # http.server closes the connection; handle() answers 408
        except MemoryError:
            self.send_json(503, {"error": "out of memory; try a smaller image"})
        except Exception as exc:  # noqa: BLE001 - one request's bug never ends the server
            self.server.say(f"error answering {self.command} {self.path[:80]}: "
                            f"{type(exc).__name__}: {' '.join(str(exc).split())}")
            self.send_json(500, {"error": f"internal error ({type(exc).__name__}); the "
                                          "server goes on"})

    def check_host(self):
        """Refuse a Host header naming another machine while listening on loopback."""
        host = self.headers.get("Host")
        if host is None or self.server.allowed_hosts is None:
            return
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name.strip("[]").lower() not in self.server.allowed_hosts:
            raise RequestError(421, f"this server answers to {self.server.url} only, not "
                                    f"Host {host[:80]!r}")

    def get(self, url):
        if url.path in self.server.assets:
            query_options(url.query, ())
            body, kind = self.server.assets[url.path]
            headers = [("Content-Security-Policy", PAGE_POLICY)] if kind.startswith(
                "text/html") else []
            self.send_body(200, body, kind, headers)
        elif url.path == "/api/model":
            query_options(url.query, ())
            self.send_json(200, self.server.reader.about())
        elif url.path in ("/api/read", "/api/digit"):
            raise RequestError(405, f"{url.path} reads an image: POST it (see docs/serve.md)")
        else:
            raise RequestError(404, f"no such page: {url.path[:80]!r}; the page is at /")

    def post(self, url):
        if url.path == "/api/read":
            options = query_options(url.query, ("file", "views"))
            name, views = file_name(options), flag(options, "views")
            body = self.body()
            answer = self.reading(lambda: self.server.reader.read(body, name, views))
            self.send_body(200, (answer + "\n").encode(), "application/json")
        elif url.path == "/api/digit":
            name = file_name(query_options(url.query, ("file",)))
            body = self.body()
            self.send_json(200, self.reading(lambda: self.server.reader.digit(body, name)))
        elif url.path in self.server.assets or url.path == "/api/model":
            raise RequestError(405, f"{url.path} is only read (GET)")
        else:
            raise RequestError(404, f"no such API: {url.path[:80]!r}; POST images to "
                                    "/api/read or /api/digit")

    def body(self):
        """The request's image (:func:`image_bytes`), at most MAX_BODY bytes."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise RequestError(411, "chunked bodies are not accepted: send a Content-Length")
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(411, "send the image with a Content-Length")
        if not length.strip().isdigit():
            raise RequestError(400, f"Content-Length is not a number: {length[:40]!r}")
        length = int(length)
        if length > self.server.max_body:
            raise RequestError(413, f"the body is {length:,} bytes, more than the "
                                    f"{self.server.max_body:,} this server takes; send a "
                                    "smaller image", unread=length)
        body = self.rfile.read(length)
        if len(body) < length:
            raise RequestError(400, f"the body ended after {len(body):,} of its "
                                    f"{length:,} bytes")
        return image_bytes(body, self.headers.get("Content-Type", ""))

    def discard(self, length):
        """Read and drop up to ``length`` bytes (at most DRAIN) of a body not
        taken, within the request's time limits: a client sending it to the
        end then reads the answer, instead of finding the connection reset."""
        left = min(length, DRAIN)
        try:
            while left > 0:
                chunk = self.rfile.read(min(left, 2 ** 16))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:  # timed out (TimeoutError) or gone: the answer is sent
            pass

    @staticmethod
    def reading(read):
        try:
            return read()
        except ImageError as exc:
            raise RequestError(422, " ".join(str(exc).split())) from None


# ---------------------------------------------------------------- the server
class Server(ThreadingHTTPServer):
    """The page and API of ``reader`` (:class:`~nn_gpu.serve.reader.Reader`)
    on ``(host, port)`` (port 0: any free one; see :attr:`url`)."""

    daemon_threads = True   # Ctrl-C ends the server without waiting for clients
    request_queue_size = 64

    def __init__(self, host, port, reader, *, max_clients=MAX_CLIENTS, timeout=TIMEOUT,
                 deadline=DEADLINE, max_body=MAX_BODY, say=None):
        family, address = resolve(host, port)
        self.address_family = family
        self.reader, self.assets = reader, load_assets()
        self.timeout_s, self.deadline_s, self.max_body = timeout, deadline, max_body
        self.slots = threading.BoundedSemaphore(max_clients)
        self.say = say or (lambda message: print(f"nn-gpu serve: {message}", file=sys.stderr,
                                                 flush=True))
        super().__init__(address, Handler)
        ip = ipaddress.ip_address(self.server_address[0].split("%")[0])
        shown = {4: "127.0.0.1", 6: "::1"}[ip.version] if ip.is_unspecified else str(ip)
        self.url = f"http://{f'[{shown}]' if ip.version == 6 else shown}:{self.server_port}/"
        self.loopback = ip.is_loopback
        self.allowed_hosts = ({*LOOPBACK_NAMES, str(ip), "127.0.0.1", "::1",
                               str(host).strip("[]").lower()} if ip.is_loopback else None)

    def server_bind(self):
        """Bind without http.server's reverse look-up of the host's name
        (which waits on DNS where there is none)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self.busy(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def busy(self, request):
        """Answer 503 to a connection beyond MAX_CLIENTS, without a thread."""
        body = b'{"error": "the server is busy with other clients; try again"}\n'
        try:
            request.settimeout(0.05)
            try:
                request.recv(65536)  # its request (if it came), so that closing sends no reset
            except TimeoutError:
                pass
            request.settimeout(0.5)
            request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: "
                            b"application/json\r\nRetry-After: 1\r\nContent-Length: "
                            + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request, client_address):
        """One line on stderr, not socketserver's traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.ECONNRESET):
            return  # the client went away
        self.say(f"error serving {client_address[0]}: {type(exc).__name__}: "
                 f"{' '.join(str(exc).split())}")


def resolve(host, port):
    """(address family, socket address) to listen on for ``host`` and ``port``."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"--host {host}: not an address of this machine ({exc.strerror})") \
            from None
    family, _, _, _, address = infos[0]
    return family, address


def make_server(host, port, reader, **limits):
    """A :class:`Server`, or :class:`ServeError` saying in one line why it cannot listen."""
    try:
        return Server(host, port, reader, **limits)
    except OSError as exc:
        advice = {errno.EADDRINUSE: "another program listens there: pick another --port "
                                    "(0: any free one)",
                  errno.EACCES: "ports under 1024 need root: pick one above",
                  errno.EADDRNOTAVAIL: "the address is not this machine's"}.get(
            exc.errno, "check --host and --port")
        raise ServeError(f"cannot listen on {host} port {port} ({exc.strerror or exc}); "
                         f"{advice}") from None
