"""Unfreeze part of a network after a given iteration (FreezeD-style schedules, transfer learning).

The newly trainable parameters join the optimizer with their rule-derived settings and the
schedule at its current step (``Net.unfreeze``). On resume the checkpoint's record of which
parameters train replays the change, so the handler fires only when the run passes ``at`` live.
"""
from __future__ import annotations

from typing import Any, Callable

from ..engine.events import Event

__all__ = ["UnfreezeAt"]


class UnfreezeAt:
    """Unfreezes the parameters of network ``net`` matching ``patterns`` after iteration ``at`` (they
    join the optimizer with fresh state); ``report(step, text)`` is told what changed."""

    def __init__(self, net: str, patterns: list[str], at: int,
                 report: Callable[[int, str], None] | None = None) -> None:
        self.net, self.patterns, self.at, self.report = net, list(patterns), at, report

    def attach(self, engine: Any) -> None:
        engine.on(Event.ITERATION_COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        if engine.iteration != self.at:
            return
        net = engine.nets[self.net]
        added = net.unfreeze(self.patterns)
        if self.report is not None:
            self.report(self.at, f"step {self.at}: unfroze {', '.join(added)}\n" + net.explain())
