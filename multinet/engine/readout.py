"""What the engine reports between steps: its latest loss terms, learning rates and gradient norms
under stable names. Reading them is a host sync (one for all of them), so the loop itself never
does: handlers ask at their log steps."""
from __future__ import annotations

from typing import Any

import torch

from .. import distributed

__all__ = ["Readout"]


class Readout:
    """The engine's read-outs (a part of ``Engine``, kept here): they read the engine's ``terms``,
    ``grad_norms``, ``made_at``, ``nets``, ``phases`` and ``dist``."""

    terms: dict[str, dict[str, torch.Tensor]]
    grad_norms: dict[str, torch.Tensor]
    made_at: dict[str, int]
    iteration: int
    log_every: int
    nets: dict[str, Any]
    phases: list[Any]
    dist: Any

    def default_monitor(self, net: str) -> str:
        """The loss of the latest phase that trained ``net``."""
        trained = [p.name for p in self.phases if net in p.nets and p.name in self.terms]
        return f"loss/{trained[-1]}"

    def metric(self, key: str) -> float:
        """A latest loss term by ``phase/term`` name (``loss/<phase>`` for the total); syncs."""
        if key.startswith("loss/"):
            return float(self.terms[key[5:]]["loss"])
        phase, term = key.split("/", 1)
        return float(self.terms[phase][term])

    def scalars(self, window: int | None = None) -> dict[str, float]:
        """Loss terms, LRs and grad norms under stable names (one host sync for all of them;
        under torch.distributed the mean over ranks, a collective). Only terms produced in the
        last ``window`` iterations (default ``log_every``) appear: a phase that has stopped is not
        logged again."""
        window = window or self.log_every or 1
        fresh = {k for k, it in self.made_at.items() if self.iteration - it <= window}
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
        if values and self.dist.world > 1:
            values = list(distributed.all_reduce(torch.stack(values)) / self.dist.world)
        out = dict(zip(names, torch.stack(values).tolist())) if values else {}
        for net in self.nets.values():
            for g in net.optimizer.param_groups:
                out[f"lr/{net.name}/{g['name']}"] = g["lr"]
        return out
