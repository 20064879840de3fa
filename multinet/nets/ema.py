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


class Ema(AveragedModel):
    """The averaged copy of ``module`` (``.module``), updated with ``update_parameters(module)``."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        super().__init__(module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.requires_grad_(False)
        self.decay, self.updates = decay, 0
        self._slots: dict[int, tuple[Any, list[tuple[dict[str, Any], str]]]] = {}

    def _tensors(self, module: nn.Module) -> list[torch.Tensor]:
        """``module``'s parameters then buffers, in ``parameters()`` / ``buffers()`` order."""
        known = self._slots.get(id(module))
        if known is None or known[0]() is not module:
            slots, seen = [], set()
            for kind in ("_parameters", "_buffers"):
                for m in module.modules():
                    for name, t in getattr(m, kind).items():
                        if t is not None and id(t) not in seen:
                            seen.add(id(t))
                            slots.append((getattr(m, kind), name))
            if len(self._slots) >= 2:  # the averaged copy and one network: forget older ones
                self._slots = {id(self.module): self._slots[id(self.module)]} if id(self.module) in self._slots else {}
            known = self._slots[id(module)] = (weakref.ref(module), slots)
        return [owner[name] for owner, name in known[1]]

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        # Under no_grad the tensors are read and written as they are (no detached aliases to make).
        mine, theirs = self._tensors(self.module), self._tensors(model)
        if len(mine) != len(theirs):
            raise ValueError(f"the EMA copy has {len(mine)} tensors and the network {len(theirs)}")
        if self.updates == 0:
            for a, b in zip(mine, theirs):
                a.copy_(b)
        elif all(t.dtype == mine[0].dtype and t.device == mine[0].device for t in mine) and mine[0].is_floating_point():
            torch._foreach_lerp_(mine, theirs, 1 - self.decay)  # the call multi_avg_fn makes for such a group
        else:
            groups: dict[Any, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
            for a, b in zip(mine, theirs):
                pair = groups.setdefault((a.device, a.dtype), ([], []))
                pair[0].append(a)
                pair[1].append(b)
            for ours, model_tensors in groups.values():
                self.multi_avg_fn(ours, model_tensors, None)
        self.n_averaged += 1
        self.updates += 1

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        out = super().load_state_dict(state_dict, strict=strict, assign=assign)
        self.updates = int(self.n_averaged)  # once per load, not per step
        return out
