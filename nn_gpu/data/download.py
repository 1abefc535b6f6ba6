"""Fetch the four MNIST files from public mirrors, verified and atomically.

The original site (yann.lecun.com) is often unreachable, so several mirrors
are tried in order. Mirrors re-gzip the files differently, so the checksums
below are of the *decompressed* IDX content, which is identical everywhere.
A file only appears under its final name once it is complete and verified:
it is written through :func:`nn_gpu.io.fileio.atomic_write` (a temporary
file next to it, fsynced, renamed into place, with the mode the umask gives
a new file), so an interrupted or bad download never leaves a half-written
file that the loader would trip over later, and the temporary files of a
download that was killed are removed by the next one.

A mirror is data too: what it sends is decompressed and hashed as it
arrives, and the download stops as soon as the answer is larger than any
copy of the file can be (:data:`RAW_BYTES`), decompresses to more than the
file holds, arrives slower than :data:`LOW_SPEED` or takes longer than
:data:`DEADLINE_SECONDS` in all.

:func:`first_run_data_dir` is what ``nn-gpu train`` does on a machine without
MNIST: download it into the per-user default directory, as Keras and
torchvision do, but never into a directory the user named.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import stat
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from ..errors import DataError
from ..io.fileio import STALE_SECONDS, OutputError, atomic_write, open_input
from .mnist import DATA_ENV_VAR, FILES, resolve_data_dir

DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
#: Base URLs to use instead of DEFAULT_MIRRORS, separated by spaces (an
#: in-house copy, or the tests' local server); ``nn-gpu download --mirror URL``
#: names them on the command line.
MIRRORS_ENV_VAR = "NN_GPU_MNIST_MIRRORS"
#: The URL schemes a mirror may use.
MIRROR_SCHEMES = ("https://", "http://", "file://")
#: The four gzipped files together, for "about 11 MB" in what we say.
TOTAL_MEGABYTES = 11

# SHA-256 of the decompressed (raw IDX) content of the genuine files.
SHA256 = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: Bytes of the decompressed (raw IDX) content of the genuine files: the
#: header and 60,000 or 10,000 images of 784 bytes, or labels of one.
RAW_BYTES = {
    "train-images-idx3-ubyte.gz": 16 + 60_000 * 784,
    "train-labels-idx1-ubyte.gz": 8 + 60_000,
    "t10k-images-idx3-ubyte.gz": 16 + 10_000 * 784,
    "t10k-labels-idx1-ubyte.gz": 8 + 10_000,
}
#: (bytes per second, seconds): a mirror slower than this for this long is given up.
LOW_SPEED = (1024, 30)
#: The longest one file may take from one mirror, however fast it trickles.
DEADLINE_SECONDS = 900

_CHUNK = 1 << 16


def max_download_bytes(name: str) -> int:
    """The most bytes a gzipped copy of ``name`` can take: its raw content
    stored without compression (5 bytes per 64 KiB block) and a generous
    gzip header (a file name, a comment)."""
    raw = RAW_BYTES[name]
    return raw + raw // 1000 + (64 << 10)


class _Refused(Exception):
    """A mirror's answer that is not the file (the reason, for the message)."""


class _Verifier:
    """Decompresses gzip data as it is fed, hashing the content and refusing,
    as soon as it shows, more than :data:`RAW_BYTES` of it."""

    def __init__(self, name: str):
        self.name, self.limit = name, RAW_BYTES[name]
        self.digest, self.size = hashlib.sha256(), 0
        self.inflate = zlib.decompressobj(wbits=31)

    def feed(self, data: bytes) -> None:
        while data:
            try:
                out = self.inflate.decompress(data, self.limit + 1 - self.size)
            except zlib.error as exc:
                raise _Refused(f"not a valid gzip file ({exc})") from None
            self.size += len(out)
            if self.size > self.limit:
                raise _Refused(f"decompresses to more than the {self.limit:,} bytes of {self.name}")
            self.digest.update(out)
            data = self.inflate.unconsumed_tail
            if self.inflate.eof:  # a gzip file may hold several members
                data = self.inflate.unused_data + data
                if data:
                    self.inflate = zlib.decompressobj(wbits=31)

    def finish(self) -> None:
        if not self.inflate.eof:
            raise _Refused("not a valid gzip file (it ends too soon)")
        found, expected = self.digest.hexdigest(), SHA256[self.name]
        if found != expected:
            raise _Refused(f"SHA-256 of decompressed content is {found}, expected {expected}")


def _check(path: Path, name: str) -> str | None:
    """Return None if ``path`` holds the genuine content of ``name``, else why not."""
    verifier = _Verifier(name)
    try:
        with open_input(path, max_download_bytes(name), what=name) as stream:
            while chunk := stream.read(_CHUNK):
                verifier.feed(chunk)
        verifier.finish()
    except _Refused as exc:
        return str(exc)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


class DownloadError(DataError):
    """No mirror served a file; ``tried`` lists each URL with its reason."""

    def __init__(self, message, tried):
        super().__init__(message)
        self.tried = tried


def configured_mirrors() -> tuple[str, ...]:
    """$NN_GPU_MNIST_MIRRORS (base URLs separated by spaces), else DEFAULT_MIRRORS."""
    return tuple(os.environ.get(MIRRORS_ENV_VAR, "").split()) or DEFAULT_MIRRORS


def _fetch(url: str, directory: Path, name: str, timeout: float, progress=None) -> str | None:
    """Download ``url`` as ``directory/name``; return None on success, else why not.

    The bytes go through :func:`~nn_gpu.io.fileio.atomic_write`, verified as
    they arrive (:class:`_Verifier`); on any failure (or Ctrl-C, or SIGTERM
    where the command turns it into one) the temporary file is removed and an
    existing target is left untouched. ``progress(name, total_bytes or
    None)`` makes a bar with ``update(n)`` and ``close()``.
    """
    try:
        with atomic_write(directory / name) as out:
            _stream(url, name, out, timeout, progress)
    except _Refused as exc:
        return str(exc)
    except OutputError as exc:
        raise DataError(f"{exc}; choose another directory") from None
    _fsync_dir(directory)
    return None


def _stream(url, name, out, timeout, progress):
    """Copy the answer to ``url`` into ``out``, verifying it; raise
    :class:`_Refused` saying why it is not ``name`` (a failed write is the
    OSError it is, for :func:`~nn_gpu.io.fileio.atomic_write` to name the file)."""
    verifier, limit = _Verifier(name), max_download_bytes(name)
    started = time.monotonic()
    with _network():
        response = urllib.request.urlopen(url, timeout=timeout)
    bar = None
    try:
        length = (response.headers.get("Content-Length") or "").strip()
        if length.isdigit() and int(length) > limit:
            raise _Refused(f"its answer is {int(length):,} bytes, more than any copy of "
                           f"{name} can be ({limit:,})")
        if progress is not None:
            bar = progress(name, int(length) if length.isdigit() else None)
        read = getattr(response, "read1", response.read)  # read1: whatever has arrived
        received, window = 0, (started, 0)
        while True:
            with _network():
                chunk = read(_CHUNK)
            if not chunk:
                break
            received += len(chunk)
            if received > limit:
                raise _Refused(f"its answer goes on past {limit:,} bytes, more than any copy "
                               f"of {name} can be")
            verifier.feed(chunk)
            out.write(chunk)
            if bar is not None:
                bar.update(len(chunk))
            window = _check_speed(started, window, received)
        verifier.finish()
    finally:
        response.close()
        if bar is not None:
            bar.close()


@contextlib.contextmanager
def _network():
    """A context in which a failed request or read becomes :class:`_Refused`."""
    try:
        yield
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _Refused(_describe(exc)) from None


def _check_speed(started, window, received):
    """The new (start, bytes) of the current LOW_SPEED window; raise
    :class:`_Refused` where the mirror is too slow or past the deadline."""
    now = time.monotonic()
    if now - started > DEADLINE_SECONDS:
        raise _Refused(f"gave up after {DEADLINE_SECONDS} s ({received:,} bytes received)")
    rate, seconds = LOW_SPEED
    since, at = window
    if now - since < seconds:
        return window
    if received - at < rate * (now - since):
        raise _Refused(f"too slow: {received - at:,} bytes in {now - since:.0f} s "
                       f"(less than {rate:,} bytes/s)")
    return now, received


def _describe(exc: BaseException) -> str:
    """A short one-line reason for a failed request."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return " ".join(str(reason).split())


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable; not every platform can open a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def download_mnist(dest: str | os.PathLike, mirrors=None, timeout: float = 30, say=None,
                   progress=None) -> Path:
    """Make sure ``dest`` holds the four verified MNIST files; return ``dest``.

    Files already present with the right content are left alone, so running
    this again is cheap and resumes after a failure. Each missing or bad file
    is taken from the first mirror (a base URL) that serves the right content;
    ``mirrors=None`` means :func:`configured_mirrors`. ``say(line)`` is told
    each file fetched and verified; ``progress`` draws a bar per file (see
    ``_fetch``). Raises :class:`DownloadError` naming the file and every
    mirror tried when none serves it.
    """
    dest = Path(dest).expanduser()
    if mirrors is None:
        mirrors = configured_mirrors()
    if isinstance(mirrors, str):
        mirrors = (mirrors,)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{dest}: cannot create the data directory ({exc.strerror or exc}); "
                        "choose another directory") from None

    for name in FILES.values():
        target = dest / name
        _remove_old_parts(dest, name)
        if target.is_file() and _check(target, name) is None:
            continue
        failures = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + name
            problem = _fetch(url, dest, name, timeout, progress)
            if problem is None:
                if say is not None:
                    say(f"{name}: downloaded from {url}, SHA-256 verified")
                break
            failures.append(f"{url} ({problem})")
        else:
            tried = "; ".join(failures) or "no mirrors given"
            raise DownloadError(f"{target}: could not download {name}, tried {tried}; "
                                f"check the network connection, give other mirrors (`nn-gpu "
                                f"download --mirror URL`, or ${MIRRORS_ENV_VAR}), or copy the "
                                "file there by hand", tried)
    return dest


def _remove_old_parts(directory: Path, name: str, now=None) -> None:
    """Remove the ``.NAME.XXXXXXXX.part`` files that downloads of earlier
    versions left when they were killed: regular files of this user,
    untouched for :data:`~nn_gpu.io.fileio.STALE_SECONDS` (a live download
    writes at least every ``timeout`` seconds). Today's downloads write
    through :func:`~nn_gpu.io.fileio.atomic_write`, which cleans up its own."""
    pattern = re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]{{8}}\.part")
    now = time.time() if now is None else now
    try:
        entries = [entry for entry in os.scandir(directory) if pattern.fullmatch(entry.name)]
    except OSError:
        return
    for entry in entries:
        with contextlib.suppress(OSError):
            info = entry.stat(follow_symlinks=False)
            if (stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid()
                    and now - info.st_mtime > STALE_SECONDS):
                os.unlink(entry.path)


def first_run_data_dir(data=None, say=None, progress=None) -> Path:
    """The MNIST directory a command should load, downloading MNIST first
    only where the user named no directory.

    A directory given as ``data`` (--data) or in $NN_GPU_DATA is returned
    as it is: what is missing there is the loader's to report. Otherwise
    the per-user default is used and, if any of the four files is missing
    there, they are downloaded and verified into it, telling ``say`` what
    happens. Without a network that ends in one line saying where to put
    the four files.
    """
    if (data is not None and str(data) != "") or os.environ.get(DATA_ENV_VAR):
        return resolve_data_dir(data)
    directory = resolve_data_dir()
    if all((directory / name).is_file() for name in FILES.values()):
        return directory
    say = say or (lambda line: None)
    mirrors = configured_mirrors()
    say(f"MNIST is not in {directory} yet: downloading the four files (about "
        f"{TOTAL_MEGABYTES} MB) from {mirrors[0]} (or a mirror) and checking their SHA-256 "
        f"(set {DATA_ENV_VAR} or pass --data to use a copy you have)")
    try:
        download_mnist(directory, mirrors, say=say, progress=progress)
    except DownloadError as exc:
        raise DataError(f"could not download MNIST ({exc.tried}); put the four files "
                        f"{', '.join(FILES.values())} in {directory} by hand, fetch them "
                        "from another mirror (`nn-gpu download --mirror URL`), or pass "
                        "--data DIR where they are") from None
    say(f"MNIST is ready in {directory}")
    return directory

