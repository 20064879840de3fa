"""Ctrl-C while ``python -m multinet...`` is still starting.

Importing torch takes a second or more, and the command line's own handling of an interrupt (one
line, exit status 130) exists only once ``cli.main`` runs: an interrupt before that would end in
Python's traceback of whichever import was running. Run as ``python -m``, the package installs an
exception hook first (this module imports nothing heavy) that reports an interrupt in one line;
``cli.main`` puts Python's own hook back as it starts. Any other exception keeps Python's report,
and a program that merely imports multinet is left alone.
"""
from __future__ import annotations

import sys
from typing import Any

__all__ = ["quiet_interrupts_while_starting", "started"]

_previous: Any = None


def quiet_interrupts_while_starting() -> None:
    global _previous
    if _previous is None:
        _previous = sys.excepthook
        sys.excepthook = _hook


def _hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
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
