"""A network with everything that trains it: init, groups, freezing, optimizer, schedule.

Build order (fixed, and why):
  1. module → device   SyncBatchNorm first when asked (CUDA only); init and optimizer state must
                       live where the weights live;
  2. init rules        on that device, so no CPU→GPU copy of freshly drawn weights;
  3. pretrained load   overrides init wherever a key matches;
  4. freezing          before groups, because frozen parameters join no group; frozen norm
                       layers keep eval mode in training (``frozen_norm``);
  5. channels_last     after init (which fills weights in the default order): same values, NHWC;
  6. EMA copy          an averaged copy of the weights as built (``ema`` decay > 0);
  7. parameter groups  rules → groups, audited; a rule that matches no parameter warns;
  8. optimizer         from the groups;
  9. scheduler         wraps the optimizer; a length left at 0 is filled in by the engine;
 10. compile           ``torch.compile`` in place (state_dict names unchanged);
 11. DDP wrapper       under torch.distributed only: broadcasts rank 0's weights, and is rebuilt
                       whenever the set of trainable parameters changes (freeze / unfreeze).
Timed unfreezing (``unfreeze`` + ``unfreeze_at``) is carried out by the engine at that iteration.
"""
from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from .. import distributed
from ..notes import note
from .device import compile_options, resolve_device
from .ema import Ema
from .freeze import NORM_TYPES, apply_norm_mode, is_frozen_norm, set_trainable
from .groups import GroupPlan, ParamRow, audit_groups, named_trainable, plan_groups
from .optimizers import build_optimizer, carry_state, load_named_state_dict, named_state_dict
from .pretrained import LoadReport, load_partial
from .schedules import FactorScheduler, PlateauScheduler, build_scheduler
from .spec import NetConfig
from .weights import InitReport, init_weights, preset_rule_names

__all__ = ["Net"]


class Net:
    """A built network: ``module``, ``optimizer``, ``scheduler`` and the reports of how, from the
    module and its ``NetConfig``. ``optimizer=False`` stops after the module steps (no groups,
    optimizer or schedule); ``compile`` (``True`` or a ``torch.compile`` mode) / ``sync_batchnorm``
    are how the run builds its networks."""

    def __init__(self, name: str, module: nn.Module, config: NetConfig | None = None,
                 device: str | torch.device = "auto", total_steps: int = 0, optimizer: bool = True,
                 compile: bool | str = False, sync_batchnorm: bool = False) -> None:
        cfg = self.config = config if config is not None else NetConfig()
        self.name = name
        self.device = resolve_device(device)
        self.total_steps = total_steps
        self.stepped_this_epoch = False  # set by the engine; epoch schedules advance only if True
        self.rules = cfg.group_rules()
        if sync_batchnorm:
            if self.device.type != "cuda":
                raise ValueError(f"{name}: SyncBatchNorm needs CUDA (this network is on {self.device})")
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        self.module = module.to(self.device)
        rules = cfg.init_rule_list()
        self.init_report: InitReport | None = (
            init_weights(self.module, rules, cfg.init_strict) if rules is not None else None)
        # A preset covers many architectures and may not fit this one; a rule of the user's that fits
        # nothing is a typo in a pattern or a type, said as group rules say it.
        presets = preset_rule_names()
        unused = [r for r in (self.init_report.unused_rules if self.init_report else []) if r not in presets]
        if unused:
            warnings.warn(f"{name}: init rule(s) {', '.join(map(repr, unused))} match no module", stacklevel=2)
        self.load_report: LoadReport | None = None
        if cfg.pretrained.path:
            p = cfg.pretrained
            self.load_report = load_partial(self.module, p.path, p.network or name, p.strip_prefix,
                                            p.add_prefix, p.rename, p.include, p.exclude, p.min_coverage)
            note(f"{name}: pretrained {p.path}: {self.load_report.summary()}")
        if cfg.freeze:
            set_trainable(self.module, False, patterns=cfg.freeze)
        if cfg.freeze_first_n:
            set_trainable(self.module, False, first_n=cfg.freeze_first_n)
        self._norms = [m for m in self.module.modules()
                       if isinstance(m, NORM_TYPES) and list(m.parameters(recurse=False))]
        if cfg.channels_last:  # after init (which fills in memory order): the same weights in NHWC
            self.module.to(memory_format=torch.channels_last)
        self.ema = Ema(self.module, cfg.ema) if cfg.ema > 0 else None
        self.optimizer: Any = None
        self.scheduler: Any = None
        if optimizer:  # without: a network to run, not to train (sampling from a saved run)
            self._build_optimizer()
            self._warn_unused_rules()
        if compile:
            self.module.compile(**compile_options(compile, name, self.device))
        self._ddp: nn.Module | None = None
        self.ddp_called = False  # set by the wrapper's forward; the engine checks it per phase step
        self.rewrap()

    def rescale_lr(self, ratio: float) -> None:
        """Multiply every group's learning rate (and the base its schedule scales) by ``ratio``:
        a resumed run's new base LR, with the optimizer's state (momentum, Adam's moments) and the
        schedule's position kept."""
        for g in self.optimizer.param_groups:
            g["lr"] *= ratio
            if "initial_lr" in g:
                g["initial_lr"] *= ratio
        if self.scheduler is not None and hasattr(self.scheduler, "_last_lr"):
            self.scheduler._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def plan_steps(self, steps: int, epochs: int = 0) -> None:
        """Told by the engine how many optimizer steps (and epochs) this network takes in the run:
        fills in a schedule length left at 0, and warns when an EMA would barely move."""
        if self.total_steps == 0:
            self.total_steps = steps
            if isinstance(self.scheduler, FactorScheduler):
                self.scheduler.set_total(epochs if self.config.schedule.interval == "epoch" else steps)
        d = self.config.ema
        if 0 < d < 1 and steps and d ** steps > 0.05:
            warnings.warn(f"EMA of {self.name}: decay {d} averages over about {1 / (1 - d):,.0f} steps, so after "
                          f"{steps:,} steps {d ** steps:.0%} of the average is still the initial weights; use a "
                          f"decay below {0.05 ** (1 / steps):.5f}", stacklevel=3)

    def _warn_unused_rules(self) -> None:
        everything = list(named_trainable(self.module, include_frozen=True))
        for rule in self.rules:
            if not any(rule.matches(n, p, owner) for n, p, owner in everything):
                warnings.warn(f"{self.name}: parameter-group rule {rule.name!r} matches no parameter", stacklevel=3)

    # -- data parallel -----------------------------------------------------------------------
    def rewrap(self) -> None:
        """(Re)build the DDP wrapper over the parameters that train now (a collective call)."""
        self._ddp = None
        if distributed.info().world == 1 or not any(p.requires_grad for p in self.module.parameters()):
            return
        from torch.nn.parallel import DistributedDataParallel as DDP
        ids = [self.device.index] if self.device.type == "cuda" else None
        self._ddp = DDP(self.module, device_ids=ids, find_unused_parameters=False)
        self._ddp.register_forward_pre_hook(lambda *_: setattr(self, "ddp_called", True))

    @property
    def wrapped(self) -> nn.Module:
        """What a phase that trains this network calls: its DDP wrapper under torch.distributed
        (gradients averaged over ranks), otherwise the module itself."""
        return self._ddp if self._ddp is not None else self.module

    # -- optimizer ---------------------------------------------------------------------------
    def parameters(self) -> list[torch.Tensor]:
        """The tensors the optimizer updates."""
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def _build_optimizer(self, state: dict[str, Any] | None = None, schedule: dict[str, Any] | None = None) -> None:
        """The one place an optimizer is built: groups planned from the rules for what trains now →
        optimizer (``state``, a ``named_state_dict``, carried over by name) → schedule (at the
        position ``schedule`` saved)."""
        self.plan = plan_groups(self.module, self.rules, self.config.lr, self.config.weight_decay)
        audit_groups(self.module, self.plan.groups)
        self.optimizer = build_optimizer(self.config.optimizer, self.plan.groups, **self.config.optimizer_options())
        if state is not None:
            carry_state(self.optimizer, state)  # before the schedule, which sets each new group's base LR
        self.scheduler = build_scheduler(self.optimizer, self.config.schedule, self.total_steps)
        if schedule is not None and self.scheduler is not None:
            self.scheduler.load_state_dict(schedule)
            if isinstance(self.scheduler, PlateauScheduler):
                self.scheduler.group_added()

    def rebuild_optimizer(self) -> None:
        """A new optimizer from the rules (moments and momentum cleared); the schedule keeps its step."""
        self._build_optimizer(schedule=self.scheduler.state_dict() if self.scheduler is not None else None)

    def set_lr(self, lr: float, group: str | None = None) -> None:
        """Change the LR in place, keeping optimizer state (momentum, Adam moments) untouched.

        With ``group`` the named group's base LR becomes ``lr``; without, every group is scaled
        so the network's base LR becomes ``lr`` and rule multipliers keep their ratios. A
        running schedule continues from the new base.
        """
        names = [g["name"] for g in self.optimizer.param_groups]
        if group is not None and group not in names:
            raise ValueError(f"{self.name}: no parameter group {group!r} (groups: {', '.join(names)})")
        scale = lr / self.config.lr if group is None else None
        if group is None:
            self.config = replace(self.config, lr=lr)
        for g in self.optimizer.param_groups:
            if group is not None and g["name"] != group:
                continue
            base = g.get("initial_lr", g["lr"])
            new_base = lr if scale is None else base * scale
            factor = g["lr"] / base if base else 1.0
            g["initial_lr"] = new_base
            g["lr"] = new_base * factor

    # -- freezing ----------------------------------------------------------------------------
    def freeze(self, *patterns: str | list[str], modules: list[nn.Module] = (),
               first_n: int | None = None) -> list[str]:
        """Freeze the parameters that name patterns (``freeze("0", "2.weight")``, or one list),
        ``modules`` or the first ``first_n`` select (none given: all): the groups are planned again
        from the rules for what trains now, and the optimizer state of what still trains carries over
        by name. Leaving nothing to train is refused, with every flag as it was."""
        flags = [(p, p.requires_grad) for p in self.module.parameters()]
        names = set_trainable(self.module, False, _patterns(patterns), modules, first_n)
        if not any(p.requires_grad for p, _ in flags):
            for p, flag in flags:
                p.requires_grad_(flag)
            raise ValueError(f"network {self.name!r}: freezing {len(names)} parameter(s) would leave nothing to "
                             "train; to stop training it, leave it out of the phases (a phase trains only the "
                             "networks it names)")
        self._regroup()
        return sorted(names)

    def unfreeze(self, *patterns: str | list[str], modules: list[nn.Module] = (),
                 first_n: int | None = None) -> list[str]:
        """Unfreeze what ``freeze`` would select: it joins the groups its rules lead to (planned again
        from the rules) with fresh optimizer state, under the schedule at its current step."""
        before = {n for n, _, _ in named_trainable(self.module)}
        set_trainable(self.module, True, _patterns(patterns), modules, first_n)
        new = [n for n, _, _ in named_trainable(self.module) if n not in before]
        if new:
            self._regroup()
        return new

    def _regroup(self) -> None:
        """A new optimizer and schedule over the groups the rules give for what trains now: each
        parameter's state and each group's settings carried over by name, the schedule's position kept."""
        self._build_optimizer(named_state_dict(self.optimizer),
                              self.scheduler.state_dict() if self.scheduler is not None else None)
        self.train(self.module.training)  # a norm layer (un)frozen now follows its mode, as after a resume
        self.rewrap()

    # -- modes, explain, state ---------------------------------------------------------------
    def train(self, mode: bool = True) -> "Net":
        self.module.train(mode)
        if mode:
            apply_norm_mode(self.module, self.config.frozen_norm)
        return self

    def enforce_norm_mode(self) -> None:
        """Put frozen norm layers back in eval mode if something (a handler's ``eval(); ...;
        train()``) woke them; the engine calls this before every iteration (cheap: norm layers only)."""
        if self.config.frozen_norm != "eval" or not self.module.training:
            return
        for m in self._norms:
            if m.training and is_frozen_norm(m):
                m.eval()

    def explain(self) -> str:
        fired = {r.name: r.rules for r in self.plan.rows}
        rows = []
        where = {n: g for g in self.optimizer.param_groups for n in g["names"]}
        for n, p, _ in named_trainable(self.module, include_frozen=True):
            g = where.get(n)
            # The base LR (before any schedule factor or warm-up) is what the rules set.
            rows.append(ParamRow(n, tuple(p.shape), g["name"] if g else "-", g.get("initial_lr", g["lr"]) if g else 0.0,
                                 g["weight_decay"] if g else 0.0, g is None, fired.get(n, [])))
        plan = GroupPlan(self.optimizer.param_groups, rows, self.plan.unused_rules)
        return plan.explain(f"[{self.name}] {self.config.optimizer} on {self.device}")

    def report(self) -> str:
        """Everything the build did: parameter groups, which rule initialised what, what loaded."""
        parts = [self.explain()]
        if self.init_report is not None:
            parts.append(f"[{self.name}] init\n" + self.init_report.table())
        if self.load_report is not None:
            parts.append(f"[{self.name}] pretrained {self.config.pretrained.path}: " + self.load_report.summary())
        return "\n".join(parts)

    def state_dict(self) -> dict[str, Any]:
        return {
            "module": self.module.state_dict(),
            "optimizer": named_state_dict(self.optimizer),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "trainable": sorted(n for n, _, _ in named_trainable(self.module)),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        trainable = set(state["trainable"])
        current = {n for n, _, _ in named_trainable(self.module)}
        if trainable != current:  # frozen/unfrozen since build: replay, then regroup from the rules
            for n, p, _ in named_trainable(self.module, include_frozen=True):
                p.requires_grad_(n in trainable)
            self._regroup()
        load_named_state_dict(self.optimizer, state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])


def _patterns(given: tuple[str | list[str], ...]) -> list[str] | None:
    """``freeze("a", "b")``, ``freeze(["a", "b"])`` and ``freeze("a")`` alike; ``None`` when none is
    given (then ``modules`` / ``first_n`` select, or everything)."""
    given = tuple(g for g in given if g is not None)
    return [x for g in given for x in ([g] if isinstance(g, str) else g)] if given else None
