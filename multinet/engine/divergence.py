"""Divergence: losses or weights that went NaN/Inf, and how close kept weights are to overflow.

The one home of the NaN check: ``NanRecord`` keeps each phase's losses on the device as the steps
run (no read per step) and ``check`` reads them and the weights in one go. The engine owns one
record and calls ``check`` every ``check_every`` iterations and at the end (``Engine.check_finite``);
a handler that writes the state out (a logged row, a checkpoint) asks ``Engine.check_finite`` first,
which checks a step once however many ask. So a plain ``Engine.run()`` never trains on with NaN
weights and the last good checkpoint is never overwritten.
"""
from __future__ import annotations

from typing import Any

import torch

from .. import distributed

__all__ = ["NonFiniteLoss", "NanRecord", "non_finite"]


class NonFiniteLoss(RuntimeError):
    """A loss went NaN or infinite; the message names the phase, its networks and the step."""


def _broken(params: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """1 if any of ``params`` holds a NaN/Inf, else 0 (a long on ``device``, ready to reduce)."""
    if not params:
        return torch.zeros((), dtype=torch.long, device=device)
    return (~torch.stack([p.isfinite().all() for p in params]).all()).long().to(device)


def non_finite(phases: list[Any], first_bad: dict[str, torch.Tensor], nets: dict[str, Any], world: int,
               iteration: int) -> str:
    """What went non-finite in a run, in one line ("" if nothing): the first step of a NaN/Inf
    loss per phase (``first_bad``: recorded on the device as the steps ran, so this costs no sync
    per step) and the networks whose weights are no longer finite. With ``world`` > 1 both are
    reduced over the ranks (a collective)."""
    steps = torch.stack([first_bad[p.name] for p in phases])
    broken = torch.stack([_broken(list(net.module.parameters()), steps.device) for net in nets.values()])
    if world > 1:
        never = torch.iinfo(torch.long).max
        steps = torch.where(steps < 0, never, steps)
        distributed.all_reduce(steps, "min")
        steps = torch.where(steps == never, -1, steps)
        distributed.all_reduce(broken, "max")
    parts = []
    bad = [(s, i) for i, s in enumerate(steps.tolist()) if s >= 0]
    if bad:
        step, i = min(bad)
        p = phases[i]
        parts.append(f"non-finite loss in phase '{p.name}' (network(s): {', '.join(p.nets)}) at step {step + 1}")
    for name, b in zip(nets, broken.tolist()):
        if b:
            by = [p.name for p in phases if name in p.nets]
            parts.append(f"non-finite weights in network '{name}' (trained by phase(s) {', '.join(by) or 'none'}) "
                         f"by step {iteration}")
    return "; ".join(parts)


class NanRecord:
    """The first non-finite loss step of each phase, kept on ``device`` (``-1``: none so far).

    ``keep`` stores a step's loss (no operator at all); ``check`` folds what was kept into the
    record and raises ``NonFiniteLoss`` for a bad loss or weight. A check that finds the same
    iteration and the same weights (tensor ids and in-place versions) as the last one that passed
    reads nothing."""

    def __init__(self, phases: list[Any], device: torch.device) -> None:
        self.phases, self.device = phases, device
        self.first_bad = {p.name: torch.full((), -1, dtype=torch.long, device=device) for p in phases}
        self.kept: dict[str, list[tuple[int, torch.Tensor]]] = {p.name: [] for p in phases}
        self.passed: Any = None  # (iteration, weight versions) of the last check that passed

    def keep(self, phase: str, iteration: int, loss: torch.Tensor) -> None:
        kept = self.kept[phase]
        kept.append((iteration, loss))
        if len(kept) >= 256:  # checks far apart (or none): memory stays bounded
            self._fold(phase)

    def _fold(self, phase: str) -> None:
        kept = self.kept[phase]
        if not kept:
            return
        steps = torch.tensor([i for i, _ in kept], device=self.device)
        never = torch.iinfo(torch.long).max
        first = torch.where(torch.isfinite(torch.stack([v for _, v in kept])), never, steps).min()
        bad = self.first_bad[phase]
        bad.copy_(torch.where((bad < 0) & (first < never), first, bad))
        kept.clear()

    def check(self, nets: dict[str, Any], iteration: int, world: int) -> None:
        """Raise ``NonFiniteLoss`` naming what went NaN/Inf; syncs (a collective with ``world`` > 1)."""
        key = (iteration, tuple((id(p), p._version) for n in nets.values() for p in n.module.parameters()))
        if key == self.passed:
            return
        for name in self.kept:
            self._fold(name)
        problem = non_finite(self.phases, self.first_bad, nets, world, iteration)
        if problem:
            raise NonFiniteLoss(problem)
        self.passed = key
