"""Config dataclass fields: ``key`` declares one with its meaning, ``key_meaning`` reads it back (the
recipe-keys reference is made from these); range checks, where ``FieldError`` names the field and
``from_dict`` puts the full recipe key in front of it, so a bad value reads the same from a recipe
and from Python."""
from __future__ import annotations

import dataclasses
import os
import sys
import traceback
from typing import Any, Callable

__all__ = ["key", "key_meaning", "FieldError", "within", "at_least", "error_line", "user_line", "failure_line",
           "migration_hint"]


def key(default: Any = dataclasses.MISSING, doc: str = "", *,
        factory: Callable[[], Any] | Any = dataclasses.MISSING, **options: Any) -> Any:
    """A config field with its meaning: ``dataclasses.field(default=default, default_factory=factory)``
    with ``doc`` kept in its metadata, where the recipe-keys reference and ``key_meaning`` read it.

    ``steps: int = key(2000, "Total training iterations.")``; a mutable default comes from
    ``factory`` (``key(factory=list, doc="...")``); without either the field is required.
    ``options`` are the other arguments of ``dataclasses.field`` (``init``, ``repr``, ...)."""
    if not isinstance(doc, str) or not doc.strip():
        raise TypeError("key: a config field needs its meaning (doc), a non-empty string")
    metadata = {**(options.pop("metadata", None) or {}), "doc": doc}
    return dataclasses.field(default=default, default_factory=factory, metadata=metadata, **options)


def key_meaning(config: Any, name: str) -> str:
    """The meaning ``key`` gave field ``name`` of the config dataclass ``config`` (a class or an
    instance). ``ValueError`` when there is no such field or it was declared without one."""
    title = getattr(config, "__name__", type(config).__name__)
    for f in dataclasses.fields(config):
        if f.name == name:
            doc = f.metadata.get("doc", "")
            if not doc:
                raise ValueError(f"{title}.{name} has no meaning: declare it with key(default, \"...\")")
            return doc
    raise ValueError(f"{title} has no field {name!r}")


class FieldError(ValueError):
    """A value out of range in a config dataclass; ``from_dict`` reports it under its full key."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name, self.message = name, message


def within(obj: Any, *names: str, low: float, high: float | None = None, open_low: bool = False,
           open_high: bool = False, note: str = "") -> None:
    """Raise ``FieldError`` for the first of ``obj``'s fields ``names`` outside the interval from
    ``low`` to ``high`` (no upper end when ``None``; the ``open_*`` ends exclude that bound).
    ``None`` values pass; NaN never does."""
    if high is None:
        text = f"{'>' if open_low else '>='} {low}"
    else:
        text = f"in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
    for name in names:
        value = getattr(obj, name)
        if value is None:
            continue
        fits = (value > low if open_low else value >= low) and (
            high is None or (value < high if open_high else value <= high))
        if not fits:
            raise FieldError(name, f"must be {text}{note}, got {value}")


def at_least(obj: Any, minimum: float, *names: str, note: str = "") -> None:
    """Raise ``FieldError`` for the first of ``obj``'s fields ``names`` below ``minimum``."""
    within(obj, *names, low=minimum, note=note)


def error_line(e: BaseException, limit: int = 300) -> str:
    """An exception as one line: its message's first non-empty line (or its type's name)."""
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    return (lines[0] if lines else type(e).__name__)[:limit]


def migration_hint(e: BaseException) -> str:
    """For code written against 0.1: ``e`` is an import of a ``multinet`` name, or an attribute of a
    ``multinet`` module, that 1.0 moved or removed; then where to look, else ``""``."""
    name = e.name if isinstance(e, ImportError) else getattr(getattr(e, "obj", None), "__name__", None)
    if isinstance(e, (ImportError, AttributeError)) and isinstance(name, str) and name.split(".")[0] == "multinet":
        return "; a name 1.0 moved or removed: CHANGELOG.md, \"Migrating from 0.1\", says what replaces it"
    return ""


def user_line(e: BaseException) -> str:
    """``file:line`` of the innermost frame of ``e``'s traceback outside multinet and torch (else the
    innermost frame), relative to the working folder when inside it: where the user's code failed."""
    libraries = tuple(os.path.dirname(os.path.abspath(m.__file__)) + os.sep
                      for m in (sys.modules.get("multinet"), sys.modules.get("torch")) if getattr(m, "__file__", None))
    frames = traceback.extract_tb(e.__traceback__)
    own = [f for f in frames if not os.path.abspath(f.filename).startswith(libraries)]
    frame = (own or frames)[-1] if frames else None
    if frame is None:
        return "unknown line"
    path, here = os.path.abspath(frame.filename), os.getcwd() + os.sep
    return f"{path[len(here):] if path.startswith(here) else path}:{frame.lineno}"


def failure_line(e: BaseException) -> str:
    """The user's code failing with ``e``, in one line: its type, its message, where (``user_line``)."""
    return f"{type(e).__name__}: {error_line(e, 200)} [{user_line(e)}]"
