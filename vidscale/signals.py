"""SIGTERM (service managers, `timeout`, `kill`) stops a run as Ctrl-C does: cleanly, with
no temporary file left behind."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

STOPS = (signal.SIGINT, signal.SIGTERM)


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


@contextmanager
def stops_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait for the end of the block, then act as they would have.

    For the few steps that must not be cut in two: a stop raised while a thread is being
    started leaves a thread nobody joins, reading a file its caller then closes (a crash,
    not a clean stop). Off the main thread, where no signal handler runs, it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = [s for s in STOPS if signal.getsignal(s) is not None]  # None: set outside Python, not restorable
    previous = {s: signal.signal(s, lambda signum, _: caught.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if caught:
            _deliver(caught[0], previous[caught[0]])


def _deliver(signum: int, handler: object) -> None:
    """Do what `handler` (as `signal.signal` returned it) does with `signum`."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)
