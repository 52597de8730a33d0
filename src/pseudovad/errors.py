"""One exception type for every problem a user can fix (bad path, bad labels, bad config).

The CLI prints its message without a traceback and exits non-zero; anything else is a bug and keeps
its traceback.
"""


class PseudovadError(Exception):
    """A user-facing error. The message names the file involved and, where possible, the fix."""


class DataError(PseudovadError):
    """The dataset on disk is missing, malformed or inconsistent with its labels."""


class ConfigError(PseudovadError):
    """A config file or override is invalid."""
