"""Range checks for config dataclasses: ``FieldError`` names the field, and ``from_dict`` puts the
full recipe key in front of it, so a bad value reads the same from a recipe and from Python."""
from __future__ import annotations

from typing import Any

__all__ = ["FieldError", "within", "at_least", "error_line"]


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
