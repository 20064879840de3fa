"""How long a run has trained, counted across its resumes.

A sweep reports each run's time, and a run resumed from a checkpoint has trained in several
processes: the time of this process alone would understate it. The timer is checkpointed with the
engine (as Lightning's ``Timer`` callback keeps its elapsed time), so the time before the last
checkpoint carries over; what ran after it and was lost (a kill -9) is not counted, as those steps
run again and are counted then. It reads the host's clock only: nothing is read back from a device.
"""
from __future__ import annotations

import math
import time
from typing import Any

from ..engine.events import Event

__all__ = ["Timer", "saved_seconds", "MAX_SECONDS"]

MAX_SECONDS = 1e9  # 31 years: a saved time beyond it is not a run's


def saved_seconds(state: Any) -> float:
    """The training time a checkpoint's timer state holds (``{"seconds": s}``), checked: a finite,
    non-negative number of at most ``MAX_SECONDS``; anything else is one ``ValueError`` line."""
    seconds = state.get("seconds", 0.0) if isinstance(state, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
            or not 0 <= seconds <= MAX_SECONDS:
        raise ValueError(f"timer: {state!r:.60} is not a training time (seconds from 0 to {MAX_SECONDS:g})")
    return float(seconds)


class Timer:
    """Seconds of training so far: the checkpointed time of earlier processes plus this one's since
    the engine started. Attach it and hand it to the engine as a stateful object."""
    # A checkpoint written before runs kept their time resumes with the earlier time unknown (0).
    optional_state = True

    def __init__(self) -> None:
        self.before = 0.0
        self._start: float | None = None

    def attach(self, engine: Any) -> None:
        engine.on(Event.STARTED, self._started)

    def _started(self, _engine: Any) -> None:
        self._start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return self.before + (time.perf_counter() - self._start if self._start is not None else 0.0)

    def state_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.before = saved_seconds(state)
