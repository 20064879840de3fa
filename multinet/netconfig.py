"""The recipe-level description of one network's training setup, and its conversion to a NetSpec.

In a recipe it is a ``[networks.<name>]`` table::

    [networks.discriminator]
    optimizer = "adam"
    lr = 3e-4
    betas = [0.5, 0.999]
    init = "dcgan"
    group_presets = ["no_decay_norm_bias"]
    freeze = ["blocks.0", "blocks.1"]
    [[networks.discriminator.groups]]
    pattern = "head"
    lr_mult = 10.0
    [networks.discriminator.schedule]
    name = "cosine"
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from torch import nn

from .config import FieldError, at_least, within
from .groups import GroupRule, group_preset
from .netspec import NetSpec, TrainSetup
from .pretrained import PretrainedSpec
from .schedules import ScheduleSpec
from .weights import InitRule, init_preset

__all__ = ["NetConfig", "InitRuleConfig", "GroupRuleConfig", "to_spec"]


@dataclass
class InitRuleConfig:
    method: str
    types: list[str] = field(default_factory=list)
    pattern: str = ""
    bias: float | None = 0.0
    mean: float = 0.0
    std: float = 1.0
    a: float = 0.0
    b: float = 1.0
    val: float = 0.0
    gain: float = 1.0
    mode: Literal["fan_in", "fan_out"] = "fan_in"
    nonlinearity: str = "leaky_relu"


@dataclass
class GroupRuleConfig:
    name: str = ""
    pattern: str = ""
    types: list[str] = field(default_factory=list)
    kind: str = ""
    lr: float | None = None
    lr_mult: float = 1.0
    weight_decay: float | None = None
    wd_mult: float = 1.0
    momentum: float | None = None
    betas: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        at_least(self, 0, "lr", "lr_mult", "weight_decay", "wd_mult", "momentum")
        _check_betas(self.betas, allow_empty=True)


@dataclass
class NetConfig(TrainSetup):
    """A ``[networks.<name>]`` table: the optimizer and its options, init and group rules as plain
    values; everything else is ``TrainSetup``, the fields ``NetSpec`` has too."""

    # A network named by import path and its keyword arguments (it replaces the system's network
    # of that name); see multinet.imports for what a recipe may name.
    class_path: str = ""
    init_args: dict[str, Any] = field(default_factory=dict)
    optimizer: Literal["sgd", "adam", "adamw", "rmsprop"] = "adam"
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.0
    eps: float = 1e-8
    foreach: bool | None = None
    fused: bool | None = None
    init: str = "torch"
    init_rules: list[InitRuleConfig] = field(default_factory=list)
    group_presets: list[str] = field(default_factory=list)
    layer_decay: float = 1.0
    layer_decay_layers: list[str] = field(default_factory=list)
    groups: list[GroupRuleConfig] = field(default_factory=list)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    pretrained: PretrainedSpec = field(default_factory=PretrainedSpec)

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, 0, "momentum")
        # Adam divides by its bias correction (up to 1 / (1 - beta1) at step 1) in float32.
        within(self, "lr", low=0, high=1e30, note=" (larger steps overflow float32)")
        within(self, "eps", "layer_decay", low=0, open_low=True)
        _check_betas(self.betas)


def _check_betas(betas: list[float], allow_empty: bool = False) -> None:
    if (betas or not allow_empty) and (len(betas) != 2 or not all(0 <= b < 1 for b in betas)):
        raise FieldError("betas", f"must be two numbers in [0, 1), got {betas}")


def _options(cfg: NetConfig) -> dict[str, Any]:
    opts: dict[str, Any] = {"eps": cfg.eps}
    if cfg.optimizer in ("adam", "adamw"):
        opts["betas"] = tuple(cfg.betas)
    if cfg.optimizer in ("sgd", "rmsprop"):
        opts["momentum"] = cfg.momentum
        if cfg.optimizer == "sgd":
            opts.pop("eps")
    if cfg.foreach is not None:
        opts["foreach"] = cfg.foreach
    if cfg.fused is not None:
        opts["fused"] = cfg.fused
    return opts


def to_spec(cfg: NetConfig, module: nn.Module, compile: bool = False, sync_batchnorm: bool = False) -> NetSpec:
    """The ``NetSpec`` of a recipe's network table: the shared ``TrainSetup`` fields as they are,
    options / init rules / group rules turned into objects (``compile`` / ``sync_batchnorm``: the
    run's ``train.*`` flags, for every network)."""
    init: str | list[InitRule] | None
    if cfg.init_rules:
        init = [InitRule(r.method, tuple(r.types) or None, r.pattern or None, r.bias,
                         {"mean": r.mean, "std": r.std, "a": r.a, "b": r.b, "val": r.val, "gain": r.gain,
                          "mode": r.mode, "nonlinearity": r.nonlinearity})
                for r in cfg.init_rules]
        if cfg.init != "torch":
            init += init_preset(cfg.init)
    else:
        init = None if cfg.init == "torch" else cfg.init
    rules: list[GroupRule] = []
    for preset in cfg.group_presets:
        rules += group_preset(preset)
    if cfg.layer_decay != 1.0:
        rules += group_preset("layer_decay", layers=cfg.layer_decay_layers, decay=cfg.layer_decay)
    for g in cfg.groups:
        opts: dict[str, Any] = {}
        if g.momentum is not None:
            opts["momentum"] = g.momentum
        if g.betas:
            opts["betas"] = tuple(g.betas)
        rules.append(GroupRule(g.name, g.pattern or None, tuple(g.types) or None, g.kind or None,
                               g.lr, g.lr_mult, g.weight_decay, g.wd_mult, opts))
    shared = {f.name: getattr(cfg, f.name) for f in fields(TrainSetup)}
    shared.update(compile=cfg.compile or compile, sync_batchnorm=cfg.sync_batchnorm or sync_batchnorm)
    return NetSpec(module=module, optimizer=cfg.optimizer, lr=cfg.lr, options=_options(cfg), init=init,
                   groups=rules, **shared)
