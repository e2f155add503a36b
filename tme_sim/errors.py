"""Exceptions for expected mistakes.

Every error a user can cause by bad input derives from :class:`TMEError`. The CLI prints
``error: <message>`` on one line and exits with status 2 for these; anything else is a bug and
shows a traceback.
"""


class TMEError(Exception):
    """Base class of all expected, user-facing errors (one-line message).

    ``details`` optionally lists every problem found (one line each) when the message summarises
    several; ``tme validate`` prints them all.
    """

    def __init__(self, message: str = "", *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = list(details or [])


class RunInterrupted(TMEError):
    """A run was stopped by the user (Ctrl-C / SIGTERM) after saving its output and a checkpoint (exit 130)."""

    signal_name: str | None = None


class ConfigError(TMEError):
    """A scenario, sweep, drug library or training config is malformed (names file and key)."""


class GridError(TMEError):
    """Bad grid settings (negative D, dt <= 0, domain not a whole number of voxels, ...)."""


class FieldError(TMEError):
    """A field became NaN or negative during a run (names substrate, time and voxel)."""


class NetworkFormatError(TMEError):
    """A MaBoSS .bnd/.cfg or a network file is malformed (names file and line)."""


class DataError(TMEError):
    """Training data is missing, malformed or does not fit the model."""


class ArtifactError(TMEError):
    """A saved surrogate artifact does not fit the scenario that loads it."""


class OutputError(TMEError):
    """An output file exists (and --force was not given), is missing, or is not a tme-sim file."""


class OutputWriteError(OutputError):
    """Writing an output or checkpoint failed (disk full, I/O error, read-only file system)."""


class ResourceError(TMEError):
    """A scenario would not fit in memory; refused before allocating."""
