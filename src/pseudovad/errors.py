"""One exception type for every problem a user can fix (bad path, bad labels, bad config), and the
exit status each kind ends the command with.

The CLI prints its message without a traceback. Input and usage errors exit 2 (fix the command or
the files it names, then run it again); runtime failures exit 1 (the command was right but failed
while running: a full disk, a diverged training, a stream that dropped, a run another process holds).
Anything else is a bug and keeps its traceback.
"""


class PseudovadError(Exception):
    """A user-facing error. The message names the file involved and, where possible, the fix."""

    exit_status = 2


class DataError(PseudovadError):
    """The dataset on disk is missing, malformed or inconsistent with its labels."""


class ConfigError(PseudovadError):
    """A config file or override is invalid."""


class RuntimeFailure(PseudovadError):
    """The command was right but could not finish: retrying later, or after freeing what it needs, can work."""

    exit_status = 1


class Interrupted(PseudovadError):
    """Stopped by Ctrl-C (or SIGTERM) after saving what could be saved; 130 is the shell's status for SIGINT."""

    exit_status = 130
