"""The DIAS reproduction harness: data in the authors' LMDB format, metrics bit-for-bit with their
evaluator, one registry of methods, a resumable train/eval runner, and reports in their xlsx layout."""

__version__ = "0.1.0"
