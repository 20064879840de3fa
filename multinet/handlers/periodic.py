"""Evaluate or sample every N iterations (rank 0 only under torch.distributed: no collectives).

Each call runs under ``streams.forked_rng``: what an evaluation or a sample draws from the global
generators never changes the training after it."""
from __future__ import annotations

from typing import Any, Callable

from ..config import flatten
from ..engine.events import Event
from ..state.streams import forked_rng

__all__ = ["EvaluateEvery", "SampleEvery", "AtSteps"]


class EvaluateEvery:
    """Calls ``evaluate()`` (a dict of figures) every ``every`` iterations, logs them as ``eval/<key>``
    to ``tracker``, puts them in ``engine.evaluation`` and fires ``Event.EVALUATED`` (the
    checkpointer keeps the best by them; a sweep prunes on them)."""

    def __init__(self, evaluate: Callable[[], dict[str, Any]], every: int, tracker: Any = None) -> None:
        self.evaluate, self.every, self.tracker = evaluate, every, tracker

    def attach(self, engine: Any) -> None:
        engine.on(Event.ITERATION_COMPLETED, self, self.every)

    def __call__(self, engine: Any) -> None:
        with forked_rng():
            results = self.evaluate()
        engine.evaluation = flatten(results, "/")  # nested results as "curves/<curve>/<point>"
        numbers = {f"eval/{k}": float(v) for k, v in engine.evaluation.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self.tracker is not None and numbers:
            self.tracker.scalars(engine.iteration, numbers)
        engine.fire(Event.EVALUATED)


class SampleEvery:
    """Calls ``sample(step)`` every ``every`` iterations (it writes its own files or images)."""

    def __init__(self, sample: Callable[[int], Any], every: int) -> None:
        self.sample, self.every = sample, every

    def attach(self, engine: Any) -> None:
        engine.on(Event.ITERATION_COMPLETED, self, self.every)

    def __call__(self, engine: Any) -> None:
        with forked_rng():
            self.sample(engine.iteration)


class AtSteps:
    """Calls ``fn(step)`` after each iteration listed in ``steps`` (e.g. the end of each phase)."""

    def __init__(self, steps: list[int], fn: Callable[[int], Any]) -> None:
        self.steps, self.fn = set(steps), fn

    def attach(self, engine: Any) -> None:
        engine.on(Event.ITERATION_COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        if engine.iteration in self.steps:
            with forked_rng():
                self.fn(engine.iteration)
