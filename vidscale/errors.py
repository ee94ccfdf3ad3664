"""Errors that reach the user as one line and an exit code."""


class VidscaleError(Exception):
    """An expected failure: printed as one line, exit code `exit_code`."""

    exit_code = 1


class UsageError(VidscaleError):
    """The command line asks for something impossible (exit code 2)."""

    exit_code = 2


class ModelError(UsageError):
    """A model name, file or architecture that cannot be used."""


class Cancelled(VidscaleError):
    """The caller's cancel event was set: the job stopped and left nothing behind."""

    exit_code = 130
