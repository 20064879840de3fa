"""The module paths from before the layered packages (``multinet.checkpoint``, ``multinet.runner``,
...) keep working for a while: importing one gives the module at its new home, with a
``FutureWarning`` naming that home (CHANGELOG, "A package tree that shows the layers").

A finder on ``sys.meta_path`` answers for exactly these names and hands back the module already
imported from its new path, so there is one module object under two names, never two copies."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any

__all__ = ["MOVED", "install"]

MOVED = {
    "multinet.checkpoint": "multinet.state.checkpoint",
    "multinet.imports": "multinet.state.imports",
    "multinet.streams": "multinet.state.streams",
    "multinet.export": "multinet.state.export",
    "multinet.patterns": "multinet.nets.patterns",
    "multinet.groups": "multinet.nets.groups",
    "multinet.weights": "multinet.nets.weights",
    "multinet.freeze": "multinet.nets.freeze",
    "multinet.pretrained": "multinet.nets.pretrained",
    "multinet.optimizers": "multinet.nets.optimizers",
    "multinet.schedules": "multinet.nets.schedules",
    "multinet.netspec": "multinet.nets.spec",
    "multinet.netconfig": "multinet.nets.spec",
    "multinet.streamed": "multinet.data.files",
    "multinet.phase": "multinet.engine.phase",
    "multinet.events": "multinet.engine.events",
    "multinet.divergence": "multinet.engine.divergence",
    "multinet.trackers": "multinet.tracking.backends",
    "multinet.system": "multinet.run.system",
    "multinet.runner": "multinet.run.runner",
    "multinet.saved": "multinet.run.saved",
    "multinet.runlock": "multinet.run.lock",
    "multinet.launch": "multinet.run.resume",
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec: Any) -> ModuleType:
        warnings.warn(f"{spec.name} is now {MOVED[spec.name]}; the old path will go in a later release",
                      FutureWarning, stacklevel=2)
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        pass  # already executed under its new name


def install() -> None:
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
