"""A network with everything that trains it: init, groups, freezing, optimizer, schedule.

Build order (fixed, and why):
  1. module → device   init and optimizer state must live where the weights live;
  2. init rules        on that device, so no CPU→GPU copy of freshly drawn weights;
  3. pretrained load   overrides init wherever a key matches;
  4. freezing          before groups, because frozen parameters join no group;
  5. parameter groups  rules → groups, audited;
  6. optimizer         from the groups;
  7. scheduler         wraps the optimizer;
  8. DDP wrapper       under torch.distributed only: broadcasts rank 0's weights, and is rebuilt
                       whenever the set of trainable parameters changes (freeze / unfreeze).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from . import distributed
from .freeze import apply_norm_mode, set_trainable
from .groups import GroupPlan, GroupRule, ParamRow, audit_groups, named_trainable, plan_groups
from .optimizers import build_optimizer, load_named_state_dict, named_state_dict
from .pretrained import LoadReport, PretrainedSpec, load_partial
from .schedules import FactorScheduler, ScheduleSpec, attach_group, build_scheduler
from .weights import InitReport, InitRule, init_preset, init_weights

__all__ = ["NetSpec", "Net", "resolve_device"]


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` is CUDA when present, else CPU; anything else is passed to ``torch.device``.
    Under torchrun a bare ``cuda`` (or ``auto`` on a GPU machine) is this process's LOCAL_RANK GPU."""
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {str(device)!r} is not a device (auto, cpu, cuda, cuda:N, mps, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} asked for, but CUDA is not available here")
    if dev.type == "cuda" and dev.index is None and distributed.launched():
        dev = torch.device("cuda", distributed.local_rank())
    return dev


@dataclass
class NetSpec:
    """What a network is and how it trains. ``options`` go to the optimizer (betas, momentum,
    eps, foreach, fused, ...); ``init`` is a preset name or a rule list (``None`` keeps torch's)."""

    module: nn.Module
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)
    init: str | list[InitRule] | None = None
    init_strict: bool = False
    groups: list[GroupRule] = field(default_factory=list)
    freeze: list[str] = field(default_factory=list)
    freeze_first_n: int = 0
    frozen_norm: str = "eval"
    schedule: ScheduleSpec | None = None
    pretrained: PretrainedSpec | None = None
    clip_grad_norm: float = 0.0
    channels_last: bool = False


class Net:
    """A built network: ``module``, ``optimizer``, ``scheduler`` and the reports of how."""

    def __init__(self, name: str, spec: NetSpec, device: str | torch.device = "auto",
                 total_steps: int = 0) -> None:
        self.name, self.spec = name, spec
        self.device = resolve_device(device)
        self.total_steps = total_steps
        self.stepped_this_epoch = False  # set by the engine; epoch schedules advance only if True
        self.module = spec.module.to(self.device)
        rules = init_preset(spec.init) if isinstance(spec.init, str) else spec.init
        self.init_report: InitReport | None = (
            init_weights(self.module, rules, spec.init_strict) if rules is not None else None)
        self.load_report: LoadReport | None = None
        if spec.pretrained is not None and spec.pretrained.path:
            p = spec.pretrained
            self.load_report = load_partial(self.module, p.path, p.network or name, p.strip_prefix,
                                            p.add_prefix, p.rename, p.include, p.exclude, p.min_coverage)
        if spec.freeze:
            set_trainable(self.module, False, patterns=spec.freeze)
        if spec.freeze_first_n:
            set_trainable(self.module, False, first_n=spec.freeze_first_n)
        if spec.channels_last:  # after init (which fills in memory order): the same weights in NHWC
            self.module.to(memory_format=torch.channels_last)
        self._build_optimizer()
        self._ddp: nn.Module | None = None
        self.ddp_called = False  # set by the wrapper's forward; the engine checks it per phase step
        self.rewrap()

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

    def sync_batchnorm(self) -> None:
        """Use SyncBatchNorm (batch statistics over all ranks; CUDA only) in this network."""
        if self.device.type != "cuda":
            raise ValueError(f"{self.name}: SyncBatchNorm needs CUDA (this network is on {self.device})")
        self.module = nn.SyncBatchNorm.convert_sync_batchnorm(self.module)
        self.rewrap()

    @property
    def wrapped(self) -> nn.Module:
        """What a phase that trains this network calls: its DDP wrapper under torch.distributed
        (gradients averaged over ranks), otherwise the module itself."""
        return self._ddp if self._ddp is not None else self.module

    # -- optimizer ---------------------------------------------------------------------------
    def parameters(self) -> list[torch.Tensor]:
        """The tensors the optimizer updates."""
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def _plan(self, only: list[str] | None = None) -> GroupPlan:
        return plan_groups(self.module, self.spec.groups, self.spec.lr, self.spec.weight_decay, only=only)

    def _build_optimizer(self) -> None:
        self.plan = self._plan()
        audit_groups(self.module, self.plan.groups)
        self.optimizer = build_optimizer(self.spec.optimizer, self.plan.groups, **self.spec.options)
        self.scheduler = build_scheduler(self.optimizer, self.spec.schedule, self.total_steps)

    def rebuild_optimizer(self) -> None:
        """A new optimizer from the rules (moments and momentum cleared); the schedule keeps its step."""
        t = self.scheduler.t if isinstance(self.scheduler, FactorScheduler) else 0
        self._build_optimizer()
        if isinstance(self.scheduler, FactorScheduler):
            self.scheduler.load_state_dict({"t": t})

    def set_lr(self, lr: float, group: str | None = None) -> None:
        """Change the LR in place, keeping optimizer state (momentum, Adam moments) untouched.

        With ``group`` the named group's base LR becomes ``lr``; without, every group is scaled
        so the network's base LR becomes ``lr`` and rule multipliers keep their ratios. A
        running schedule continues from the new base.
        """
        names = [g["name"] for g in self.optimizer.param_groups]
        if group is not None and group not in names:
            raise ValueError(f"{self.name}: no parameter group {group!r} (groups: {', '.join(names)})")
        scale = lr / self.spec.lr if group is None else None
        if group is None:
            self.spec = replace(self.spec, lr=lr)
        for g in self.optimizer.param_groups:
            if group is not None and g["name"] != group:
                continue
            base = g.get("initial_lr", g["lr"])
            new_base = lr if scale is None else base * scale
            factor = g["lr"] / base if base else 1.0
            g["initial_lr"] = new_base
            g["lr"] = new_base * factor

    # -- freezing ----------------------------------------------------------------------------
    def freeze(self, patterns: str | list[str] | None = None, modules: list[nn.Module] = (),
               first_n: int | None = None) -> list[str]:
        """Freeze the selected parameters and take them out of the optimizer (their state too)."""
        names = set(set_trainable(self.module, False, patterns, modules, first_n))
        for g in self.optimizer.param_groups:
            keep = [(n, p) for n, p in zip(g["names"], g["params"]) if n not in names]
            for n, p in zip(g["names"], g["params"]):
                if n in names:
                    self.optimizer.state.pop(p, None)
            g["names"], g["params"] = [n for n, _ in keep], [p for _, p in keep]
        self.optimizer.param_groups[:] = [g for g in self.optimizer.param_groups if g["params"]]
        audit_groups(self.module, self.optimizer.param_groups)
        self.rewrap()
        return sorted(names)

    def unfreeze(self, patterns: str | list[str] | None = None, modules: list[nn.Module] = (),
                 first_n: int | None = None) -> list[str]:
        """Unfreeze and add the parameters to the optimizer with their rule-derived settings.

        A parameter joins the existing group its rules lead to, or a new group
        (``add_param_group``) that the schedule takes over at its current step.
        """
        before = {n for n, _, _ in named_trainable(self.module)}
        set_trainable(self.module, True, patterns, modules, first_n)
        new = [n for n, _, _ in named_trainable(self.module) if n not in before]
        if not new:
            return []
        existing = {g["name"]: g for g in self.optimizer.param_groups}
        for g in self._plan(only=new).groups:
            if g["name"] in existing:
                existing[g["name"]]["params"].extend(g["params"])
                existing[g["name"]]["names"].extend(g["names"])
            else:
                self.optimizer.add_param_group(g)
                attach_group(self.scheduler, self.optimizer.param_groups[-1])
        audit_groups(self.module, self.optimizer.param_groups)
        self.rewrap()
        return new

    # -- modes, explain, state ---------------------------------------------------------------
    def train(self, mode: bool = True) -> "Net":
        self.module.train(mode)
        if mode:
            apply_norm_mode(self.module, self.spec.frozen_norm)
        return self

    def explain(self) -> str:
        fired = {r.name: r.rules for r in self.plan.rows}
        rows = []
        where = {n: g for g in self.optimizer.param_groups for n in g["names"]}
        for n, p, _ in named_trainable(self.module, include_frozen=True):
            g = where.get(n)
            rows.append(ParamRow(n, tuple(p.shape), g["name"] if g else "-", g["lr"] if g else 0.0,
                                 g["weight_decay"] if g else 0.0, g is None, fired.get(n, [])))
        plan = GroupPlan(self.optimizer.param_groups, rows, self.plan.unused_rules)
        return plan.explain(f"[{self.name}] {self.spec.optimizer} on {self.device}")

    def report(self) -> str:
        """Everything the build did: parameter groups, which rule initialised what, what loaded."""
        parts = [self.explain()]
        if self.init_report is not None:
            parts.append(f"[{self.name}] init\n" + self.init_report.table())
        if self.load_report is not None:
            parts.append(f"[{self.name}] pretrained {self.spec.pretrained.path}: " + self.load_report.summary())
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
            self._build_optimizer()
            self.rewrap()
        load_named_state_dict(self.optimizer, state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
