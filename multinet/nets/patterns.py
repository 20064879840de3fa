"""Dotted-name globs on segment boundaries and module-type names, shared by every rule kind."""
from __future__ import annotations

import functools
import re
import sys
from typing import Any, Iterable

from torch import nn

__all__ = ["name_matches", "resolve_types", "type_names", "NORM_LAYERS"]

# The normalization layers whose weight and bias are a norm's affine: what init rules and the "norm"
# parameter kind of group rules mean by a norm (BatchNorm*, InstanceNorm*, GroupNorm, LayerNorm).
# Not ``freeze.NORM_TYPES``: those are the layers with running statistics (``frozen_norm``).
NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    parts = []
    for seg in pattern.split("."):
        if seg == "**":
            parts.append(r"(?:[^.]+(?:\.[^.]+)*)?")
            continue
        out = ""
        for ch in seg:
            out += "[^.]*" if ch == "*" else "[^.]" if ch == "?" else re.escape(ch)
        parts.append(out)
    body = r"\.".join(parts).replace(r"(?:[^.]+(?:\.[^.]+)*)?\.", r"(?:[^.]+\.)*")
    # A pattern names a module or a parameter: it matches the name itself or anything under it,
    # never a sibling whose name merely starts the same way ("layer1" is not "layer10").
    return re.compile(rf"^{body}(?:\..*)?$")


def name_matches(pattern: str | Iterable[str], name: str) -> bool:
    """True when ``name`` (e.g. ``features.0.weight``) lies at or under ``pattern``.

    ``*`` matches within one segment, ``**`` any number of segments, ``?`` one character.
    """
    if isinstance(pattern, str):
        return bool(_compile(pattern).match(name))
    return any(_compile(p).match(name) for p in pattern)


def resolve_types(types: Iterable[type | str]) -> tuple[type, ...]:
    """Module classes from classes, ``torch.nn`` names (``"Conv2d"``, ``"nn.Conv2d"``,
    ``"torch.nn.Conv2d"`` alike) or import paths of your own (``"my_pkg.blocks:ResBlock"``);
    matching stays ``isinstance``."""
    return tuple(_resolve(t) for t in ([types] if isinstance(types, (str, type)) else types))


def type_names(types: Iterable[type | str]) -> list[str]:
    """``types`` as a rule keeps them, so that it saves to a recipe and a checkpoint as text:
    ``torch.nn`` classes by their name, your own by import path (``module:Class``); a name that
    is not a module class, or a class that cannot be named (defined inside a function), raises
    here, when the rule is made."""
    out: list[str] = []
    for t in ([types] if isinstance(types, (str, type)) else types):
        cls = _resolve(t)
        if getattr(nn, cls.__name__, None) is cls:
            out.append(cls.__name__)
        elif "<locals>" in cls.__qualname__:
            raise ValueError(f"module type {cls.__qualname__} is defined inside a function, so a saved run cannot name "
                             "it: define it at a module's top level")
        else:
            out.append(f"{cls.__module__}:{cls.__qualname__}")
    return out


@functools.lru_cache(maxsize=256)
def _resolve(t: type | str) -> type:
    if isinstance(t, str) and ":" in t:
        return _own_class(t)
    if isinstance(t, str):
        short = t.removeprefix("torch.").removeprefix("nn.")
        cls = getattr(nn, short, None) if short.isidentifier() else None
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ValueError(f"module type {t!r} is not a torch.nn module class")
        return cls
    if not (isinstance(t, type) and issubclass(t, nn.Module)):
        raise ValueError(f"module type {t!r} is not a torch.nn module class")
    return t


def _own_class(path: str) -> type:
    """A module class of your own by import path. A type is only compared with (``isinstance``),
    never built, so one whose module is imported already (by the system you named) is taken from
    it; otherwise it is imported under the trust boundary (``multinet.state.imports``)."""
    from ..state.imports import import_class
    module, _, name = path.partition(":")
    obj: Any = sys.modules.get(module)
    for part in name.split(".") if obj is not None else ():
        obj = getattr(obj, part, None)
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        return obj
    return import_class(path, nn.Module, "types")
