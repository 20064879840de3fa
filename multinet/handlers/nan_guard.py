"""Stop a run whose losses went NaN/Inf, naming the phase, its networks and the first bad step.

The engine runs this check itself every ``check_every`` iterations, so a plain ``Engine.run()``
never trains on with NaN weights; ``NanGuard`` adds checks at another cadence (each one is a host
sync, and under torch.distributed a collective that every rank must reach).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .. import distributed
from ..events import Event

__all__ = ["NanGuard", "NonFiniteLoss", "find_non_finite", "weight_headroom", "NEAR_OVERFLOW"]


class NonFiniteLoss(RuntimeError):
    """A loss went NaN or infinite; the message names the phase, its networks and the step."""


class NanGuard:
    def __init__(self, every: int = 1) -> None:
        self.every = every

    def attach(self, engine: Any) -> None:
        engine.on(Event.ITERATION_COMPLETED, lambda e: e.check_finite(), self.every)


def _broken(params: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """1 if any of ``params`` holds a NaN/Inf, else 0 (a long on ``device``, ready to reduce)."""
    if not params:
        return torch.zeros((), dtype=torch.long, device=device)
    return (~torch.stack([p.isfinite().all() for p in params]).all()).long().to(device)


def find_non_finite(engine: Any) -> str:
    """What went non-finite in ``engine``'s run, in one line ("" if nothing): the first step of a
    NaN/Inf loss per phase (recorded on the device as the steps ran, so this costs no sync per
    step) and the networks whose weights are no longer finite. Under torch.distributed both are
    reduced over the ranks."""
    steps = torch.stack([engine._first_bad[p.name] for p in engine.phases])
    broken = torch.stack([_broken(list(net.module.parameters()), steps.device) for net in engine.nets.values()])
    if engine.dist.world > 1:
        never = torch.iinfo(torch.long).max
        steps = torch.where(steps < 0, never, steps)
        distributed.all_reduce(steps, "min")
        steps = torch.where(steps == never, -1, steps)
        distributed.all_reduce(broken, "max")
    parts = []
    bad = [(s, i) for i, s in enumerate(steps.tolist()) if s >= 0]
    if bad:
        step, i = min(bad)
        p = engine.phases[i]
        parts.append(f"non-finite loss in phase '{p.name}' (network(s): {', '.join(p.nets)}) at step {step + 1}")
    for name, b in zip(engine.nets, broken.tolist()):
        if b:
            by = [p.name for p in engine.phases if name in p.nets]
            parts.append(f"non-finite weights in network '{name}' (trained by phase(s) {', '.join(by) or 'none'}) "
                         f"by step {engine.iteration}")
    return "; ".join(parts)


# Weights above this are reported as close to overflow: float16's largest value is 65,504, and a
# float32 weight of 1e30 squared (in a norm or a variance) is already infinite.
NEAR_OVERFLOW = 1e30


def weight_headroom(path: Path) -> str:
    """For a NaN stop's line: the largest |weight| in the kept checkpoint, and whether it is
    close to overflow (then resuming from it will likely diverge again)."""
    try:
        from ..checkpoint import load_checkpoint
        nets = load_checkpoint(path)["networks"]
    except (ValueError, OSError):
        return ""
    top = 0.0
    for net in nets.values():
        for v in (net.get("module") or {}).values() if isinstance(net, dict) else ():
            if isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel():
                top = max(top, float(v.detach().abs().max()))
    if top > NEAR_OVERFLOW:
        return (f" (but its largest |weight| is {top:.2g}, close to overflow: an earlier step_*.pt is likely the "
                "better start)")
    return f" (largest |weight| {top:.2g})"
