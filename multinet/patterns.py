"""Dotted-name globs on segment boundaries and module-type names, shared by every rule kind."""
from __future__ import annotations

import functools
import re
from typing import Iterable

from torch import nn

__all__ = ["name_matches", "resolve_types"]


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
    out = []
    for t in ([types] if isinstance(types, (str, type)) else types):
        if isinstance(t, str):
            short = t.removeprefix("torch.").removeprefix("nn.")
            cls = getattr(nn, short, None) if short.isidentifier() else None
            if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
                raise ValueError(f"module type {t!r} is not a torch.nn module class")
            t = cls
        out.append(t)
    return tuple(out)
