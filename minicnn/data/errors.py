"""The three ways getting a data set can fail, each with its own exception type.

Callers (the examples, the CLI) catch these to print the message and stop:
the messages already say what went wrong and what to do about it.
"""


class DatasetNotFoundError(FileNotFoundError):
    """The data set is in none of the places searched and could not be downloaded."""


class CorruptDatasetError(ValueError):
    """A data file exists but is not what it claims to be (bad magic number,
    truncated, counts that disagree, checksum mismatch). It is never used."""


class DownloadError(OSError):
    """No mirror could be reached: the machine is offline, or every mirror failed."""
