"""From command-line items to a run: the resolved config, the run folder and, on resume, the checkpoint.

``RECIPE key=value ...`` → the system's typed config (unknown keys and bad values stop with one
line naming the key). ``--resume [CKPT]`` → the checkpoint's own config with the overrides a
resumed run can honour (``RunConfig.RESUME_MAY_CHANGE`` plus the system's own); anything else is
refused, since the saved weights and optimizer state carry on as they are.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ConfigError, flatten, from_dict, load_recipe, merge, parse_overrides, to_dict
from ..state.checkpoint import load_checkpoint

__all__ = ["auto_resume", "Launch", "Resume", "open_resume", "resolve", "resume_paths", "checkpoint_run", "check_resume_overrides", "saved_config", "APPLIED_ON_RESUME", "lr_changes",
           "trackers_left", "FROM_NOW"]


@dataclass
class Resume:
    """A resume, resolved once for the command line and the ``Runner`` alike: the checkpoint's
    path, the run folder it writes into, the checkpoint, and the config it was trained with."""

    path: Path
    out: Path
    checkpoint: dict[str, Any]
    saved_cfg: Any


@dataclass
class Launch:
    """A run as the command line resolved it: its config, its folder and, on resume, the ``Resume``."""

    cfg: Any
    out: Path
    resume: Resume | None = None


def open_resume(system: type, resume: str | Path | bool, out: str | Path | None,
                allow_no_checksum: bool = False) -> Resume:
    """Read the checkpoint a resume continues (``resume_paths`` says which) and its config."""
    path, run = resume_paths(resume, out)
    ckpt = load_checkpoint(path, allow_no_checksum=allow_no_checksum)
    return Resume(path, run, ckpt, saved_config(system, ckpt, path))


# Keys a saved file never sets, since each makes this machine send or fetch data: where a run's
# numbers go (trackers and their addresses) and whether a dataset is downloaded. A resume, and
# evaluate / sample / export, take them from what the user gives now, else their defaults (no
# tracker beside TensorBoard, no download): no saved file makes this machine contact a server.
FROM_NOW = ("train.trackers", "train.mlflow_uri", "train.mlflow_experiment", "train.wandb_project", "train.wandb_mode",
            "data.download")

# Keys a resume changes by acting on the restored state, not only by accepting them: a network's
# base learning rate rescales every group of its optimizer (``Net.rescale_lr``).
APPLIED_ON_RESUME = re.compile(r"networks\.[^.]+\.lr")


def check_resume_overrides(system: type, saved: Any, new: Any) -> None:
    """Refuse changes a resumed run cannot honour (both configs resolved with the same defaults)."""
    may = tuple(system.Config.RESUME_MAY_CHANGE) + tuple(system.resume_may_change)
    old, now = flatten(to_dict(saved)), flatten(to_dict(new))
    for key in sorted(set(old) | set(now)):
        if old.get(key) != now.get(key) and not key.startswith(may) and not APPLIED_ON_RESUME.fullmatch(key):
            raise ConfigError(f"{key}: cannot change on --resume (the run continues from its saved weights and "
                              f"optimizer state); start a new run to change it")


def saved_config(system: type, ckpt: dict[str, Any], path: Any, overrides: dict[str, Any] | None = None) -> Any:
    """``system``'s config from a checkpoint's (with ``overrides``); a checkpoint that another
    system wrote is named as such instead of by the first key that does not fit. The keys of
    ``FROM_NOW`` are never read from the file: they come from ``overrides``, else their defaults."""
    saved = {k: dict(v) if isinstance(v, dict) else v for k, v in ckpt["config"].items()}
    for key in FROM_NOW:
        table, _, name = key.partition(".")
        if isinstance(saved.get(table), dict):
            saved[table].pop(name, None)
    try:
        return from_dict(system.Config, merge(saved, overrides or {}))
    except ConfigError as e:
        meta = ckpt.get("meta") if isinstance(ckpt.get("meta"), dict) else {}
        writer, mine = meta.get("system"), f"{system.__module__}:{system.__qualname__}"
        if isinstance(writer, str) and writer.rpartition(":")[2] != system.__qualname__:
            raise ConfigError(f"{path}: was written by the system {writer}, not {mine} ({e})") from None
        raise


def resume_paths(resume: str | Path | bool, out: str | Path | None) -> tuple[Path, Path]:
    """Where a resume reads and writes, for the command line and the ``Runner`` alike: ``resume``
    is a checkpoint path, or ``True`` for ``OUT/checkpoints/last.pt``; the run folder is ``out``,
    or the checkpoint's own (``<run>/checkpoints/<file>``)."""
    if resume is True:
        if out is None or not str(out).strip():
            raise ConfigError("--resume without a checkpoint path needs --out DIR (Python: out=...)")
        path = Path(out) / "checkpoints" / "last.pt"
    else:
        path = Path(resume)
    return path, Path(out) if out is not None else checkpoint_run(path)


def auto_resume(out: str | None) -> str | None:
    """``--resume auto``: ``""`` (continue ``OUT/checkpoints/last.pt``) when the run folder has a
    checkpoint, else ``None``, a new run under a new run's rules (a folder holding results is refused
    unless ``--overwrite``). One command starts a job and continues it after a restart or requeue."""
    if out is None or not str(out).strip():
        raise ConfigError("--resume auto needs --out DIR: the run folder to continue, or to start")
    return "" if (Path(out) / "checkpoints" / "last.pt").exists() else None


def checkpoint_run(path: str | Path) -> Path:
    """The run folder a checkpoint belongs to (``<run>/checkpoints/<file>``)."""
    return Path(path).resolve().parent.parent


def resolve(system: type, items: list[str], out: str | None = None, resume: str | None = None,
            extra: list[str] = (), name: str = "run", allow_no_checksum: bool = False) -> Launch:
    """``items``: an optional recipe (name or .toml path) and ``key=value`` overrides; ``extra``:
    overrides from options (``--steps`` ...); ``resume``: a checkpoint path, or ``""`` for
    ``OUT/checkpoints/last.pt``."""
    recipes = [i for i in items if "=" not in i]
    overrides = [i for i in items if "=" in i] + list(extra)
    if len(recipes) > 1:
        raise ConfigError(f"more than one recipe given: {recipes}")
    recipe = recipes[0] if recipes else getattr(system, "default_recipe", None)
    if resume is not None:
        opened = open_resume(system, resume or True, out, allow_no_checksum)
        cfg = saved_config(system, opened.checkpoint, opened.path, parse_overrides(overrides))
        # The overrides are checked by the Runner, which every resume goes through.
        if recipes:  # the run continues its own recipe: one that says otherwise is refused, not ignored
            try:
                check_resume_overrides(system, opened.saved_cfg, load_recipe(system.Config, recipes[0], overrides))
            except ConfigError as e:
                raise ConfigError(f"recipe {recipes[0]} is not the one {opened.path} was trained with ({e}); drop "
                                  f"it to continue that run") from None
        return Launch(cfg, opened.out, opened)
    if recipe:
        cfg = load_recipe(system.Config, recipe, overrides)
        name = Path(recipe).stem
    else:
        cfg = from_dict(system.Config, parse_overrides(overrides))
    # The folder's checks (another run's files, a lock) are the runner's.
    return Launch(cfg, Path(out) if out else Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")


def trackers_left(ckpt: dict[str, Any], cfg: Any) -> list[str]:
    """The trackers a checkpoint's run logged to that the resumed run (``cfg``) does not name."""
    train = ckpt["config"].get("train")
    saved = train.get("trackers") if isinstance(train, dict) else None
    if not isinstance(saved, list):
        return []
    return [t for t in ("mlflow", "wandb") if t in saved and t not in cfg.train.trackers]  # known names only


def lr_changes(saved: Any, new: Any) -> dict[str, tuple[float, float]]:
    """``{network: (saved lr, new lr)}`` for each ``networks.<name>.lr`` a resume changes."""
    old, now = flatten(to_dict(saved)), flatten(to_dict(new))
    return {key.split(".")[1]: (old[key], now[key]) for key in now
            if APPLIED_ON_RESUME.fullmatch(key) and key in old and old[key] != now[key]}
