"""An exponential moving average of a network's weights that reads nothing back to the host.

torch's ``AveragedModel`` decides between "copy" (first update) and "average" by testing its
``n_averaged`` tensor in Python on every update: a device→host read per step, which stalls a GPU
and rules out capturing the step as a CUDA graph. ``Ema`` keeps that count as a Python integer
too (read from the tensor once, when a state is loaded) and makes the same calls otherwise: the
first update copies, later ones ``lerp`` towards the network with weight ``1 - decay``,
parameters and buffers alike. Its ``state_dict`` is ``AveragedModel``'s, so saved runs load either
way.

Listing a module's tensors walks its whole module tree (``named_modules``), which on a small MLP
costs as much as the averaging itself; ``Ema`` walks it once per network and then reads each
tensor from its owner's slot (``module._parameters[name]``), so a tensor replaced later is still
the one averaged."""
from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["Ema"]


def _slots(module: nn.Module) -> list[tuple[dict[str, Any], str]]:
    """Where each of ``module``'s parameters, then buffers, lives (owner dict, name), in
    ``parameters()`` / ``buffers()`` order: one walk of the module tree."""
    slots, seen = [], set()
    for kind in ("_parameters", "_buffers"):
        for m in module.modules():
            for name, t in getattr(m, kind).items():
                if t is not None and id(t) not in seen:
                    seen.add(id(t))
                    slots.append((getattr(m, kind), name))
    return slots


class Ema(AveragedModel):
    """The averaged copy of ``module`` (``.module``), updated with ``update_parameters(module)``."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        super().__init__(module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.requires_grad_(False)
        self.decay, self.updates = decay, 0
        self._mine = _slots(self.module)
        # Tensors of one device and dtype are averaged in one call: the groups, as positions. Moving
        # or casting the copy as a whole keeps them (a group's tensors move together).
        groups: dict[Any, list[int]] = {}
        for i, (owner, name) in enumerate(self._mine):
            groups.setdefault((owner[name].device, owner[name].dtype), []).append(i)
        self._groups = list(groups.values())
        self._theirs: tuple[Any, list[tuple[dict[str, Any], str]]] | None = None  # (the network, weakly; its slots)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        # Under no_grad the tensors are read and written as they are (no detached aliases to make).
        if self._theirs is None or self._theirs[0]() is not model:
            self._theirs = (weakref.ref(model), _slots(model))
        mine = [owner[name] for owner, name in self._mine]
        theirs = [owner[name] for owner, name in self._theirs[1]]
        if len(mine) != len(theirs):
            raise ValueError(f"the EMA copy has {len(mine)} tensors and the network {len(theirs)}")
        if self.updates == 0:
            for a, b in zip(mine, theirs):
                a.copy_(b)
        else:
            for group in self._groups:
                self.multi_avg_fn([mine[i] for i in group], [theirs[i] for i in group], None)
        self.n_averaged += 1
        self.updates += 1

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        out = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.updates = int(self.n_averaged)  # once per load, not per step
        return out
