"""One network's training setup as plain values: ``NetConfig``.

The same dataclass is a recipe's ``[networks.<name>]`` table and what Python code writes, so a
value has one home and one check::

    [networks.discriminator]                 NetConfig(optimizer="adam", lr=3e-4,
    optimizer = "adam"                                 betas=[0.5, 0.999], init="dcgan",
    lr = 3e-4                                          freeze=["blocks.0"],
    betas = [0.5, 0.999]                               groups=[GroupRule(pattern="head",
    init = "dcgan"                                                       lr_mult=10.0)])
    freeze = ["blocks.0"]
    [[networks.discriminator.groups]]
    pattern = "head"
    lr_mult = 10.0

The module is not part of it (``Net(name, module, config)``), nor are ``compile`` and
SyncBatchNorm, which are how a run builds every network (``Net(..., compile=True)``,
``train.compile``), not how one network trains.
"""
from __future__ import annotations

import warnings

from dataclasses import dataclass, field
from typing import Any, Literal

from ..config import FieldError, at_least, within
from .groups import PLAIN_PRESETS, GroupRule, group_preset
from .pretrained import PretrainedSpec
from .optimizers import OPTIMIZERS
from .schedules import ScheduleSpec
from .weights import InitRule, init_preset

__all__ = ["NetConfig", "OPTIMIZER_NAMES"]

OPTIMIZER_NAMES = tuple(OPTIMIZERS)  # one list: the optimizers OPTIMIZERS builds are the ones a config names


@dataclass(kw_only=True)
class NetConfig:
    """How one network is made and trained.

    - ``class_path`` / ``init_args``: a network named by import path (it replaces the system's
      network of that name; see ``multinet.state.imports`` for what a recipe may name).
    - ``optimizer`` and its options (``betas`` for Adam/AdamW, ``momentum`` for SGD/RMSprop,
      ``eps``, ``foreach``, ``fused``), base ``lr`` and ``weight_decay``.
    - ``init``: a preset (``torch`` keeps torch's defaults, ``dcgan``, ``bilinear``) that
      ``init_rules`` come before; ``init_strict``: every layer with parameters must be covered.
    - ``groups`` (``GroupRule``), after the ``group_presets`` and ``layer_decay`` over
      ``layer_decay_layers`` (a multiplier per layer, the last at 1).
    - ``freeze`` patterns / ``freeze_first_n`` parameters; frozen norm layers stay in eval mode
      (``frozen_norm="eval"``); ``unfreeze`` patterns are unfrozen after iteration ``unfreeze_at``.
    - ``schedule``, ``pretrained`` (a partial load), ``clip_grad_norm`` (0: none),
      ``channels_last`` (NHWC convolution weights), ``ema`` (decay of an averaged copy; 0: none).
    """

    class_path: str = ""
    init_args: dict[str, Any] = field(default_factory=dict)
    optimizer: Literal[OPTIMIZER_NAMES] = "adam"
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.0
    eps: float = 1e-8
    foreach: bool | None = None
    fused: bool | None = None
    weight_decay: float = 0.0
    init: str = "torch"
    init_rules: list[InitRule] = field(default_factory=list)
    init_strict: bool = False
    group_presets: list[str] = field(default_factory=list)
    layer_decay: float = 1.0
    layer_decay_layers: list[str] = field(default_factory=list)
    groups: list[GroupRule] = field(default_factory=list)
    freeze: list[str] = field(default_factory=list)
    freeze_first_n: int = 0
    frozen_norm: Literal["eval", "train"] = "eval"
    unfreeze: list[str] = field(default_factory=list)
    unfreeze_at: int = 0
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    pretrained: PretrainedSpec = field(default_factory=PretrainedSpec)
    clip_grad_norm: float = 0.0
    # Convolution weights in channels_last (NHWC) memory format: faster convolutions on CPU
    # (oneDNN) and with cuDNN under AMP; no effect on networks without convolutions.
    channels_last: bool = False
    ema: float = 0.0

    def __post_init__(self) -> None:
        at_least(self, 0, "weight_decay", "freeze_first_n", "unfreeze_at", "clip_grad_norm", "momentum")
        # Adam divides by its bias correction (up to 1 / (1 - beta1) at step 1) in float32.
        within(self, "lr", low=0, high=1e30, note=" (larger steps overflow float32)")
        within(self, "eps", "layer_decay", low=0, open_low=True)
        within(self, "ema", low=0, high=1, open_high=True, note=" (0 turns it off)")
        if self.optimizer not in OPTIMIZER_NAMES:
            raise FieldError("optimizer", f"{self.optimizer!r} unknown (valid: {', '.join(OPTIMIZER_NAMES)})")
        if self.betas == []:  # "unset": the default, so that a recipe's Adam betas can be cleared
            self.betas = [0.9, 0.999]
        # Switching optimizer is one key (optimizer=sgd over a recipe written for Adam): the other
        # optimizer's options stay as written but unused, and say so, as jsonargparse drops the
        # init_args a new class_path does not take.
        if self.optimizer in ("sgd", "rmsprop") and self.betas != [0.9, 0.999]:
            warnings.warn(f"betas {self.betas} are Adam's; optimizer {self.optimizer} does not use them (momentum is "
                          "its option)", stacklevel=3)
        if self.optimizer in ("adam", "adamw") and self.momentum:
            warnings.warn(f"momentum {self.momentum} is SGD's and RMSprop's; optimizer {self.optimizer} does not use "
                          "it (betas are its options)", stacklevel=3)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise FieldError("betas", f"must be two numbers in [0, 1), got {self.betas}")
        if self.unfreeze and self.unfreeze_at < 1:
            raise FieldError("unfreeze_at", "must be >= 1 when unfreeze is set (the iteration after which it happens)")
        for preset in self.group_presets:
            if preset not in PLAIN_PRESETS:  # layer decay has its own keys; a pattern's multiplier is a rule
                raise FieldError("group_presets", f"{preset!r} is not {' or '.join(PLAIN_PRESETS)} (layer "
                                 "decay has its own keys; a pattern's multiplier is a groups rule)")
        if self.init != "torch":
            init_preset(self.init)

    def optimizer_options(self) -> dict[str, Any]:
        """The keyword arguments of this optimizer beyond lr and weight decay."""
        opts: dict[str, Any] = {}
        if self.optimizer not in ("sgd", "lbfgs"):
            opts["eps"] = self.eps
        if self.optimizer in ("adam", "adamw"):
            opts["betas"] = tuple(self.betas)
        if self.optimizer in ("sgd", "rmsprop"):
            opts["momentum"] = self.momentum
        if self.foreach is not None:
            opts["foreach"] = self.foreach
        if self.fused is not None:
            opts["fused"] = self.fused
        return opts

    def init_rule_list(self) -> list[InitRule] | None:
        """The init rules in the order they are tried (``None``: torch's own init, untouched)."""
        if not self.init_rules:
            return None if self.init == "torch" else init_preset(self.init)
        return list(self.init_rules) + (init_preset(self.init) if self.init != "torch" else [])

    def group_rules(self) -> list[GroupRule]:
        """The parameter-group rules in the order they apply: presets, layer decay, then ``groups``."""
        rules: list[GroupRule] = []
        for preset in self.group_presets:
            rules += group_preset(preset)
        if self.layer_decay != 1.0:
            rules += group_preset("layer_decay", layers=self.layer_decay_layers, decay=self.layer_decay)
        return rules + list(self.groups)
