"""The authors' LMDB container (docs/reference.md#data-format): one single-file LMDB per split.

    b"__keys__"  pickle of the list of record keys b"000000", b"000001", ... (6 digits, conversion order)
    b"000000"    pickle.dumps(dict) of one sample: numpy arrays and bytes (see codec.py for the encodings)
    b"__meta__"  ours only: JSON bytes saying how the file was made (the authors' reader never looks at it)

Reading uses the authors' flags, and each process opens its own environment on first use, so a Dataset
holding a reader can be sent to DataLoader workers (an LMDB env must not cross a fork). Records are pickles: open
only files you trust, as with the authors' loader.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
from pathlib import Path

import lmdb

from harness.data.errors import CorruptDataError, DataFileMissingError
from harness.io import atomic_path

KEYS_KEY = b"__keys__"
META_KEY = b"__meta__"
COMMIT_EVERY = 64  # the authors' write frequency
MAP_SIZE = 1024**4  # address space only: the file grows with its content


def record_key(index: int) -> bytes:
    return f"{index:06d}".encode("ascii")


# One read-only env per file per process: py-lmdb refuses to open the same file twice in a process, and
# an env must not be used across a fork. Keyed by real path; reopened in a forked process or when the
# file was replaced (its identity changed).
_ENVS: dict[str, tuple[int, tuple, lmdb.Environment]] = {}


def _open_checked(path: Path) -> lmdb.Environment:
    try:
        env = lmdb.open(str(path), subdir=False, readonly=True, lock=False, readahead=False,
                        meminit=False, max_spare_txns=4)
    except lmdb.Error as e:
        raise CorruptDataError(f"{path}: not a readable LMDB file ({e}); download or convert it again") from None
    # A truncated file still opens, but touching a page past its end kills the process with SIGBUS.
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    size = path.stat().st_size
    if size < needed:
        env.close()
        raise CorruptDataError(f"{path}: truncated LMDB file ({size} bytes, its pages need {needed}); "
                               "download or convert it again")
    return env


def _shared_env(path: Path) -> lmdb.Environment:
    real = os.path.realpath(path)
    st = os.stat(real)
    identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    entry = _ENVS.get(real)
    if entry is not None:
        if entry[0] == os.getpid() and entry[1] == identity:
            return entry[2]
        # Replaced file, or an env inherited through fork: py-lmdb still counts it as open here. Closing
        # a read-only, lock-free env only unmaps this process's copy.
        entry[2].close()
    env = _open_checked(path)
    _ENVS[real] = (os.getpid(), identity, env)
    return env


class LmdbReader:
    """Read-only access to one split file: `keys` (list of bytes), `meta` (dict or None), `get(key)`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataFileMissingError(f"{self.path}: no such LMDB file")
        self._env = _shared_env(self.path)
        self._pid = os.getpid()
        with self._env.begin(write=False) as txn:
            raw_keys = txn.get(KEYS_KEY)
            raw_meta = txn.get(META_KEY)
        self.keys = self._parse_keys(raw_keys)
        self.meta = self._parse_meta(raw_meta)

    def _parse_keys(self, raw) -> list[bytes]:
        if raw is None:
            raise CorruptDataError(f"{self.path}: key {KEYS_KEY!r} is missing: not a split written in the "
                                   "authors' LMDB layout (or its conversion was interrupted)")
        try:
            keys = pickle.loads(raw)
        except Exception as e:
            raise CorruptDataError(f"{self.path}: key {KEYS_KEY!r}: cannot unpickle the key list ({e})") from None
        if not isinstance(keys, list) or not all(isinstance(k, bytes) for k in keys):
            raise CorruptDataError(f"{self.path}: key {KEYS_KEY!r}: expected a list of bytes keys, "
                                   f"got {type(keys).__name__}")
        return keys

    def _parse_meta(self, raw) -> dict | None:
        if raw is None:
            return None
        try:
            return json.loads(bytes(raw))
        except ValueError as e:
            raise CorruptDataError(f"{self.path}: key {META_KEY!r}: not JSON ({e})") from None

    def get(self, key: bytes) -> dict:
        """The unpickled record under `key`; a missing or undecodable record raises CorruptDataError."""
        if self._env is None or self._pid != os.getpid():  # first use in a DataLoader worker
            self._env = _shared_env(self.path)
            self._pid = os.getpid()
        with self._env.begin(write=False) as txn:
            raw = txn.get(key)
        if raw is None:
            raise CorruptDataError(f"{self.path}: key {key!r} is listed in {KEYS_KEY!r} but absent from the file")
        try:
            record = pickle.loads(raw)
        except Exception as e:
            raise CorruptDataError(f"{self.path}: key {key!r}: cannot unpickle the record ({type(e).__name__}: {e})"
                                   ) from None
        if not isinstance(record, dict):
            raise CorruptDataError(f"{self.path}: key {key!r}: expected a dict record, got {type(record).__name__}")
        return record

    def __len__(self) -> int:
        return len(self.keys)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_env": None, "_pid": None}


class LmdbWriter:
    """Write a split record by record; the file appears at `path` only once `__keys__` is committed.

    It writes to a temporary file beside `path` and renames it at the end (harness.io.atomic_path), so an
    interrupted conversion leaves no half file under the final name. `meminit=True` (the authors' writer
    has False) keeps unused page bytes zero, so the same records give a byte-identical file and file hash.

        with LmdbWriter(path, meta={...}) as w:
            for record in records:
                w.append(record)
    """

    def __init__(self, path: str | os.PathLike, meta: dict | None = None):
        self.path = Path(path)
        self.meta = meta
        self.keys: list[bytes] = []
        self._stack = contextlib.ExitStack()
        self._env = None
        self._txn = None

    def __enter__(self) -> "LmdbWriter":
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._tmp = tmp
        self._env = lmdb.open(str(tmp), map_size=MAP_SIZE, subdir=False, readonly=False, meminit=True, lock=True)
        self._txn = self._env.begin(write=True)
        return self

    def append(self, record: dict, key: bytes | None = None) -> bytes:
        """Store `record` under `key` (default: the next of the authors' sequential keys)."""
        key = record_key(len(self.keys)) if key is None else key
        if key in (KEYS_KEY, META_KEY):
            raise ValueError(f"{self.path}: record key {key!r} is reserved")
        self._txn.put(key, pickle.dumps(record))
        self.keys.append(key)
        if len(self.keys) % COMMIT_EVERY == 0:
            self._txn.commit()
            self._txn = self._env.begin(write=True)
        return key

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self._txn.abort()
            self._env.close()
            self._stack.__exit__(exc_type, exc, tb)  # removes the temporary file
            return False
        try:
            self._txn.commit()
            with self._env.begin(write=True) as txn:
                txn.put(KEYS_KEY, pickle.dumps(self.keys))
                if self.meta is not None:
                    txn.put(META_KEY, json.dumps(self.meta, sort_keys=True).encode())
            self._env.close()
            os.chmod(self._tmp, 0o644)  # mkstemp makes it owner-only; a data file is for everyone
        except BaseException as e:
            self._stack.__exit__(type(e), e, e.__traceback__)
            raise
        self._stack.__exit__(None, None, None)  # fsync and rename onto `path`
        return False
