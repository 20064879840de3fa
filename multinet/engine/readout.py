"""What the engine reports between steps: its latest loss terms, learning rates and gradient norms
under stable names. Reading them is a host sync (one for all of them), so the loop itself never
does: handlers ask at their log steps (``Engine.scalars``)."""
from __future__ import annotations

from typing import Any

import torch

from .. import distributed

__all__ = ["Readout"]


class Readout:
    """The latest terms of each phase and gradient norm of each network, on the device, each with
    the iteration that made it (a phase that has stopped is not reported again)."""

    def __init__(self) -> None:
        self.terms: dict[str, dict[str, torch.Tensor]] = {}
        self.grad_norms: dict[str, torch.Tensor] = {}
        self.made_at: dict[str, int] = {}  # phase or grad_norm/<net> -> the iteration that produced it

    def record(self, phase: str, terms: dict[str, torch.Tensor], iteration: int) -> None:
        self.terms[phase] = terms
        self.made_at[phase] = iteration

    def record_grad_norm(self, net: str, norm: torch.Tensor, iteration: int) -> None:
        self.grad_norms[net] = norm
        self.made_at[f"grad_norm/{net}"] = iteration

    def metric(self, key: str) -> float:
        """A latest loss term by ``phase/term`` name (``loss/<phase>`` for the total); syncs."""
        if key.startswith("loss/"):
            return float(self.terms[key[5:]]["loss"])
        phase, term = key.split("/", 1)
        return float(self.terms[phase][term])

    def scalars(self, nets: dict[str, Any], iteration: int, window: int, world: int) -> dict[str, float]:
        """Terms and grad norms made in the last ``window`` iterations, and each network's LRs, under
        stable names: one host sync for all of them (with ``world`` > 1 the mean over ranks, a collective)."""
        fresh = {k for k, it in self.made_at.items() if iteration - it <= window}
        names, values = [], []
        for phase, terms in self.terms.items():
            if phase not in fresh:
                continue
            for k, v in terms.items():
                names.append(f"loss/{phase}" if k == "loss" else f"{phase}/{k}")
                values.append(v)
        for net, v in self.grad_norms.items():
            if f"grad_norm/{net}" in fresh:
                names.append(f"grad_norm/{net}")
                values.append(v.float())
        if values and world > 1:
            values = list(distributed.all_reduce(torch.stack(values)) / world)
        out = dict(zip(names, torch.stack(values).tolist())) if values else {}
        for net in nets.values():
            for g in net.optimizer.param_groups:
                out[f"lr/{net.name}/{g['name']}"] = g["lr"]
        return out
