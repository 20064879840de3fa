"""Dotted-name globs on segment boundaries and module-type names, shared by every rule kind."""
from __future__ import annotations

import functools
import re
from typing import Any, Iterable

from torch import nn

__all__ = ["name_matches", "resolve_types", "type_names"]


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
    """Module classes from classes or ``torch.nn`` names (``"Conv2d"``, ``"nn.Conv2d"``,
    ``"torch.nn.Conv2d"`` alike); matching stays ``isinstance``."""
    return tuple(_resolve(t) for t in ([types] if isinstance(types, (str, type)) else types))


def type_names(types: Iterable[type | str]) -> list[Any]:
    """``types`` as a rule keeps them: ``torch.nn`` classes by their name (so a rule written in
    Python saves to a recipe as one written there), other classes as they are; a name that is not
    a ``torch.nn`` module class raises here, when the rule is made."""
    out: list[Any] = []
    for t in ([types] if isinstance(types, (str, type)) else types):
        cls = _resolve(t)
        out.append(cls.__name__ if getattr(nn, cls.__name__, None) is cls else cls)
    return out


@functools.lru_cache(maxsize=256)
def _resolve(t: type | str) -> type:
    if isinstance(t, str):
        short = t.removeprefix("torch.").removeprefix("nn.")
        cls = getattr(nn, short, None) if short.isidentifier() else None
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ValueError(f"module type {t!r} is not a torch.nn module class")
        return cls
    if not (isinstance(t, type) and issubclass(t, nn.Module)):
        raise ValueError(f"module type {t!r} is not a torch.nn module class")
    return t
