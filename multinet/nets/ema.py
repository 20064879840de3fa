"""An exponential moving average of a network's weights that reads nothing back to the host.

torch's ``AveragedModel`` decides between "copy" (first update) and "average" by testing its
``n_averaged`` tensor in Python on every update: a device→host read per step, which stalls a GPU
and rules out capturing the step as a CUDA graph. ``Ema`` keeps that count as a Python integer
too (read from the tensor once, when a state is loaded) and makes the same calls otherwise: the
first update copies, later ones ``lerp`` towards the network with weight ``1 - decay``,
parameters and buffers alike. Its ``state_dict`` is ``AveragedModel``'s, so saved runs load either
way."""
from __future__ import annotations

import itertools
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

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        # Under no_grad the tensors are read and written as they are (no detached aliases to make).
        mine = list(itertools.chain(self.module.parameters(), self.module.buffers()))
        theirs = list(itertools.chain(model.parameters(), model.buffers()))
        if self.updates == 0:
            for a, b in zip(mine, theirs, strict=True):
                a.copy_(b)
        else:
            groups: dict[Any, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
            for a, b in zip(mine, theirs, strict=True):
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
