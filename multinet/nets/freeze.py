"""Freezing: by name pattern, by module, or the first N parameters; norm layers' mode when frozen.

``frozen(...)`` freezes whole networks for the length of a block and gives every parameter back
its *own* earlier flag, so a part frozen on purpose stays frozen afterwards.
"""
from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

from torch import nn

from .patterns import name_matches

__all__ = ["set_trainable", "frozen", "frozen_tensors", "eval_mode", "apply_norm_mode", "is_frozen_norm", "NORM_MODES",
           "NORM_TYPES"]

NORM_MODES = ("eval", "train")
_BN = nn.modules.batchnorm._BatchNorm
# The norm layers whose running statistics ``frozen_norm`` governs (BatchNorm*, SyncBatchNorm).
NORM_TYPES = (_BN,)


def set_trainable(module: nn.Module, trainable: bool, patterns: str | Iterable[str] | None = None,
                  modules: Iterable[nn.Module] = (), first_n: int | None = None) -> list[str]:
    """Set ``requires_grad`` on the selected parameters; returns their names (tied ones once).

    With no selector at all, every parameter of ``module`` is selected.
    """
    for m in modules:
        if not isinstance(m, nn.Module):
            raise ValueError(f"modules: expected torch.nn.Module objects, got {m!r} (name patterns go first: "
                             "net.freeze(\"a\", \"b\"))")
    targets = {id(p) for m in modules for p in m.parameters()}
    selected, seen = [], set()
    for i, (name, p) in enumerate(module.named_parameters()):
        if id(p) in seen:
            continue
        seen.add(id(p))
        hit = (patterns is None and not targets and first_n is None)
        hit = hit or (patterns is not None and name_matches(patterns, name))
        hit = hit or id(p) in targets or (first_n is not None and len(seen) <= first_n)
        if hit:
            p.requires_grad_(trainable)
            selected.append(name)
    if patterns is not None and not selected and not targets and first_n is None:
        raise ValueError(f"freeze pattern {patterns!r} matches no parameter")
    return selected


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[list[tuple[nn.Parameter, bool]]]:
    """Freeze ``modules`` inside the block; afterwards every parameter gets its own flag back.

    Yields the saved (parameter, own flag) pairs.
    """
    with frozen_tensors([p for m in modules for p in m.parameters()]) as saved:
        yield saved


@contextlib.contextmanager
def frozen_tensors(params: list[nn.Parameter]) -> Iterator[list[tuple[nn.Parameter, bool]]]:
    """``frozen`` for a list of parameters already made (a loop that freezes the same ones every step)."""
    saved = [(p, p.requires_grad) for p in params]
    for p, _ in saved:
        p.requires_grad_(False)
    try:
        yield saved
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode for the length of a block, then back in the mode it had."""
    was = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was)


def apply_norm_mode(module: nn.Module, mode: str) -> list[str]:
    """Put batch-norm layers whose parameters are all frozen in eval mode (``mode="eval"``).

    Frozen affine weights do not stop running statistics from moving in train mode (seed 004's
    BN lesson); ``eval`` fixes them too, ``train`` keeps updating them. Call after ``.train()``.
    """
    if mode not in NORM_MODES:
        raise ValueError(f"frozen_norm {mode!r} unknown (valid: {', '.join(NORM_MODES)})")
    changed = []
    if mode == "train":
        return changed
    for name, m in module.named_modules():
        if isinstance(m, _BN) and m.training and is_frozen_norm(m):
            m.eval()
            changed.append(name)
    return changed


def is_frozen_norm(m: nn.Module) -> bool:
    """A norm layer with affine parameters, all of them frozen."""
    params = list(m.parameters(recurse=False))
    return bool(params) and not any(p.requires_grad for p in params)
