"""Notes: remarks for the person running a system (a figure skipped, a phase end moved, what a
pretrained load took), from any layer. Shown as one ``note:`` line on stderr by the runner and the
command line; a program that configures ``logging`` gets them as INFO records of ``multinet``."""
from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator

__all__ = ["note", "notes_shown"]

_NOTES = logging.getLogger("multinet")


def note(text: str) -> None:
    """A remark for the person running a system (a figure skipped, a phase end moved): the runner
    and the command line show it as one ``note:`` line on stderr; ``Runner(echo=False)`` shows
    nothing; a program that configures ``logging`` gets it as an INFO record of ``multinet``."""
    _NOTES.info(text)


@contextlib.contextmanager
def notes_shown(show: bool = True) -> Iterator[None]:
    """Inside this block, ``note()`` prints to stderr, unless ``show`` is false (then notes go only
    where the program's own logging sends them) or the program gave the ``multinet`` logger a
    handler of its own (which then decides)."""
    if not show or _NOTES.handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("note: %(message)s"))
    level, propagate = _NOTES.level, _NOTES.propagate
    _NOTES.addHandler(handler)
    _NOTES.setLevel(logging.INFO)
    _NOTES.propagate = False  # once on stderr, not again through a root handler
    try:
        yield
    finally:
        _NOTES.removeHandler(handler)
        _NOTES.setLevel(level)
        _NOTES.propagate = propagate
