"""Errors the CLI reports as one clear line and a non-zero exit (no traceback): bad input, not bugs."""


class HarnessError(Exception):
    """Base of every user-facing error. The message names the file/key/field at fault."""
