"""The events an engine fires, as an enum: a misspelt event name raises instead of never firing."""
from __future__ import annotations

import enum

__all__ = ["Event"]


class Event(str, enum.Enum):
    """``STARTED`` once before the first iteration, ``ITERATION_COMPLETED`` after every iteration
    (all active phases stepped), ``EPOCH_COMPLETED`` after each pass over the data (when the
    system reports an epoch length), ``COMPLETED`` once when the loop ends for any reason but an
    exception. The string values (``"iteration"`` ...) are accepted wherever an ``Event`` is."""

    STARTED = "start"
    ITERATION_COMPLETED = "iteration"
    EPOCH_COMPLETED = "epoch"
    COMPLETED = "end"

    @classmethod
    def parse(cls, event: "Event | str") -> "Event":
        try:
            return cls(event)
        except ValueError:
            valid = ", ".join(f"Event.{e.name} ({e.value!r})" for e in cls)
            raise ValueError(f"unknown event {event!r} (valid: {valid})") from None
