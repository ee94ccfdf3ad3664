"""Errors that reach the user as one line and an exit code."""

FIRST_LINE_LIMIT = 300  # characters of a library's message kept in ours


def first_line(exc: BaseException) -> str:
    """The first line of a library's error, for the one line we print (its type when empty)."""
    text = str(exc).strip().splitlines()
    return text[0][:FIRST_LINE_LIMIT] if text else type(exc).__name__


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
