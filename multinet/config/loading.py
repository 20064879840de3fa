"""Recipes: TOML files resolved into typed dataclass configs, with ``key=value`` overrides.

Unknown keys and wrong types fail in one line naming the key and what is valid. The resolved
config goes back out as TOML (into the run folder) and as a plain dict (into checkpoints).
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from .fields import FieldError

__all__ = ["ConfigError", "from_dict", "flatten", "to_dict", "to_toml", "parse_overrides", "merge",
           "find_recipe", "load_recipe", "list_recipes"]


class ConfigError(ValueError):
    """A recipe or override problem; its message is one line naming the key."""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list, tuple):
        return f"list of {_type_name(get_args(tp)[0])}" if get_args(tp) else "list"
    if origin is dict:
        return "table"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "table"
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        options = [a for a in args if a is not type(None)]
        # TOML has no null: an optional key is set back to its "none" (as the reference names it) by that word.
        if type(None) in args and (value is None or (value == "none" and str not in options)):
            return None
        tables = [a for a in options if dataclasses.is_dataclass(a) or get_origin(a) is dict]
        if len(options) == 1 or (isinstance(value, dict) and len(tables) == 1):
            # One alternative the value can be (an optional table given as a table): its own
            # error names the key inside it (finetune_channel.dbb), not "expected table or None".
            return _convert(tables[0] if isinstance(value, dict) and tables else options[0], value, key)
        for a in options:
            try:
                return _convert(a, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{key}: {value!r} is not valid (valid: {', '.join(map(str, get_args(tp)))})")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        (inner,) = get_args(tp)[:1] or (Any,)
        return [_convert(inner, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        inner = get_args(tp)[1] if get_args(tp) else Any
        return {k: _convert(inner, v, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        return from_dict(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if not -2 ** 63 <= value < 2 ** 63:  # torch and numpy take 64-bit integers
            raise ConfigError(f"{key}: {value} is out of range (a 64-bit integer)")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        # No setting means anything by inf or NaN: they come from a typo or a computation gone
        # wrong, and pass every range check written as a comparison.
        if isinstance(value, int) and abs(value) > 1e300 or not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported config type {tp!r}")


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ``ConfigError``."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for k, v in data.items():
        key = f"{where}.{k}" if where else k
        if k not in fields:
            gone = getattr(cls, "OLD_KEYS", {}).get(k)  # a 0.1 key: say what became of it
            if gone:
                raise ConfigError(f"unknown key '{key}': {gone} (CHANGELOG.md, \"Migrating from 0.1\")")
            raise ConfigError(f"unknown key '{key}' (valid: {', '.join(fields)})")
        factory = fields[k].default_factory
        if isinstance(v, dict) and factory is not dataclasses.MISSING:
            # A table given in part keeps the rest of the field's own default (a system's
            # ``NetConfig(lr=1e-2)``), not the defaults of the table's class.
            default = factory()
            if dataclasses.is_dataclass(default):
                v = merge(to_dict(default), v)
        kwargs[k] = _convert(hints[k], v, key)
    try:
        obj = cls(**kwargs)
    except FieldError as e:
        raise ConfigError(f"{where}.{e}" if where else str(e)) from None
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where or 'recipe'}: {e}") from None
    return obj


def to_dict(obj: Any) -> Any:
    """A config dataclass (nested ones too) as plain dicts and lists, as a recipe's TOML holds it."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    if callable(v) and hasattr(v, "__qualname__"):  # a function given in Python: written as its import path
        return _toml_value(f"{v.__module__}:{v.__qualname__}")
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_value(k)


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Write a nested dict (tables, arrays of tables, scalars, lists) as TOML. ``None`` is skipped."""
    lines, tables = [], []
    for k, v in data.items():
        if v is None:
            continue
        if isinstance(v, dict) and v:
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            tables.append((k, v))
        else:
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for k, v in tables:
        name = f"{prefix}{_toml_key(k)}"
        if isinstance(v, list):
            for item in v:
                out += f"\n[[{name}]]\n" + to_toml(item, name + ".")
        else:
            out += f"\n[{name}]\n" + to_toml(v, name + ".")
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``a.b=1`` pairs into a nested dict; values are TOML (``lr=1e-3``, ``milestones=[1,2]``),
    falling back to a bare string (``data.name=mnist``)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r} conflicts with another override")
        node[parts[-1]] = value
    return out


def flatten(d: dict[str, Any], sep: str = ".", prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of ``a<sep>b`` keys; an empty dict stays a leaf."""
    flat: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            flat.update(flatten(v, sep, f"{prefix}{k}{sep}"))
        else:
            flat[prefix + k] = v
    return flat


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on top, table by table (nested dicts merge; any other value replaces)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _recipe_dirs() -> list[Any]:
    dirs: list[Any] = []
    try:
        dirs.append(importlib.resources.files("multinet._recipes"))
    except ModuleNotFoundError:
        pass
    dirs.append(Path(__file__).resolve().parents[2] / "recipes")  # a source checkout
    return dirs


def list_recipes(task: str | None = None) -> list[str]:
    """The named recipes, or those whose ``task`` key is ``task`` (``gan``, ``autoencoder``)."""
    names = set()
    for d in _recipe_dirs():
        try:
            names.update(p.name[:-5] for p in d.iterdir() if p.name.endswith(".toml"))
        except (FileNotFoundError, NotADirectoryError):
            continue
    return sorted(n for n in names if task is None or _task_of(n) == task)


def _task_of(name: str) -> str:
    try:
        return str(tomllib.loads(find_recipe(name)[1]).get("task", ""))
    except (ConfigError, tomllib.TOMLDecodeError, OSError):
        return ""


def find_recipe(name_or_path: str) -> tuple[str, str]:
    """Return (source label, TOML text) for a recipe name (``gan_digits``) or a path.

    A path is a recipe file when it is a file or ends in ``.toml``; anything else that exists (a
    folder named like a recipe in the working directory) never hides a shipped recipe."""
    p = Path(name_or_path)
    if p.is_file() or p.suffix == ".toml":
        if p.is_dir():
            raise ConfigError(f"recipe file {p} is a folder, not a file")
        if not p.is_file():
            raise ConfigError(f"recipe file {p} not found")
        try:
            return str(p), p.read_text()
        except UnicodeDecodeError:
            raise ConfigError(f"recipe file {p}: not a text (TOML) file") from None
    for d in _recipe_dirs():
        f = d / f"{name_or_path}.toml"
        if f.is_file():
            return name_or_path, f.read_text()
    named = ", ".join(list_recipes())
    if p.is_dir():
        raise ConfigError(f"recipe {name_or_path!r} is a folder, not a recipe file (named recipes: {named})")
    raise ConfigError(f"recipe {name_or_path!r} not found (named recipes: {named})")


def load_recipe(cls: type, name_or_path: str, overrides: list[str] | None = None) -> Any:
    """The config of class ``cls`` from a recipe (a shipped name or a ``.toml`` path) and ``key=value``
    ``overrides``. Raises ``ConfigError`` with one line naming the key on an unknown key, a wrong type
    or a value out of range.

        cfg = load_recipe(GanRecipe, "gan_digits", ["networks.generator.lr=1e-4"])"""
    label, text = find_recipe(name_or_path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"recipe {label}: invalid TOML: {e}") from None
    return from_dict(cls, merge(raw, parse_overrides(overrides or [])))
