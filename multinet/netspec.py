"""What a network is and how it trains, as data: ``TrainSetup`` (shared with the recipe table
``NetConfig``) and ``NetSpec`` (the Python form, with the module and rule objects). ``Net`` builds it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from .config import FieldError, at_least, within
from .groups import GroupRule
from .pretrained import PretrainedSpec
from .schedules import ScheduleSpec
from .weights import InitRule

__all__ = ["TrainSetup", "NetSpec"]


@dataclass(kw_only=True)
class TrainSetup:
    """How a network trains beyond its optimizer, parameter groups and init: one set of fields
    shared by the recipe table (``NetConfig``) and the API (``NetSpec``), which differ only in how
    they name optimizer options, init rules and group rules (plain values in a recipe, objects in
    Python). ``ema``: decay of an averaged copy of the weights (``Net.ema``; 0 = none);
    ``unfreeze`` patterns are unfrozen after iteration ``unfreeze_at`` by the engine; ``compile``
    runs the module through ``torch.compile`` (in place: state_dict names unchanged);
    ``sync_batchnorm`` pools batch statistics over ranks (CUDA only)."""

    weight_decay: float = 0.0
    init_strict: bool = False
    freeze: list[str] = field(default_factory=list)
    freeze_first_n: int = 0
    frozen_norm: Literal["eval", "train"] = "eval"
    unfreeze: list[str] = field(default_factory=list)
    unfreeze_at: int = 0
    schedule: ScheduleSpec | None = None
    pretrained: PretrainedSpec | None = None
    clip_grad_norm: float = 0.0
    # Convolution weights in channels_last (NHWC) memory format: faster convolutions on CPU
    # (oneDNN) and with cuDNN under AMP; no effect on networks without convolutions.
    channels_last: bool = False
    ema: float = 0.0
    compile: bool = False
    sync_batchnorm: bool = False

    def __post_init__(self) -> None:
        at_least(self, 0, "weight_decay", "freeze_first_n", "unfreeze_at", "clip_grad_norm")
        within(self, "ema", low=0, high=1, open_high=True, note=" (0 turns it off)")
        if self.unfreeze and self.unfreeze_at < 1:
            raise FieldError("unfreeze_at", "must be >= 1 when unfreeze is set (the iteration after which it happens)")


@dataclass
class NetSpec(TrainSetup):
    """What a network is and how it trains, in Python. ``options`` go to the optimizer (betas,
    momentum, eps, foreach, fused, ...); ``init`` is a preset name or a rule list (``None`` keeps
    torch's); ``groups`` are ``GroupRule``s. The rest is ``TrainSetup``."""

    module: nn.Module
    optimizer: str = "adam"
    lr: float = 1e-3
    options: dict[str, Any] = field(default_factory=dict)
    init: str | list[InitRule] | None = None
    groups: list[GroupRule] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        within(self, "lr", low=0, high=1e30, note=" (larger steps overflow float32)")
