"""Ctrl-C or SIGTERM while ``python -m multinet...`` is still starting.

Importing torch takes a second or more, and the command line's own handling of an interrupt (one
line, exit status 130) exists only once ``cli.main`` runs: an interrupt before that would end in
Python's traceback of whichever import was running, and SIGTERM's default action ends the
process without a word. Run as ``python -m``, the package first (this module imports nothing
heavy) installs SIGINT / SIGTERM handlers that say so in one line and end the process at once
(exit 130 / 143), and an exception hook for interrupts that arrive otherwise. ``cli.main`` puts
Python's own hook back as it starts; the handlers stay through a training run's setup and go when
training starts (``setup_done``, called by the runner, or at once for commands that train
nothing): from then on Ctrl-C raises ``KeyboardInterrupt`` and SIGTERM ``Terminated`` (a
``KeyboardInterrupt``, so every handler of Ctrl-C reports it too), which the run saves and stops
on. Any other exception keeps Python's report, and a program that merely imports multinet is left
alone.
"""
from __future__ import annotations

import sys
from typing import Any

__all__ = ["quiet_interrupts_while_starting", "started", "setup_done", "stop_on_sigterm", "Terminated"]

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


_stage = "start-up"


def _exit_now(signum: int, frame: Any) -> None:
    """Until training starts, an interrupt ends the process here and now. Raised as an exception in
    the middle of an import (torch's at start-up; torch._dynamo's, a dataset library's during
    setup) it can leave the library half-initialised or be swallowed by it: seen as a hang, an
    abort, a bogus error, or a run that went on training. Nothing has started that needs saving,
    and the run folder's lock is taken over once its process is gone."""
    import os
    import signal
    term = signum == signal.SIGTERM
    print(_line(term), file=sys.stderr, flush=True)
    os._exit(143 if term else 130)


def _line(term: bool) -> str:
    """What an interrupt before training says."""
    return (f"stopped by SIGTERM during {_stage}, before training started" if term
            else f"interrupted during {_stage}, before training started")


def quiet_interrupts_while_starting() -> None:
    import signal
    import threading
    global _previous
    if _previous is None:
        _previous = sys.excepthook
        sys.excepthook = _hook
        if threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _exit_now)
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                signal.signal(signal.SIGINT, _exit_now)


def _hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    if issubclass(kind, Terminated):
        print(_line(term=True), file=sys.stderr, flush=True)
        import os
        os._exit(143)  # the status a SIGTERM gives; raising on would report a Ctrl-C (130)
    if issubclass(kind, KeyboardInterrupt):
        print(_line(term=False), file=sys.stderr)
    else:
        (_previous or sys.__excepthook__)(kind, value, tb)


def started() -> None:
    """The command line runs: Python's exception hook is back; an interrupt still ends the process
    at once until ``setup_done``."""
    global _previous, _stage
    if _previous is not None and sys.excepthook is _hook:
        sys.excepthook = _previous
    _previous, _stage = None, "setup"


def setup_done() -> None:
    """Training starts (or a command that trains nothing runs): Ctrl-C raises ``KeyboardInterrupt``
    and SIGTERM ``Terminated`` again, for the run's own handlers to save and stop."""
    import signal
    import threading
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) is _exit_now:
            signal.signal(signal.SIGTERM, _on_sigterm)
        if signal.getsignal(signal.SIGINT) is _exit_now:
            signal.signal(signal.SIGINT, signal.default_int_handler)
