"""Reading and writing files without trusting the paths.

Writing: :func:`atomic_write` never leaves a half-written file, never
replaces what is not a regular file, and reports errors under the user's
path. Reading: :func:`open_input` never blocks on a FIFO or reads a device
or a directory. :func:`check_output` finds, before any work starts, an
output that could never be written.

Symbolic links are followed, deliberately: writing through a link replaces
the file it points to and keeps the link (as ``open(path, "w")`` would), and
reading reads that file. Where it points to something other than a regular
file (``/dev/stdout``, a device, a FIFO) the write is refused.
"""

import contextlib
import errno
import json
import os
import re
import stat
import tempfile
import time
from pathlib import Path

from ..errors import NNGpuError

#: A temporary file untouched this long whose writer is gone is stale
#: (a write killed by kill -9 or a power cut); one untouched for a day is,
#: whoever wrote it (a process id may have been reused since).
STALE_SECONDS, ABANDONED_SECONDS = 60, 24 * 3600

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"))


class OutputError(NNGpuError, OSError):
    """An output file that cannot be written; the message names it and says why."""


class NotRegularFileError(OSError):
    """An input that is not a regular file (a FIFO, a device, a directory)."""


def kind_of(mode):
    """What a ``st_mode`` is, in words ("a FIFO (named pipe)"), or None for a regular file."""
    return next((kind for test, kind in _KINDS if test(mode)), None if stat.S_ISREG(mode)
                else "not a regular file")


def _special_hop(path):
    """The first of ``path`` and the links it leads through that lies under
    /dev (but /dev/shm) or /proc, or None: those are devices and the open
    files of processes (/dev/stdout is /proc/self/fd/1), never a file to replace."""
    current = Path(os.path.abspath(Path(path).expanduser()))
    for _ in range(40):  # the kernel's own limit on a chain of links
        if current.parts[1:2] == ("proc",) or (
                current.parts[1:2] == ("dev",) and current.parts[2:3] != ("shm",)):
            return current
        if not current.is_symlink():
            return None
        current = Path(os.path.abspath(current.parent / os.readlink(current)))
    return None


def _refuse_special(path):
    hop = _special_hop(path)
    if hop is not None:
        where = "is" if hop == Path(os.path.abspath(path)) else f"is a link to {hop},"
        raise OutputError(f"{path}: {where} a device or a process's open file, never replaced "
                          "by a file; give the path of a file to write")


def target_of(path):
    """``path`` with symbolic links followed: where a write really goes."""
    return Path(os.path.realpath(Path(path).expanduser()))


def check_output(path):
    """Raise :class:`OutputError` now, not after training, if ``path`` can never
    be written: its directory is missing or unwritable (a file is really
    created there and removed), or it exists and is not a regular file.
    Returns where the write goes (links followed)."""
    _refuse_special(path)
    target = target_of(path)
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise OutputError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    if mode is not None and kind_of(mode):
        raise OutputError(f"{path}: is {_described(path, target, mode)}, not a regular file; "
                          "give the path of a file to write")
    if not target.parent.is_dir():
        raise OutputError(f"{path}: directory {target.parent} does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.probe.")
    except OSError as exc:
        raise OutputError(f"{path}: cannot create a file in {target.parent} "
                          f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return target


def check_outputs(outputs, inputs=()):
    """:func:`check_output` for every output of a command, and none of them
    the same file as another output or as an input (compared with links
    followed, and by inode where both exist). ``outputs`` and ``inputs`` are
    (label, path) pairs, the label saying where the path came from
    ("--save"); pairs whose path is None are skipped. Errors name the label."""
    outputs = [(label, path) for label, path in outputs if path is not None]
    inputs = [(label, path) for label, path in inputs if path is not None]
    for i, (label, path) in enumerate(outputs):
        try:
            check_output(path)
        except OutputError as exc:
            raise OutputError(f"{label} {exc}") from None
        for other_label, other in inputs + outputs[:i]:
            if same_file(path, other):
                raise OutputError(f"{label} {path}: is the same file as {other_label} {other}; "
                                  "give each output a file of its own, apart from the inputs")


def _described(path, target, mode):
    kind = kind_of(mode)
    return kind if Path(path) == target else f"a link to {target}, {kind}"


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Yield a file object; on success it replaces ``path`` in one step.

    The data goes to a temporary file ``.NAME.PID.XXXXXXXX.tmp`` in the
    directory of the file ``path`` leads to, is flushed and fsynced, then
    renamed over it (atomic on POSIX). If anything fails, the temporary file
    is removed and ``path`` is untouched; errors are :class:`OutputError`
    naming ``path``. Temporary files of this kind that a killed writer left
    behind are removed first (see :data:`STALE_SECONDS`).
    """
    _refuse_special(path)
    target = target_of(path)
    try:
        existing = target.stat().st_mode
    except OSError:  # none yet (or unreadable: mkstemp below says why)
        existing = None
    if existing is not None and kind_of(existing):
        raise OutputError(f"{path}: is {_described(path, target, existing)}; it is "
                          "never replaced by a file: give the path of a file to write")
    remove_stale_temporaries(target)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.",
                                        suffix=".tmp")
    except OSError as exc:
        raise _output_error(path, exc) from None
    try:
        os.fchmod(fd, _file_mode(target))  # mkstemp makes 0600; give the file its usual mode
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError) and not isinstance(exc, NNGpuError) and \
                exc.filename in (None, tmp_name):
            raise _output_error(path, exc) from None
        raise


def _output_error(path, exc):
    """An OSError met while writing ``path``, as one line naming ``path``."""
    reason = exc.strerror or str(exc)
    advice = {errno.ENOSPC: "free some space or write elsewhere",
              errno.EDQUOT: "free some space or write elsewhere",
              errno.EFBIG: "the file is larger than this system allows",
              errno.EACCES: "check the permissions of its directory",
              errno.EROFS: "write elsewhere"}.get(exc.errno, "check the path")
    return OutputError(f"{path}: cannot be written ({reason}); {advice}")


def _file_mode(path):
    """The mode ``path`` has, or the one a new file gets under the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def remove_stale_temporaries(target, now=None):
    """Remove the temporary files :func:`atomic_write` left for ``target`` when
    its writer was killed: only names of its own pattern, only regular files,
    only untouched for :data:`STALE_SECONDS` with their writer no longer
    running (or for :data:`ABANDONED_SECONDS`, whoever wrote them). Older
    versions wrote ``.NAME.XXXXXXXX.tmp`` without a process id: those count
    as abandoned after a day too."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(?:(\d+)\.)?[a-z0-9_]{{8}}\.tmp")
    now = time.time() if now is None else now
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if not match:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        age = now - info.st_mtime
        pid = match.group(1)
        stale = age > ABANDONED_SECONDS or (
            age > STALE_SECONDS and pid is not None and not _running(int(pid)))
        if stale and stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid():
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _running(pid):
    """Whether a process ``pid`` exists on this machine."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # someone else's process, or not a pid at all
    return True


def open_input(path, max_bytes=None, what="file"):
    """``path`` opened for binary reading, refusing (with
    :class:`NotRegularFileError`, whose ``strerror`` says why) anything but a
    regular file of at most ``max_bytes``. The file is opened non-blocking,
    so a FIFO never hangs the program, and checked once open, so it cannot
    be swapped for another kind of file in between."""
    fd = os.open(os.fspath(Path(path).expanduser()), os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        kind = kind_of(info.st_mode)
        if kind:
            raise NotRegularFileError(errno.EINVAL, f"is {kind}, not a regular {what}",
                                      os.fspath(path))
        if max_bytes is not None and info.st_size > max_bytes:
            raise NotRegularFileError(
                errno.EFBIG, f"is {info.st_size:,} bytes, more than any {what} can be "
                             f"(at most {max_bytes:,})", os.fspath(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def input_stream(source, what="file"):
    """A context giving a binary stream to read: ``source`` itself if it is
    one already (left open), else the file ``source`` names, opened by
    :func:`open_input`."""
    if hasattr(source, "read"):
        return contextlib.nullcontext(source)
    return open_input(source, what=what)


def read_input(path, max_bytes, what="file"):
    """The bytes of the regular file ``path`` (at most ``max_bytes``; see :func:`open_input`)."""
    with open_input(path, max_bytes, what) as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew while being read
        raise NotRegularFileError(errno.EFBIG, f"is more than {max_bytes:,} bytes, more "
                                               f"than any {what} can be", os.fspath(path))
    return data


def same_file(a, b):
    """Whether paths ``a`` and ``b`` name one file (links followed; either may not exist yet)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return target_of(a) == target_of(b)


def write_json(path, document):
    """Replace ``path`` with ``document`` as indented JSON, atomically."""
    with atomic_write(path, "w") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
