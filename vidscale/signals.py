"""SIGTERM (service managers, `timeout`, `kill`) stops a run as Ctrl-C does: cleanly, with
no temporary file left behind."""

from __future__ import annotations

import signal
import threading


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives; everything that cleans up after
    Ctrl-C (KeyboardInterrupt) cleans up after it too."""


def stop_on_sigterm() -> object:
    """Install the handler; returns the one it replaces (for `signal.signal` to put back)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise)


def _raise(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated
