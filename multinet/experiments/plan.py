"""What a sweep runs, parsed and checked before any trial starts.

A sweep is a base config (a system, a recipe, ``key=value`` overrides) and what varies around it:
seeds (``--seeds 0-4``), a grid (``key=v1,v2,v3`` items: every combination is one config) or a
search (``--search key=loguniform:1e-5:1e-3``: Optuna samples ``--trials`` configs). Each config runs
once per seed; its objective is the mean over seeds. Every value reaches the system as the
``key=value`` override a user would type, so the recipe's own checks judge it, here, once per value
(the ends of a range, every choice) before anything trains.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError
from ..run.resume import resolve

__all__ = ["Dist", "SweepPlan", "parse_seeds", "parse_dist", "split_items", "KINDS"]

KINDS = ("loguniform", "uniform", "int", "categorical")


@dataclass(frozen=True)
class Dist:
    """A search distribution over one recipe key: ``loguniform`` / ``uniform`` / ``int`` between
    ``low`` and ``high``, or ``categorical`` over ``choices`` (written as the recipe would)."""

    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple[str, ...] = ()

    def values(self) -> list[Any]:
        """The values that stand for the whole range in a check: its ends, or every choice."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]

    def holds(self, value: Any) -> bool:
        """Whether ``value`` is one this distribution can give (a value read back from a study)."""
        if self.kind == "categorical":
            return isinstance(value, str) and value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return self.low <= value <= self.high and (self.kind != "int" or isinstance(value, int))

    def suggest(self, trial: Any, key: str) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(key, int(self.low), int(self.high))
        return trial.suggest_float(key, self.low, self.high, log=self.kind == "loguniform")


def parse_dist(text: str) -> tuple[str, Dist]:
    """``key=loguniform:1e-5:1e-3`` / ``uniform:0:1`` / ``int:1:8`` / ``categorical:a,b,c``."""
    key, eq, spec = text.partition("=")
    kind, _, rest = spec.partition(":")
    if not eq or not key or kind not in KINDS or not rest:
        raise ConfigError(f"--search {text!r}: write key=KIND:..., KIND one of {', '.join(KINDS)} "
                          "(loguniform:1e-5:1e-3, uniform:0:1, int:1:8, categorical:a,b,c)")
    if kind == "categorical":
        return key, Dist(kind, choices=tuple(c for c in rest.split(",") if c))
    parts = rest.split(":")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--search {text!r}: {kind} takes LOW:HIGH numbers") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high) or (kind == "loguniform" and low <= 0) \
            or (kind == "int" and (low != int(low) or high != int(high))):
        raise ConfigError(f"--search {text!r}: need LOW < HIGH" + (", both > 0" if kind == "loguniform" else "")
                          + (", whole numbers" if kind == "int" else ""))
    return key, Dist(kind, low, high)


def parse_seeds(text: str) -> list[int]:
    """``0-4`` → 0..4; ``0,3,7``; ``5``."""
    seeds: list[int] = []
    try:
        ranges = [(int(a), int(b) if dash else int(a))
                  for a, dash, b in (part.strip().partition("-") for part in text.split(","))]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: write 0-4, 0,3,7 or 5") from None
    for low, high in ranges:
        if low > high:
            raise ConfigError(f"--seeds {text!r}: a range runs from low to high (0-4)")
        seeds += range(low, high + 1)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r}: give each seed once")
    return seeds


def _top_level_split(value: str) -> list[str]:
    """Split on commas outside brackets and quotes (``[3.0,3.5]`` stays one value)."""
    parts, depth, quote, cur = [], 0, "", ""
    for ch in value:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    return parts + [cur]


def split_items(items: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """The command line's items → (recipe and fixed overrides, grid ``{key: [values]}``)."""
    fixed, grid = [], {}
    for item in items:
        key, eq, value = item.partition("=")
        values = _top_level_split(value) if eq else [value]
        if eq and len(values) > 1:
            if any(not v for v in values):
                raise ConfigError(f"{item!r}: an empty value in the grid")
            grid[key] = values
        else:
            fixed.append(item)
    return fixed, grid


@dataclass
class SweepPlan:
    """A sweep: the ``system`` and base ``items`` (recipe and fixed overrides), the ``seeds``, a ``grid``
    (``{key: [values]}``) or a ``search`` (``{key: Dist}``, ``trials`` configs), the ``objective`` figure
    and its ``direction``, ``steps`` per run, the ``pruner`` and the ``sampler``."""
    system: str  # as given on the command line (gan, autoencoder, module:Class)
    items: list[str]  # recipe and fixed overrides
    seeds: list[int] = field(default_factory=lambda: [0])
    grid: dict[str, list[str]] = field(default_factory=dict)
    search: dict[str, Dist] = field(default_factory=dict)
    trials: int = 0  # search only: how many configs
    objective: str = ""
    direction: str = "maximize"
    steps: int | None = None
    pruner: str = ""  # a search's: median (the default), hyperband or none; a grid's runs are never pruned
    nproc: int = 1  # each run a torchrun job of this many processes (not pruned)
    sampler: str = ""  # a search's: tpe (the default), random, gp, qmc or cmaes

    @property
    def chosen_sampler(self) -> str:
        """The sampler a search runs with: the one named, else TPE."""
        return self.sampler or "tpe"

    @property
    def chosen_pruner(self) -> str:
        """The pruner: the one named, else median for a search and none for a grid."""
        return self.pruner or ("median" if self.search else "none")

    @property
    def configs(self) -> int:
        """How many configs this sweep runs (a grid's size, a search's trials)."""
        if self.search:
            return self.trials
        return math.prod(len(v) for v in self.grid.values()) if self.grid else 1

    def definition(self) -> str:
        """What makes two sweeps the same study (JSON): everything that changes what a trial runs."""
        return json.dumps({"system": self.system, "items": self.items, "seeds": self.seeds, "grid": self.grid,
                           "search": {k: [d.kind, d.low, d.high, list(d.choices)] for k, d in self.search.items()},
                           "objective": self.objective, "direction": self.direction, "steps": self.steps,
                           **({"nproc": self.nproc} if self.nproc != 1 else {})},
                          sort_keys=True)

    def continues(self, saved: dict[str, Any]) -> bool:
        """Whether this sweep may join the study whose ``definition()`` is ``saved`` (parsed): the same
        one, or the same grid (or seeds-only sweep) over other seeds, which only queues the runs the
        study lacks, or ranked by another objective (or none). A search's seeds and objective are part
        of it: its trials' values are means of that objective over them."""
        mine, theirs = json.loads(self.definition()), dict(saved)
        if not (self.search or theirs.get("search")):  # and its report may rank by any figure, or none
            for key in ("seeds", "objective", "direction"):
                mine.pop(key, None)
                theirs.pop(key, None)
        return mine == theirs

    def overrides(self, params: dict[str, Any], seed: int) -> list[str]:
        """A run's command-line items: the base, this config's values, its seed and steps."""
        extra = [f"{k}={_literal(v)}" for k, v in params.items()] + [f"seed={seed}"]
        return self.items + extra + ([f"train.steps={self.steps}"] if self.steps is not None else [])

    def check(self, system: type) -> Any:
        """Build the base config and one per value each key can take; the first bad one stops the
        sweep in one line. Returns the base config."""
        if self.search and self.grid:
            raise ConfigError("give a grid (key=v1,v2) or a search (--search), not both")
        if self.search and self.trials < 1:
            raise ConfigError("--search needs --trials N (N >= 1)")
        if not self.search and self.trials:
            raise ConfigError("--trials counts the configs of a search: give --search key=KIND:...")
        if not self.search and self.sampler:
            raise ConfigError(f"--sampler {self.sampler}: a grid runs every config it names; samplers are for --search")
        if not self.search and self.pruner not in ("", "none"):
            raise ConfigError(f"--pruner {self.pruner}: a grid's or a seeds sweep's runs all finish, since a config's "
                              "mean needs every seed; pruning is for --search")
        if self.nproc < 1:
            raise ConfigError(f"--nproc {self.nproc}: at least 1")
        if self.direction not in ("maximize", "minimize"):
            raise ConfigError(f"--direction {self.direction!r}: maximize or minimize")
        base = _build(system, self.overrides({}, self.seeds[0]), "")
        varied = {**{k: [str(x) for x in v] for k, v in self.grid.items()},
                  **{k: d.values() for k, d in self.search.items()}}
        for key, values in varied.items():
            kind = self.search[key].kind if key in self.search else None
            for v in values:
                cfg = _build(system, self.overrides({key: v}, self.seeds[0]), f" ({key}={v})")
                if kind in ("loguniform", "uniform", "int"):
                    _check_number(cfg, key, kind)
        if self.objective == "" and self.search:
            raise ConfigError("--objective: a search needs the evaluation figure each trial is scored by (e.g. "
                              "high_quality, classifier_fd, 'curves/<curve>/<dB>'); a grid or seeds sweep reports "
                              "every figure without one")
        return base


def _build(system: type, items: list[str], where: str) -> Any:
    try:
        return resolve(system, items).cfg
    except (ConfigError, ValueError) as e:
        raise ConfigError(f"{e}{where}") from None


def _check_number(cfg: Any, key: str, kind: str) -> None:
    value: Any = cfg
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind == "int" and isinstance(value, float)):
        raise ConfigError(f"--search {key}: a {kind} range on a key of type {type(value).__name__}")


def _literal(v: Any) -> str:
    """A value as an override's right-hand side (floats exactly, strings as typed)."""
    return repr(v) if isinstance(v, float) else str(v)

