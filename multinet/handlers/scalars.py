"""Log the engine's scalars (losses, learning rates, grad norms) to one or more trackers.

A tracker is anything with ``scalars(step, values)`` (and optionally ``text``, ``images``,
``figure``, ``close``): ``multinet.Tracker`` writes TensorBoard and ``metrics.jsonl``; pass
several to log to another backend beside it.
"""
from __future__ import annotations

from typing import Any

from ..engine.events import Event

__all__ = ["LogScalars"]


class LogScalars:
    """``every``: how often to log; ``None`` (the default) is the engine's ``log_every``, the steps on
    which the engine also measures gradient norms, so the two never disagree."""

    def __init__(self, *trackers: Any, every: int | None = None) -> None:
        self.trackers, self.every = trackers, every
        self.last: dict[str, float] = {}
        self.step = -1

    def attach(self, engine: Any) -> None:
        engine.on(Event.ITERATION_COMPLETED, self, engine.log_every if self.every is None else self.every)

    def __call__(self, engine: Any) -> None:
        engine.check_finite()  # a NaN row would be logged, then the run stopped: stop first
        self.last, self.step = engine.scalars(), engine.iteration
        for t in self.trackers:
            t.scalars(engine.iteration, self.last)
