"""Atomic file output: a reader never sees a half-written file, a crash leaves the old one (or none). A write that
fails (a full or read-only disk, no permission) raises an OSError naming the file that was to be written, not its
temporary."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path


def check_output_dir(path: str | os.PathLike) -> None:
    """Raise the OSError that creating and writing directory `path` would meet, before anything runs: a file in the
    way, a read-only file system, no write permission. Creates nothing."""
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(existing))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(existing))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside `path`; on success it is fsynced and renamed onto `path`.

    The temporary lives in the same directory so that `os.replace` is an atomic rename. On an exception
    the temporary is removed and `path` is untouched.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the result should be an ordinary file
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if e.errno == errno.ENOTDIR:
            raise
        raise type(e)(e.errno, e.strerror, str(path)) from e  # name the file, not its temporary
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            with contextlib.suppress(FileNotFoundError):
                tmp.with_name(tmp.name + "-lock").unlink()  # LMDB writes a lock file beside its data file


@contextlib.contextmanager
def exclusive(path: str | os.PathLike):
    """Hold an exclusive lock on the file `path` (created if absent) for the block: processes that make the same
    thing (a feature cache, a training run several cells share) wait for one of them. Released when the block ends,
    also if the process dies."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
