"""Partial loading of pretrained weights (seed 001's three steps, with a report and a floor).

Keys are mapped (strip prefix → rename → add prefix), filtered (include / exclude globs), then
loaded where the name and shape both match. Shape mismatches are skipped and reported. A load
whose coverage of the target falls below ``min_coverage`` raises: a load that matched nothing
never passes silently.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..config import key
from .patterns import name_matches

__all__ = ["PretrainedSpec", "LoadReport", "load_partial"]


@dataclass
class PretrainedSpec:
    """A partial load of weights into a network (``[networks.<name>.pretrained]``): which file, how its
    keys map, how much must load."""

    path: str = key("", "A checkpoint or state-dict file to load partially (empty: none).")
    network: str = key("", "Which network to take from a multinet checkpoint (default: the one of the same name).")
    strip_prefix: str = key("", "First remove this prefix from the file's keys.")
    add_prefix: str = key("", "Then add this prefix to the file's keys.")
    rename: dict[str, str] = key(factory=dict, doc="Then rename the file's keys by prefix (old → new).")
    include: list[str] = key(factory=list, doc="Load only the keys matching these patterns (empty: all).")
    exclude: list[str] = key(factory=list, doc="Never load the keys matching these patterns.")
    min_coverage: float = key(0.0, "Stop unless at least this fraction of the network's tensors loaded.")


@dataclass
class LoadReport:
    """What a partial load did: the keys matched, missing, unexpected and of another shape, and the ``coverage``."""
    matched: list[str]
    missing: list[str]
    unexpected: list[str]
    shape_mismatch: list[tuple[str, tuple[int, ...], tuple[int, ...]]]
    total: int

    @property
    def coverage(self) -> float:
        return len(self.matched) / self.total if self.total else 0.0

    def summary(self) -> str:
        return (f"loaded {len(self.matched)}/{self.total} tensors ({100 * self.coverage:.1f}%), "
                f"missing {len(self.missing)}, unexpected {len(self.unexpected)}, "
                f"shape mismatch {len(self.shape_mismatch)}"
                + "".join(f"\n  shape mismatch {k}: source {tuple(a)} vs target {tuple(b)}"
                          for k, a, b in self.shape_mismatch))


def _source_state(source: str | Path | Mapping[str, Any], network: str) -> Mapping[str, torch.Tensor]:
    if isinstance(source, (str, Path)):
        from ..state.checkpoint import check_checkpoint, is_checkpoint, read_tensors
        path = Path(source)
        data = read_tensors(path)
        if not is_checkpoint(data):  # a plain state_dict (or a wrapped one, below)
            return data
        nets = check_checkpoint(data, path, ("networks",))["networks"]
        if network not in nets:
            raise ValueError(f"{path}: checkpoint has no network {network!r} (has: {', '.join(nets)})")
        return nets[network]["module"]
    if "state_dict" in source and isinstance(source["state_dict"], Mapping):
        return source["state_dict"]
    return source


def load_partial(module: nn.Module, source: str | Path | Mapping[str, Any], network: str = "",
                 strip_prefix: str = "", add_prefix: str = "", rename: Mapping[str, str] | None = None,
                 include: list[str] | None = None, exclude: list[str] | None = None,
                 min_coverage: float = 0.0) -> LoadReport:
    """Copy matching tensors from ``source`` (path, checkpoint or state_dict) into ``module``."""
    state = _source_state(source, network)
    target = module.state_dict()
    # A prefix is a dotted module path: "body." and "body" mean the same (a trailing dot used to match nothing).
    renames = {old.rstrip("."): new.rstrip(".") for old, new in (rename or {}).items()}
    used: set[str] = set()
    mapped: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        if strip_prefix:
            if not name.startswith(strip_prefix):
                continue
            name = name[len(strip_prefix):]
        for old, new in renames.items():
            if name == old or name.startswith(old + "."):
                name = new + name[len(old):]
                used.add(old)
                break
        name = add_prefix + name
        if include and not name_matches(include, name):
            continue
        if exclude and name_matches(exclude, name):
            continue
        mapped[name] = value
    unused = [old for old in renames if old not in used]
    if unused:
        warnings.warn(f"pretrained rename {', '.join(map(repr, unused))} matches no key of the source "
                      f"({', '.join(list(state)[:3])}, ...)", stacklevel=2)
    matched, mismatch = [], []
    for name, value in mapped.items():
        if name not in target:
            continue
        if tuple(value.shape) != tuple(target[name].shape):
            mismatch.append((name, tuple(value.shape), tuple(target[name].shape)))
            continue
        matched.append(name)
    report = LoadReport(matched, [k for k in target if k not in set(matched)],
                        [k for k in mapped if k not in target], mismatch, len(target))
    if not matched or report.coverage < min_coverage:
        raise ValueError(f"pretrained load below the floor ({100 * min_coverage:.0f}%): {report.summary()}")
    with torch.no_grad():
        for name in matched:
            target[name].copy_(mapped[name])
    return report
