"""Log the engine's scalars (losses, learning rates, grad norms) to one or more trackers.

A tracker is anything with ``scalars(step, values)`` (and optionally ``text``, ``images``,
``figure``, ``close``): ``multinet.Tracker`` writes TensorBoard and ``metrics.jsonl``; pass
several to log to another backend beside it.
"""
from __future__ import annotations

from typing import Any

from ..events import Event

__all__ = ["LogScalars"]


class LogScalars:
    def __init__(self, *trackers: Any, every: int = 50) -> None:
        self.trackers, self.every = trackers, every
        self.last: dict[str, float] = {}
        self.step = -1

    def attach(self, engine: Any) -> None:
        engine.on(Event.ITERATION_COMPLETED, self, self.every)

    def __call__(self, engine: Any) -> None:
        engine.check_finite()  # a NaN row would be logged, then the run stopped: stop first
        self.last, self.step = engine.scalars(), engine.iteration
        for t in self.trackers:
            t.scalars(engine.iteration, self.last)
