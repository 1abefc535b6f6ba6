"""Fetch the four MNIST files from public mirrors, verified and atomically.

The original site (yann.lecun.com) is often unreachable, so several mirrors
are tried in order. Mirrors re-gzip the files differently, so the checksums
below are of the *decompressed* IDX content, which is identical everywhere.
A file only appears under its final name once it is complete and verified:
it is written to a temporary file in the same directory, fsynced, then moved
into place with os.replace, so an interrupted or bad download never leaves a
half-written file that the loader would trip over later.

:func:`first_run_data_dir` is what ``nn-gpu train`` does on a machine without
MNIST: download it into the per-user default directory, as Keras and
torchvision do, but never into a directory the user named.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from ..errors import DataError
from .mnist import DATA_ENV_VAR, FILES, resolve_data_dir

DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
#: Base URLs to use instead of DEFAULT_MIRRORS, separated by spaces (an
#: in-house copy, or the tests' local server).
MIRRORS_ENV_VAR = "NN_GPU_MNIST_MIRRORS"
#: The four gzipped files together, for "about 11 MB" in what we say.
TOTAL_MEGABYTES = 11

# SHA-256 of the decompressed (raw IDX) content of the genuine files.
SHA256 = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

_CHUNK = 1 << 20


def _content_sha256(path: Path) -> str:
    """SHA-256 of the decompressed content; raises OSError/EOFError/zlib.error if bad."""
    digest = hashlib.sha256()
    with gzip.open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check(path: Path, name: str) -> str | None:
    """Return None if ``path`` holds the genuine content of ``name``, else why not."""
    try:
        found = _content_sha256(path)
    except (OSError, EOFError, zlib.error) as exc:
        return f"not a valid gzip file ({str(exc) or type(exc).__name__})"
    expected = SHA256[name]
    if found != expected:
        return f"SHA-256 of decompressed content is {found}, expected {expected}"
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

    The bytes go to a temporary file next to the target, which is fsynced and
    verified before os.replace puts it in place; on any failure (or Ctrl-C)
    the temporary file is removed and an existing target is left untouched.
    ``progress(name, total_bytes or None)`` makes a bar with ``update(n)``
    and ``close()``.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    except OSError as exc:
        raise DataError(f"{directory}: cannot write a file there ({exc.strerror or exc}); "
                        "check its permissions or choose another directory") from None
    try:
        bar = None
        try:
            with os.fdopen(fd, "wb") as out, \
                    urllib.request.urlopen(url, timeout=timeout) as response:
                if progress is not None:
                    length = response.headers.get("Content-Length", "")
                    bar = progress(name, int(length) if length.isdigit() else None)
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return _describe(exc)
        finally:
            if bar is not None:
                bar.close()
        problem = _check(Path(tmp), name)
        if problem is None:
            os.replace(tmp, directory / name)
            tmp = None
            _fsync_dir(directory)
        return problem
    finally:
        if tmp is not None:
            os.unlink(tmp)


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
                                "check the network connection, pass other mirrors, or copy "
                                "the file there by hand", tried)
    return dest


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
                        f"{', '.join(FILES.values())} in {directory} by hand, or pass "
                        "--data DIR where they are") from None
    say(f"MNIST is ready in {directory}")
    return directory

