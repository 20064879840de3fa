"""Objects named by import path in a recipe (``"my_pkg.nets:Generator"``), and the trust boundary.

A checkpoint is read with ``weights_only=True`` and never imports anything. A recipe (or the
config stored in a checkpoint, when a run is rebuilt from it) may name classes and functions by
import path: those modules are imported, which runs their import-time code as any import would,
and the object is used only if it is what the key promises (a subclass of the expected base, or
a function written in Python), so a path such as ``"subprocess:run"`` is refused before it is called.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

__all__ = ["import_object", "import_class", "import_function", "object_path"]


def import_object(path: str, key: str = "class_path") -> Any:
    """``"package.module:Name"`` (or ``"package.module.Name"``) → the object; one-line errors."""
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"{key}: expected 'package.module:Name', got {path!r}")
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{key}: expected 'package.module:Name', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"{key}: cannot import {module_name!r} for {path!r} ({e})") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{key}: {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    return obj


def import_class(path: str, base: type, key: str = "class_path") -> type:
    """The class at ``path``, which must subclass ``base``."""
    obj = import_object(path, key)
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise ValueError(f"{key}: {path!r} is not a subclass of {base.__module__}.{base.__qualname__}")
    return obj


def import_function(path: str, key: str = "fn") -> Callable[..., Any]:
    """The Python function at ``path`` (builtins and other callables are refused)."""
    obj = import_object(path, key)
    if not inspect.isfunction(obj):
        raise ValueError(f"{key}: {path!r} is not a Python function")
    return obj


def object_path(obj: Any) -> str:
    """The import path of a class or function (``module:qualname``)."""
    return f"{obj.__module__}:{obj.__qualname__}"
