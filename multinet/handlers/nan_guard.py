"""Stop a run whose losses went NaN/Inf, naming the phase, its networks and the first bad step.

The engine runs this check itself every ``check_every`` iterations, so a plain ``Engine.run()``
never trains on with NaN weights; ``NanGuard`` adds checks at another cadence (each one is a host
sync, and under torch.distributed a collective that every rank must reach).
"""
from __future__ import annotations

from typing import Any

from ..events import Event

__all__ = ["NanGuard", "NonFiniteLoss"]


class NonFiniteLoss(RuntimeError):
    """A loss went NaN or infinite; the message names the phase, its networks and the step."""


class NanGuard:
    def __init__(self, every: int = 1) -> None:
        self.every = every

    def attach(self, engine: Any) -> None:
        engine.on(Event.ITERATION_COMPLETED, lambda e: e.check_finite(), self.every)
