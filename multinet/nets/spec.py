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

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ..config import FieldError, at_least, key, within
from .groups import PLAIN_PRESETS, GroupRule, group_preset
from .pretrained import PretrainedSpec
from .optimizers import OPTIMIZERS
from .schedules import ScheduleSpec
from .weights import PRESETS as INIT_PRESETS, InitRule, init_preset

__all__ = ["NetConfig", "OPTIMIZER_NAMES"]

OPTIMIZER_NAMES = tuple(OPTIMIZERS)  # one list: the optimizers OPTIMIZERS builds are the ones a config names


@dataclass(kw_only=True)
class NetConfig:
    """How one network is made and trained, one recipe table ``[networks.<name>]``: a module named by
    import path (or the system's own), its optimizer, init, parameter groups, freezing, schedule, a
    partial load of saved weights, gradient clipping and an EMA copy."""
    # 0.1 keys, named in their one-line error
    OLD_KEYS: ClassVar[dict[str, str]] = {"compile": "it is train.compile since 1.0",
                                          "sync_batchnorm": "it is train.sync_batchnorm since 1.0"}

    class_path: str = key("", "A network named by import path (`module:Class`): it replaces the system's network "
                              "of that name (see `multinet.state.imports` for what a recipe may name); empty = the "
                              "system's own.")
    init_args: dict[str, Any] = key(factory=dict, doc="Keyword arguments of `class_path`'s constructor.")
    optimizer: Literal[OPTIMIZER_NAMES] = key("adam", "The optimizer; its options are `betas` (Adam / AdamW), "
                                                      "`momentum` (SGD / RMSprop), `eps`, `foreach` and `fused`.")
    lr: float = key(1e-3, "The base learning rate, which group rules and the schedule scale.")
    betas: list[float] = key(factory=lambda: [0.9, 0.999], doc="Adam / AdamW: the two moment decays (beta1, beta2); "
                                                               "an empty list restores the default.")
    momentum: float = key(0.0, "SGD / RMSprop: the momentum.")
    eps: float = key(1e-8, "The optimizer's epsilon, added to its denominator (every optimizer but SGD and L-BFGS).")
    foreach: bool | None = key(None, "The optimizer's `foreach` option (the multi-tensor implementation); none = "
                                     "torch's choice.")
    fused: bool | None = key(None, "The optimizer's `fused` option (one fused kernel where torch has one); none = "
                                   "torch's choice.")
    weight_decay: float = key(0.0, "The base weight decay, which group rules may replace or scale.")
    init: str = key("torch", "The init preset tried after `init_rules`: " + ", ".join(f"`{p}`" for p in INIT_PRESETS)
                             + " (`torch` keeps torch's own initialisation).")
    init_rules: list[InitRule] = key(factory=list, doc="Init rules, tried in order before the `init` preset: the "
                                                       "first that matches a module initialises it.")
    init_strict: bool = key(False, "Every layer with parameters must be covered by an init rule or the preset "
                                   "(else building the network stops).")
    group_presets: list[str] = key(factory=list, doc="Parameter-group presets, applied first: "
                                   + ", ".join(f"`{p}`" for p in PLAIN_PRESETS) + ".")
    layer_decay: float = key(1.0, "Layer-wise learning-rate decay: layer i of the L in `layer_decay_layers` learns at "
                                  "lr × layer_decay ** (L-1-i), the last at lr (1 = off).")
    layer_decay_layers: list[str] = key(factory=list, doc="The name patterns of `layer_decay`'s layers, from input to "
                                                          "output.")
    groups: list[GroupRule] = key(factory=list, doc="Parameter-group rules, after the presets and layer decay: "
                                                    "learning rate, weight decay and optimizer options for the "
                                                    "parameters each matches.")
    freeze: list[str] = key(factory=list, doc="Name patterns of the parameters frozen from the start.")
    freeze_first_n: int = key(0, "Freeze the network's first N parameters (in `named_parameters()` order).")
    frozen_norm: Literal["eval", "train"] = key("eval", "Batch-norm layers whose parameters are all frozen: `eval` "
                                                        "keeps them in eval mode in training (running statistics "
                                                        "fixed), `train` lets their statistics move.")
    unfreeze: list[str] = key(factory=list, doc="Name patterns of parameters unfrozen after iteration `unfreeze_at`.")
    unfreeze_at: int = key(0, "The iteration after which the `unfreeze` patterns are unfrozen (>= 1 when `unfreeze` "
                              "is set).")
    schedule: ScheduleSpec = key(factory=ScheduleSpec, doc="The learning-rate schedule.")
    pretrained: PretrainedSpec = key(factory=PretrainedSpec, doc="A partial load of saved weights into the network, "
                                                                 "after init.")
    clip_grad_norm: float = key(0.0, "Clip the gradients' total norm to this before each optimizer step (0 = no "
                                     "clipping).")
    channels_last: bool = key(False, "Convolution weights in channels_last (NHWC) memory format: faster convolutions "
                                     "on CPU (oneDNN) and with cuDNN under AMP; no effect on networks without "
                                     "convolutions.")
    ema: float = key(0.0, "Decay of an exponential moving average of the weights: the averaged copy is what the "
                          "system samples, evaluates and exports with (0 = none).")

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
