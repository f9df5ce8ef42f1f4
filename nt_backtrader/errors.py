"""User-facing errors: anything the user can fix (input, config, files) raises one of these.

The CLI turns them into a single line on stderr and exit code 2, never a traceback.
"""


class UserError(Exception):
    """Base class: a problem with what the user gave us, with a message that says what to do."""


class DataError(UserError):
    """Malformed, inconsistent or insufficient OHLCV data."""


class ConfigError(UserError):
    """An unknown or ill-typed configuration key or command-line value."""


class CheckpointError(UserError):
    """A missing, truncated or damaged checkpoint or bundle (the digest checks integrity, not authorship)."""
