"""Optimizer registry, in-place LR changes, and optimizer state saved and restored by parameter name.

torch restores optimizer state by position: reorder two groups and Adam's moments land in the
wrong tensors without a word. Here every group carries its parameter names (``names``) and its
rule-derived ``name``, and state is matched by those names.
"""
from __future__ import annotations

from typing import Any

import torch

__all__ = ["OPTIMIZERS", "build_optimizer", "named_state_dict", "load_named_state_dict", "carry_state"]

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "rmsprop": torch.optim.RMSprop,
    "lbfgs": torch.optim.LBFGS,  # a closure optimizer: for a manual phase (Phase(update="manual"))
}


def build_optimizer(name: str, groups: list[dict[str, Any]], **kwargs: Any) -> torch.optim.Optimizer:
    """``name`` from OPTIMIZERS; ``kwargs`` (momentum, betas, foreach, fused, ...) go to the class."""
    cls = OPTIMIZERS.get(name.lower())
    if cls is None:
        raise ValueError(f"optimizer {name!r} unknown (valid: {', '.join(OPTIMIZERS)})")
    if not groups:
        raise ValueError("no trainable parameters to optimize (everything is frozen?)")
    try:
        return cls(groups, **kwargs)
    except TypeError as e:  # an option this optimizer does not take
        raise ValueError(f"optimizer {name}: {e}") from None


def named_state_dict(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Optimizer state keyed by parameter name, groups keyed by group name."""
    state: dict[str, Any] = {}
    groups = []
    for g in optimizer.param_groups:
        names = g.get("names")
        if names is None or len(names) != len(g["params"]):
            raise ValueError("optimizer group has no parameter names; build it with multinet groups")
        for n, p in zip(names, g["params"]):
            if p in optimizer.state:
                state[n] = {k: (v.clone() if isinstance(v, torch.Tensor) else v)
                            for k, v in optimizer.state[p].items()}
        groups.append({k: v for k, v in g.items() if k != "params"})
    return {"format": "named", "state": state, "groups": groups}


def load_named_state_dict(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Restore state by parameter name; a group's hyper-parameters by its name. Mismatches raise."""
    if saved.get("format") != "named":
        raise ValueError("optimizer state was not saved by name")
    current = {g["name"]: g for g in optimizer.param_groups}
    saved_groups = {g["name"]: g for g in saved["groups"]}
    if set(current) != set(saved_groups):
        raise ValueError(f"optimizer groups differ: saved {sorted(saved_groups)}, now {sorted(current)}")
    for g in optimizer.param_groups:
        if sorted(g["names"]) != sorted(saved_groups[g["name"]]["names"]):
            raise ValueError(f"optimizer group {g['name']!r} holds other parameters than when saved")
    carry_state(optimizer, saved)


def carry_state(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Put ``saved`` (``named_state_dict``) into ``optimizer`` by name: the state of each parameter
    it holds and the hyper-parameters of each group it has; what ``saved`` lacks starts fresh and
    what ``optimizer`` lacks is left out (re-planned groups after a freeze or an unfreeze)."""
    saved_groups = {g["name"]: g for g in saved["groups"]}
    # Rebuild torch's positional format from names, then let torch cast state to each parameter.
    positional = optimizer.state_dict()
    index = {}
    for pg, g in zip(positional["param_groups"], optimizer.param_groups):
        index.update(zip(g["names"], pg["params"]))
        pg.update({k: v for k, v in saved_groups.get(g["name"], {}).items() if k not in ("names", "name", "params")})
    positional["state"] = {index[n]: st for n, st in saved["state"].items() if n in index}
    optimizer.load_state_dict(positional)
