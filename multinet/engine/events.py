"""The events an engine fires and the ways a run can end, as enums: a misspelt event name raises
instead of never firing, and each way of ending has its exit code in one table."""
from __future__ import annotations

import enum
import os
from typing import Any, Callable

from ..config.fields import failure_line

__all__ = ["Event", "StopReason", "EXIT_CODES", "Registration", "HandlerError", "call_handler"]


class Event(str, enum.Enum):
    """``STARTED`` once before the first iteration; ``ITERATION_STARTED`` / ``ITERATION_COMPLETED``
    around every iteration (all active phases stepped); ``EPOCH_COMPLETED`` after each pass over the
    data (when the system reports an epoch length); ``EVALUATED`` after each evaluation a handler
    makes (``engine.evaluation`` holds its figures); ``COMPLETED`` once when the loop ends for any
    reason but an exception; ``EXCEPTION_RAISED`` when one leaves the loop (``engine.exception``
    holds it; it is raised on after the handlers). The string values (``"iteration"`` ...) are
    accepted wherever an ``Event`` is."""

    STARTED = "start"
    ITERATION_STARTED = "iteration_start"
    ITERATION_COMPLETED = "iteration"
    EPOCH_COMPLETED = "epoch"
    EVALUATED = "evaluated"
    COMPLETED = "end"
    EXCEPTION_RAISED = "exception"

    @classmethod
    def parse(cls, event: "Event | str") -> "Event":
        try:
            return cls(event)
        except ValueError:
            valid = ", ".join(f"Event.{e.name} ({e.value!r})" for e in cls)
            raise ValueError(f"unknown event {event!r} (valid: {valid})") from None


class StopReason(str, enum.Enum):
    """Why a run ended; a ``str`` enum, so ``reason == "SIGINT"`` holds as before. Members are in
    rising order of seriousness: under torch.distributed the ranks agree on the most serious
    request of any rank."""

    FINISHED = "finished"        # trained all train.steps
    STEP_LIMIT = "step limit"    # stopped after --stop-at, as asked
    PRUNED = "pruning"           # a sweep's pruner stopped the trial
    SIGTERM = "SIGTERM"          # a scheduler's or kill's SIGTERM: saved at the next iteration boundary
    SIGINT = "SIGINT"            # Ctrl-C: saved likewise
    TERMINATED = "terminated"    # SIGTERM during the final evaluation: left at once
    INTERRUPTED = "interrupted"  # a second Ctrl-C (or one during the final evaluation): left at once
    DIVERGED = "diverged"        # a NaN / Inf loss or weight (NonFiniteLoss)
    FAILED = "failed"            # an error in a step or in torch (out of memory, a rank that died)

    def __str__(self) -> str:  # printed as its value ("SIGINT"), not "StopReason.SIGINT"
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


# The exit code of each way of ending (the shell's 128 + signal number for the signals).
EXIT_CODES = {StopReason.FINISHED: 0, StopReason.STEP_LIMIT: 0, StopReason.PRUNED: 0, StopReason.SIGTERM: 143,
              StopReason.SIGINT: 130, StopReason.TERMINATED: 143, StopReason.INTERRUPTED: 130,
              StopReason.DIVERGED: 1, StopReason.FAILED: 1}


class Registration:
    """What ``engine.on`` returns: ``remove()`` takes the handler off again (twice is harmless)."""

    def __init__(self, entries: list, entry: tuple) -> None:
        self._entries, self._entry = entries, entry

    def remove(self) -> None:
        for i, entry in enumerate(self._entries):
            if entry is self._entry:
                del self._entries[i]
                return


class HandlerError(RuntimeError):
    """An exception inside a handler (``engine.on(event, fn)`` or a handler object's method); the
    message names the handler, the event, the step and the line of the user's code that raised it
    (``MULTINET_TRACEBACK=1`` raises the original). Exceptions that already say what happened in one
    line pass unchanged: a stop (``NonFiniteLoss``), a step's ``StepError``, torch's
    ``RuntimeError``, a setting's ``ValueError`` and the file system's ``OSError``."""


def call_handler(fn: Callable[[Any], None], engine: Any, event: Event) -> None:
    """``fn(engine)`` for ``event``; an exception that does not already say what happened in one
    line becomes a ``HandlerError`` naming the handler, the event, the step and the user's line."""
    try:
        fn(engine)
    except (RuntimeError, ValueError, OSError):  # one line already (HandlerError's docstring)
        raise
    except Exception as e:
        if os.environ.get("MULTINET_TRACEBACK"):
            raise
        name = getattr(fn, "__qualname__", type(fn).__name__)
        raise HandlerError(f"handler {name} on {event.name}, step {engine.iteration}: {failure_line(e)}") from e
