"""What a study's trials hold, read back as data: their config and seed, their run folder, the
process that ran them, their training times.

A study can be written by anyone who can write its storage (``sweep.db`` in a folder handed
over, a database shared by several people's workers), so nothing read from it is used as it is:
every value is type- and range-checked against the sweep being run now, with one line naming the
trial on failure, and a trial's run folder is never read from the study at all. It is derived:
``trials/<NNNN>`` for config NNNN, where a grid's config number is the position of its values in
the grid and a search's is the number of the trial that first ran it (a retried trial's
``retries`` leads back to it). The folder must resolve inside ``--out`` (no link out of it).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..config import MAX_SEED, ConfigError, error_line
from ..handlers.timer import MAX_SECONDS
from ..state.runfiles import inside
from .plan import SweepPlan

__all__ = ["params_of", "drawn", "live_trials", "folder_of", "config_folder", "run_folder", "trial_attr", "trial_seconds", "TRIALS"]

TRIALS = "trials"


def trial_attr(t: Any, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    """The user attribute ``key`` of trial ``t``: ``default`` when absent, else a ``kind`` (bools
    are not numbers), or one line naming the trial."""
    if key not in t.user_attrs:
        return default
    value = t.user_attrs[key]
    numbers = kind in (int, float) or (isinstance(kind, tuple) and set(kind) <= {int, float})
    if not isinstance(value, kind) or (numbers and isinstance(value, bool)):
        raise ConfigError(f"study trial {t.number}: its {key!r} is {_shown(value)}, not a "
                          f"{kind.__name__ if isinstance(kind, type) else ' or '.join(k.__name__ for k in kind)}; "
                          "the study was written by something other than this sweep (name a new one with --study)")
    return value


def trial_seconds(t: Any, seed: int) -> float | str:
    """A run's training time as the trial recorded it ("" when it has none): finite, non-negative."""
    value = trial_attr(t, f"seconds/seed-{seed}", (int, float), "")
    if value != "" and not (math.isfinite(value) and 0 <= value <= MAX_SECONDS):
        raise ConfigError(f"study trial {t.number}: its seconds/seed-{seed} {value!r} is not a run's time")
    return value


def params_of(t: Any, plan: SweepPlan) -> dict[str, Any]:
    """A trial's config and, in a grid (or a seeds-only sweep), its seed: what it was queued with
    and what it has drawn, each checked against ``plan`` (a grid's values, a search's ranges)."""
    queued = trial_attr(t, "params", dict, {})
    params = {**queued, **t.params}
    for key, value in [*queued.items(), *t.params.items()]:  # each source checked, not only what wins
        if not _of_sweep(plan, key, value):
            raise ConfigError(f"study trial {t.number}: {key}={_shown(value)} is not a value of this sweep; the study "
                              "was written by something other than it (name a new one with --study or a new --out)")
    if not plan.search and "seed" not in params:
        raise ConfigError(f"study trial {t.number}: has no seed; the study was written by something other than this "
                          "sweep (name a new one with --study or a new --out)")
    return params


def _of_sweep(plan: SweepPlan, key: str, value: Any) -> bool:
    """Whether ``key=value`` is one this sweep can run: a grid's value, a search's, or a grid's seed."""
    if key == "seed" and not plan.search:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEED
    if key in plan.grid:
        return isinstance(value, str) and value in plan.grid[key]
    return key in plan.search and plan.search[key].holds(value)


def live_trials(study: Any) -> list[Any]:
    """The study's trials but those a worker took only to find nothing left (``surplus``)."""
    return [t for t in study.get_trials(deepcopy=False) if not trial_attr(t, "surplus", bool, False)]


def drawn(trial: Any, plan: SweepPlan) -> dict[str, Any]:
    """The config a trial just asked for runs with, drawn through Optuna (a search's sampler, or the
    values a grid trial was queued with) and checked: inside this sweep's grid or ranges, and the
    config it was queued as. A value fixed in the study by anyone else is refused, not trained."""
    try:
        if plan.search:
            params = {k: d.suggest(trial, k) for k, d in plan.search.items()}
        else:
            params = {k: trial.suggest_categorical(k, v) for k, v in plan.grid.items()}
    except ConfigError:  # the sampler's own refusal (a CMA-ES state that is not one): as it is
        raise
    except ValueError as e:  # Optuna: a value fixed in the study outside the distribution
        raise ConfigError(f"study trial {trial.number}: its fixed parameters are not this sweep's "
                          f"({error_line(e, 160)})") from None
    queued = trial_attr(trial, "params", dict, {})
    for key, value in params.items():
        if not _of_sweep(plan, key, value) or (key in queued and queued[key] != value):
            raise ConfigError(f"study trial {trial.number}: {key}={_shown(value)} is not a value of this sweep or not "
                              "the config it was queued as; the study was written by something other than it")
    return params


def folder_of(t: Any, plan: SweepPlan, trials: dict[int, Any]) -> str:
    """The run folder of trial ``t`` (relative to ``--out``), derived as the module says. ``trials``:
    the study's trials by number, to follow a search trial's retries back to its first."""
    if not plan.search:
        params, index = params_of(t, plan), 0
        for key, values in plan.grid.items():  # the position in itertools.product(*grid.values())
            if key not in params:
                raise ConfigError(f"study trial {t.number}: has no value for the grid's {key}")
            index = index * len(values) + values.index(params[key])
        return config_folder(index)
    number, current = t.number, t
    while (retries := trial_attr(current, "retries", int)) is not None:  # numbers fall, so this ends
        if not 0 <= retries < number or retries not in trials or trials[retries].params != t.params:
            raise ConfigError(f"study trial {number}: retries {retries!r} names no earlier trial of this study with "
                              "the same config")
        number, current = retries, trials[retries]
    return config_folder(number)


def run_folder(out: Path, folder: str, seed: int) -> Path:
    """``out/folder/seed-<seed>``, which must resolve inside ``out``."""
    run = out / folder / f"seed-{seed}"
    if not inside(run, out):
        raise ConfigError(f"{run}: resolves outside {out} (a link in the sweep folder); refused")
    return run


def config_folder(number: int) -> str:
    """The run folder of config ``number``, relative to ``--out``."""
    return f"{TRIALS}/{number:04d}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
