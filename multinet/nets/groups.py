"""Parameter-group rules: pure functions from a module to optimizer parameter groups, with an audit.

Every trainable parameter starts from the network's base settings (lr, weight decay, optimizer
options). Rules apply in order; a rule that matches sets ``lr`` / ``weight_decay`` / options and
then multiplies by ``lr_mult`` / ``wd_mult``, so multipliers compose. Parameters that end with
identical settings share one group. Frozen parameters are in no group.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from ..config import FieldError, key
from .patterns import NORM_LAYERS, name_matches, resolve_types, type_names

__all__ = ["GroupRule", "GroupPlan", "plan_groups", "group_preset", "PLAIN_PRESETS", "GROUP_PRESETS", "audit_groups", "named_trainable",
           "PARAM_KINDS"]

PARAM_KINDS = ("weight", "bias", "norm", "1d")


@dataclass
class GroupRule:
    """Settings for the parameters matched by name pattern, owning-module type and/or kind; plain
    values, so a recipe's ``[[networks.<name>.groups]]`` table is one of these as it is."""

    name: str = key("", "The group's name in reports and optimizer state (default: made from the rule).")
    pattern: str | list[str] = key("", "Dotted parameter-name pattern(s) (`*` one level, `**` any); empty = any.")
    types: list[str] = key(factory=list, doc="Types of the module that owns the parameter: `torch.nn` class names "
                                             "(`\"Linear\"`, `\"nn.Linear\"`, `\"torch.nn.Linear\"`), import paths "
                                             "of your own or, from Python, classes; empty = any.")
    kind: str = key("", "The parameters' kind: `weight` / `bias` (by attribute name), `norm` (parameters of a "
                        "normalisation layer), `1d` (`ndim <= 1`: biases, norm affines, scalars); empty = any.")
    lr: float | None = key(None, "A learning rate that replaces the network's for these parameters (then `lr_mult` "
                                 "scales it); none = the network's.")
    lr_mult: float = key(1.0, "Multiplies these parameters' learning rate (the multipliers of several rules "
                              "compose).")
    weight_decay: float | None = key(None, "A weight decay that replaces the network's for these parameters (then "
                                           "`wd_mult` scales it); none = the network's.")
    wd_mult: float = key(1.0, "Multiplies these parameters' weight decay.")
    momentum: float | None = key(None, "A momentum that replaces the optimizer's for these parameters; none = the "
                                       "optimizer's.")
    betas: list[float] = key(factory=list, doc="Adam / AdamW betas that replace the optimizer's for these parameters; "
                                               "empty = the optimizer's.")

    def __post_init__(self) -> None:
        if self.kind and self.kind not in PARAM_KINDS:
            raise ValueError(f"group kind {self.kind!r} unknown (valid: {', '.join(PARAM_KINDS)})")
        self.types = type_names(self.types)
        for option in ("lr", "lr_mult", "weight_decay", "wd_mult", "momentum"):
            value = getattr(self, option)
            if value is not None and not value >= 0:
                raise FieldError(option, f"must be >= 0, got {value}")
        if self.betas and (len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas)):
            raise FieldError("betas", f"must be two numbers in [0, 1), got {self.betas}")
        if not self.name:
            bits = [str(self.pattern), self.kind, ",".join(getattr(t, "__name__", str(t)) for t in self.types)]
            self.name = "+".join(b for b in bits if b) or "all"

    @property
    def options(self) -> dict[str, Any]:
        """The optimizer options this rule sets."""
        out: dict[str, Any] = {}
        if self.momentum is not None:
            out["momentum"] = self.momentum
        if self.betas:
            out["betas"] = tuple(self.betas)
        return out

    def matches(self, pname: str, param: torch.Tensor, owner: nn.Module) -> bool:
        if self.pattern and not name_matches(self.pattern, pname):
            return False
        if self.types and not isinstance(owner, resolve_types(self.types)):
            return False
        leaf = pname.rsplit(".", 1)[-1]
        if self.kind == "weight" and leaf != "weight":
            return False
        if self.kind == "bias" and leaf != "bias":
            return False
        if self.kind == "norm" and not isinstance(owner, NORM_LAYERS):
            return False
        if self.kind == "1d" and param.ndim > 1:
            return False
        return True


def named_trainable(module: nn.Module, include_frozen: bool = False) -> Iterator[tuple[str, torch.Tensor, nn.Module]]:
    """(name, parameter, owning module) for each distinct parameter; tied parameters appear once."""
    seen: set[int] = set()
    for mname, m in module.named_modules():
        for pname, p in m.named_parameters(recurse=False):
            if id(p) in seen or (not p.requires_grad and not include_frozen):
                continue
            seen.add(id(p))
            yield (f"{mname}.{pname}" if mname else pname), p, m


def _freeze_key(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze_key(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze_key(v)) for k, v in value.items()))
    return value


@dataclass
class ParamRow:
    name: str
    shape: tuple[int, ...]
    group: str
    lr: float
    weight_decay: float
    frozen: bool
    rules: list[str]


@dataclass
class GroupPlan:
    """Optimizer groups plus one explanation row per parameter and the rules that matched nothing."""

    groups: list[dict[str, Any]]
    rows: list[ParamRow]
    unused_rules: list[str]

    def explain(self, title: str = "") -> str:
        head = ["parameter", "shape", "group", "lr", "weight_decay", "frozen", "rules"]
        body = [[r.name, "x".join(map(str, r.shape)) or "scalar", r.group, f"{r.lr:.4g}",
                 f"{r.weight_decay:.4g}", "yes" if r.frozen else "", ",".join(r.rules)] for r in self.rows]
        widths = [max(len(x) for x in col) for col in zip(head, *body)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        lines = ([title] if title else []) + [fmt.format(*head)] + [fmt.format(*b) for b in body]
        lines.append(f"{len(self.groups)} group(s): " + "; ".join(
            f"{g['name']} ({len(g['params'])} tensors, {sum(p.numel() for p in g['params']):,} values)"
            for g in self.groups))
        if self.unused_rules:
            lines.append("rules that matched nothing: " + ", ".join(self.unused_rules))
        return "\n".join(lines)


def plan_groups(module: nn.Module, rules: Iterable[GroupRule], lr: float, weight_decay: float = 0.0,
                options: dict[str, Any] | None = None, only: Iterable[str] | None = None) -> GroupPlan:
    """Resolve ``rules`` over ``module``'s trainable parameters into optimizer groups.

    ``only`` restricts the plan to the named parameters (used when unfreezing mid-training).
    """
    rules = list(rules)
    options = dict(options or {})
    only_set = set(only) if only is not None else None
    fired_any: set[str] = set()
    buckets: dict[Any, dict[str, Any]] = {}
    rows: list[ParamRow] = []
    for pname, p, owner in named_trainable(module, include_frozen=True):
        if not p.requires_grad:
            rows.append(ParamRow(pname, tuple(p.shape), "-", 0.0, 0.0, True, []))
            continue
        if only_set is not None and pname not in only_set:
            continue
        p_lr, p_wd, p_opts, fired = lr, weight_decay, dict(options), []
        for rule in rules:
            if not rule.matches(pname, p, owner):
                continue
            fired.append(rule.name)
            p_lr = (rule.lr if rule.lr is not None else p_lr) * rule.lr_mult
            p_wd = (rule.weight_decay if rule.weight_decay is not None else p_wd) * rule.wd_mult
            p_opts.update(rule.options)
        fired_any.update(fired)
        settings = (p_lr, p_wd, _freeze_key(p_opts))
        group = buckets.get(settings)
        if group is None:
            group = {"params": [], "names": [], "lr": p_lr, "weight_decay": p_wd, **p_opts,
                     "name": "+".join(fired) or "default"}
            buckets[settings] = group
        group["params"].append(p)
        group["names"].append(pname)
        rows.append(ParamRow(pname, tuple(p.shape), "", p_lr, p_wd, False, fired))
    groups = list(buckets.values())
    _unique_group_names(groups)
    by_param = {n: g["name"] for g in groups for n in g["names"]}
    for row in rows:
        if not row.frozen:
            row.group = by_param[row.name]
    unused = [r.name for r in rules if r.name not in fired_any]
    return GroupPlan(groups, rows, unused)


def _unique_group_names(groups: list[dict[str, Any]]) -> None:
    seen: dict[str, int] = {}
    for g in groups:
        base = g["name"]
        if base in seen:
            seen[base] += 1
            g["name"] = f"{base}#{seen[base]}"
        else:
            seen[base] = 0


PLAIN_PRESETS = ("caffe_bias", "no_decay_norm_bias")  # the presets that take no arguments (group_presets)
GROUP_PRESETS = (*PLAIN_PRESETS, "submodule_mult", "layer_decay")


def group_preset(name: str, **kw: Any) -> list[GroupRule]:
    """Common rule sets.

    - ``caffe_bias``: biases learn at 2× the rate with no weight decay (seed 000).
    - ``no_decay_norm_bias``: no weight decay on biases, norm affines and other 1-D parameters.
    - ``submodule_mult``: ``pattern`` at ``mult``× the base LR (seed 001's ``fc3`` × 10).
    - ``layer_decay``: ``layers`` listed from input to output; layer i gets ``decay ** (L-1-i)``.
    """
    if name == "caffe_bias":
        return [GroupRule(name="caffe_bias", kind="bias", lr_mult=2.0, weight_decay=0.0)]
    if name == "no_decay_norm_bias":
        return [GroupRule(name="no_decay", kind="1d", weight_decay=0.0)]
    if name == "submodule_mult":
        return [GroupRule(name=f"{kw['pattern']}x{kw.get('mult', 10.0):g}", pattern=kw["pattern"],
                          lr_mult=float(kw.get("mult", 10.0)))]
    if name == "layer_decay":
        layers, decay = list(kw["layers"]), float(kw["decay"])
        return [GroupRule(name=f"layer{i}", pattern=pat, lr_mult=decay ** (len(layers) - 1 - i))
                for i, pat in enumerate(layers)]
    raise ValueError(f"group preset {name!r} unknown (valid: {', '.join(GROUP_PRESETS)})")


class AuditError(ValueError):
    pass


def audit_groups(module: nn.Module, param_groups: list[dict[str, Any]]) -> None:
    """Every trainable parameter in exactly one group; no frozen parameter in any group."""
    names = {id(p): n for n, p, _ in named_trainable(module, include_frozen=True)}
    count: dict[int, int] = {}
    foreign = 0
    for g in param_groups:
        for p in g["params"]:
            count[id(p)] = count.get(id(p), 0) + 1
            foreign += id(p) not in names
    problems = []
    trainable = {i for n, p, _ in named_trainable(module) for i in [id(p)]}
    missing = [names[i] for i in trainable if i not in count]
    twice = [names[i] for i, c in count.items() if c > 1 and i in names]
    frozen_in = [names[i] for i in count if i in names and i not in trainable]
    if missing:
        problems.append("trainable parameters in no group: " + ", ".join(sorted(missing)))
    if twice:
        problems.append("parameters in more than one group: " + ", ".join(sorted(twice)))
    if frozen_in:
        problems.append("frozen parameters in a group: " + ", ".join(sorted(frozen_in)))
    if foreign:
        problems.append(f"{foreign} optimizer tensor(s) do not belong to the network")
    if problems:
        raise AuditError("; ".join(problems))
