"""Errors a user can cause (bad data, bad options, bad checkpoints), as distinct from bugs.

The ``noisyseg`` command prints these as one line (``noisyseg: error: ...``) and exits with
status 2, without a traceback; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class NoisysegError(Exception):
    """Base class of the errors a user can fix: the message says what is wrong and where."""


class DataError(NoisysegError, ValueError):
    """A dataset that cannot be used: missing or empty folder, unpaired files, unexpected mask
    values, mixed sizes without resizing, a splits file that does not match the data."""


class ConfigError(NoisysegError, ValueError):
    """An option with a bad value, an unknown method / protocol / network, a config file that
    cannot be read, or a resumed run whose configuration differs."""


class CheckpointError(NoisysegError, RuntimeError):
    """A checkpoint that is missing, truncated, corrupt or from an incompatible run."""


class RunFolderError(NoisysegError, RuntimeError):
    """An output folder that holds another run (refused unless overwriting)."""


class TrainingDiverged(NoisysegError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""
