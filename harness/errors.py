"""Errors the CLI reports as one clear line and a non-zero exit (no traceback): bad input, not bugs — and the
file-system errors of the user's machine (a path that is a file, no permission, a read-only or full disk)."""

from __future__ import annotations

import errno
from pathlib import Path


class HarnessError(Exception):
    """Base of every user-facing error. The message names the file/key/field at fault."""


_WHAT = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
         errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.EPERM: "permission denied",
         errno.ENOTDIR: "not a directory", errno.EISDIR: "is a directory", errno.ENOENT: "no such file or directory"}


def os_error_line(e: OSError) -> str:
    """An OSError as one line naming the path at fault: "runs/x/train.csv: no space left on the device"."""
    what = _WHAT.get(e.errno, (e.strerror or str(e)).lower())
    path = e.filename2 if e.filename2 is not None else e.filename
    if path is None:
        return f"{what} ({e})"
    if e.errno == errno.ENOTDIR:
        blocking = _file_in_the_way(Path(path))
        if blocking is not None:
            return f"{path}: {blocking} is a file, not a directory" if blocking != Path(path) else \
                f"{path} is a file, not a directory"
    return f"{path}: {what}"


def _file_in_the_way(path: Path) -> Path | None:
    for part in (*reversed(path.parents), path):
        if part.exists() and not part.is_dir():
            return part
    return None


def describe(e: BaseException) -> str:
    """One line for a failed job: a user-facing error's message, an OSError's path and cause, else type and message."""
    if isinstance(e, HarnessError):
        return str(e)
    if isinstance(e, OSError):
        return os_error_line(e)
    return f"{type(e).__name__}: {e}"
