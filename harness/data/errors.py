"""Data errors: each names the file (and the record key, where one is at fault) and says what to do."""

from harness.errors import HarnessError


class DataError(HarnessError):
    """Base of every data-layer error."""


class DataFileMissingError(DataError):
    """An expected LMDB file does not exist; the message says where to get it."""


class CorruptDataError(DataError):
    """A file or record is unreadable: truncated LMDB, missing `__keys__`, absent key, undecodable bytes."""


class UnsupportedFormatError(DataError):
    """A readable file in a layout the v3 loader would misread (pre-v3 content); re-convert it."""


class RawDataError(DataError):
    """A converter's input tree does not look like the original dataset layout."""
