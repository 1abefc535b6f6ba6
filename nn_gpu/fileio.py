"""Writing files so that a crash never leaves a half-written one behind."""

import contextlib
import json
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Yield a file object; on success it replaces ``path`` in one step.

    The data goes to a temporary file in the same directory, is flushed and
    fsynced, then renamed over ``path`` (atomic on POSIX and Windows). If
    anything fails, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode(path))  # mkstemp makes 0600; give the file its usual mode
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _file_mode(path):
    """The mode ``path`` has, or the one a new file gets under the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_json(path, document):
    """Replace ``path`` with ``document`` as indented JSON, atomically."""
    with atomic_write(path, "w") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
