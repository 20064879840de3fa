"""Check for NaN/Inf at a cadence of your own (each check is a host sync, and under
torch.distributed a collective that every rank must reach). The engine checks by itself every
``check_every`` iterations and before every checkpoint (``multinet.engine.divergence``)."""
from __future__ import annotations

from typing import Any

from ..engine.divergence import NEAR_OVERFLOW, NonFiniteLoss, weight_headroom
from ..engine.events import Event

__all__ = ["NanGuard", "NonFiniteLoss", "weight_headroom", "NEAR_OVERFLOW"]


class NanGuard:
    """Checks losses and weights for NaN / Inf every ``every`` iterations (``Engine.check_finite``:
    one read for the window); a bad value raises ``NonFiniteLoss`` naming the phase and step."""

    def __init__(self, every: int = 1) -> None:
        self.every = every

    def attach(self, engine: Any) -> None:
        engine.on(Event.ITERATION_COMPLETED, lambda e: e.check_finite(), self.every)
