"""Ctrl-C or SIGTERM while ``python -m multinet...`` is still starting.

Importing torch takes a second or more, and the command line's own handling of an interrupt (one
line, exit status 130) exists only once ``cli.main`` runs: an interrupt before that would end in
Python's traceback of whichever import was running, and SIGTERM's default action ends the
process without a word. Run as ``python -m``, the package installs an exception hook first (this
module imports nothing heavy) that reports an interrupt in one line, and a SIGTERM handler that
raises ``Terminated`` (a ``KeyboardInterrupt``, so every handler of Ctrl-C reports it too);
``cli.main`` puts Python's own hook back as it starts. Any other exception keeps Python's report,
and a program that merely imports multinet is left alone.
"""
from __future__ import annotations

import sys
from typing import Any

__all__ = ["quiet_interrupts_while_starting", "started", "stop_on_sigterm", "Terminated"]

_previous: Any = None


class Terminated(KeyboardInterrupt):
    """SIGTERM before training started (exit status 143)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated


def stop_on_sigterm() -> Any:
    """SIGTERM raises ``Terminated`` from here on, unless the program has a SIGTERM handler of its
    own (or this is not the main thread); returns the handler to put back (None: nothing changed)."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, _on_sigterm):
        return None
    return signal.signal(signal.SIGTERM, _on_sigterm)


def quiet_interrupts_while_starting() -> None:
    global _previous
    if _previous is None:
        _previous = sys.excepthook
        sys.excepthook = _hook
        stop_on_sigterm()


def _hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    if issubclass(kind, Terminated):
        print("stopped by SIGTERM during start-up, before training started", file=sys.stderr, flush=True)
        import os
        os._exit(143)  # the status a SIGTERM gives; raising on would report a Ctrl-C (130)
    if issubclass(kind, KeyboardInterrupt):
        print("interrupted during start-up, before training started", file=sys.stderr)
    else:
        (_previous or sys.__excepthook__)(kind, value, tb)


def started() -> None:
    """The command line runs: its own handlers take over (Python's hook is back)."""
    global _previous
    if _previous is not None and sys.excepthook is _hook:
        sys.excepthook = _previous
    _previous = None
