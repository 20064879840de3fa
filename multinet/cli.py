"""The command line shared by ``python -m multinet.gan`` and ``python -m multinet.autoencoder``.

    python -m multinet.<task> [RECIPE] [key=value ...] [--out DIR] [--steps N] [--seed S]
                              [--device D] [--resume [CKPT]]

Flow: recipe → validated config → process group (under torchrun) → run folder → task builds
nets and engine → handlers (log, checkpoint, task's own) → run → summary. Under torchrun every
rank trains; rank 0 alone writes the run folder. Ctrl-C / SIGTERM save a checkpoint and exit with one
line; a non-finite loss stops the run naming the phase and step, leaving the last good
checkpoint as it was.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import CheckpointManager, load_checkpoint
from .config import ConfigError, from_dict, load_recipe, merge, parse_overrides, to_dict, to_toml
from .engine import Engine, NonFiniteLoss
from .nets import resolve_device
from .tracking import NullTracker, Tracker

__all__ = ["Run", "main", "seed_everything"]


@dataclass
class Run:
    """What a task hands back to the runner: the engine, and what to do at the end."""

    engine: Engine
    finish: Callable[[], dict[str, Any]]
    explain: list[str] = field(default_factory=list)
    handlers: list[tuple[str, Callable[[Engine], None], int]] = field(default_factory=list)  # (event, fn, every)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _finite(value: Any) -> Any:
    """JSON has no inf/NaN: write them as null (e.g. reverse KL when no mode is captured)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _parser(task: str) -> argparse.ArgumentParser:
    from .config import list_recipes
    mine = [r for r in list_recipes() if r.startswith(("ae_",) if task == "autoencoder" else ("gan_", "dcgan_"))]
    epilog = "named recipes: " + ", ".join(mine)
    if task == "gan":
        epilog += "\nsamples from a checkpoint: python -m multinet.gan sample CKPT --n N --out FILE.npy"
    p = argparse.ArgumentParser(prog=f"python -m multinet.{task}", description=f"Train a multinet {task} recipe.",
                                epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("items", nargs="*", metavar="RECIPE | key=value",
                   help="a recipe name or .toml path, then key=value overrides (data.batch_size=128)")
    p.add_argument("--out", help="run folder (default: runs/<recipe>-<time>)")
    p.add_argument("--steps", type=int, help="total number of training iterations")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--resume", nargs="?", const="", metavar="CKPT",
                   help="continue a run (default: OUT/checkpoints/last.pt) up to the total steps")
    p.add_argument("--stop-at", type=int, metavar="N",
                   help="save a checkpoint and stop after iteration N (resume later with --resume)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _resolve(recipe_cls: type, default_recipe: str, args: argparse.Namespace):
    recipe = next((i for i in args.items if "=" not in i), None)
    overrides = [i for i in args.items if "=" in i]
    if sum("=" not in i for i in args.items) > 1:
        raise ConfigError(f"more than one recipe given: {[i for i in args.items if '=' not in i]}")
    cli = []
    if args.steps is not None:
        cli.append(f"train.steps={args.steps}")
    if args.seed is not None:
        cli.append(f"seed={args.seed}")
    if args.device is not None:
        cli.append(f'device="{args.device}"')
    ckpt = None
    if args.resume is not None:
        path = Path(args.resume) if args.resume else None
        if path is None:
            if not args.out:
                raise ConfigError("--resume without a checkpoint path needs --out DIR")
            path = Path(args.out) / "checkpoints" / "last.pt"
        ckpt = load_checkpoint(path)
        out = Path(args.out) if args.out else path.resolve().parent.parent
        raw = merge(ckpt["config"], parse_overrides(overrides + cli))
        cfg = from_dict(recipe_cls, raw)
        _check_resume_overrides(to_dict(from_dict(recipe_cls, ckpt["config"])), to_dict(cfg))
        return cfg, out, ckpt, path
    cfg = load_recipe(recipe_cls, recipe or default_recipe, overrides + cli)
    name = Path(recipe or default_recipe).stem
    out = Path(args.out) if args.out else Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (out / "checkpoints" / "last.pt").exists():  # a new run there would overwrite and prune them
        raise ConfigError(f"--out {out}: holds the checkpoints of an earlier run; continue it with --resume "
                          f"--out {out}, or choose another folder")
    return cfg, out, None, None


# What a resumed run may change: its length, logging, checkpoints and evaluation, where it runs,
# and the per-rank batch (to keep the global batch when the number of processes changes).
# Everything else is the run itself: the checkpoint's weights and optimizer state carry on as saved.
RESUME_MAY_CHANGE = ("train.", "eval.", "device", "data.root", "data.workers", "data.download", "data.batch_size",
                     "channel.eval_db", "description")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            flat.update(_flat(v, f"{prefix}{k}."))
        else:
            flat[prefix + k] = v
    return flat


def _check_resume_overrides(saved: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse overrides that a resumed run cannot honour (both configs resolved with the same defaults)."""
    old, now = _flat(saved), _flat(new)
    for key in sorted(set(old) | set(now)):
        if old.get(key) != now.get(key) and not key.startswith(RESUME_MAY_CHANGE):
            raise ConfigError(f"{key}: cannot change on --resume (the run continues from its saved weights and "
                              f"optimizer state); start a new run to change it")


def main(task: str, recipe_cls: type, default_recipe: str,
         build: Callable[[Any, Path, torch.device], Run], argv: list[str] | None = None) -> int:
    args = _parser(task).parse_intermixed_args(argv)
    with warnings.catch_warnings():  # restores the default display afterwards
        warnings.showwarning = _one_line_warning
        try:
            return _main(args, recipe_cls, default_recipe, build)
        finally:
            distributed.shutdown()


def _one_line_warning(message: Warning | str, category: type, filename: str, lineno: int, file: Any = None,
                      line: str | None = None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _main(args: argparse.Namespace, recipe_cls: type, default_recipe: str,
          build: Callable[[Any, Path, torch.device], Run]) -> int:
    where = ""
    try:
        cfg, out, ckpt, ckpt_path = _resolve(recipe_cls, default_recipe, args)
        if cfg.train.steps <= 0:
            raise ConfigError("train.steps: must be positive")
        device = resolve_device(cfg.device)
        world = distributed.init(device.type, cfg.train.dist_timeout)
        where = f" [rank {world.rank}]" if world.world > 1 else ""
        if cfg.train.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        seed_everything(cfg.seed)  # the same on every rank: identical initial weights
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out}: exists and is not a folder")
        run = build(cfg, out, device)  # everything is checked first: a bad recipe leaves no run folder behind
        engine = run.engine
        engine.sync_every = cfg.train.dist_sync_every
        for net in engine.nets.values():
            if cfg.train.sync_batchnorm:
                net.sync_batchnorm()
            if cfg.train.compile:
                net.module.compile()
        if ckpt is not None:
            engine.load_state_dict(ckpt)
            saved = int(ckpt["engine"].get("world_size", 1))
            if saved != world.world and world.main:
                print(f"note: {ckpt_path} was written by {saved} rank(s), now {world.world}: batch sizes are per "
                      f"rank, so the global batch changes by {world.world}/{saved} unless you scale data.batch_size "
                      f"(the data and noise streams continue either way)", file=sys.stderr)
            if engine.iteration >= cfg.train.steps:
                if world.main:
                    print(f"{ckpt_path}: already at step {engine.iteration} of {cfg.train.steps}; nothing to do")
                return 0
        if world.main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "recipe.toml").write_text(to_toml(to_dict(cfg)))
        if world.world > 1:  # global RNGs (dropout and the like) differ per rank; data and noise do not
            seed_everything(cfg.seed + 100_003 * world.rank + engine.iteration)
    except (ConfigError, ValueError, OSError, RuntimeError) as e:
        print(f"error{where}: {e}", file=sys.stderr)
        return 2
    try:
        return _train(cfg, out, run, ckpt is not None, progress=not args.no_progress, stop_at=args.stop_at)
    except RuntimeError as e:
        if not where:
            raise
        # A collective failed: another rank died or stalled past train.dist_timeout.
        print(f"error{where}: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 1


def _unfreezer(name: str, patterns: list[str], at: int, tracker: Tracker) -> Callable[[Engine], None]:
    """Unfreeze ``patterns`` of network ``name`` after iteration ``at`` (resume replays it from
    the checkpoint's record of which parameters train)."""
    def fire(e: Engine) -> None:
        if e.iteration == at:
            added = e.nets[name].unfreeze(patterns)
            tracker.text("parameter_groups", f"step {at}: unfroze {', '.join(added)}\n" + e.nets[name].explain(), at)
    return fire


def _train(cfg: Any, out: Path, run: Run, resumed: bool, progress: bool, stop_at: int | None = None) -> int:
    engine = run.engine
    main_rank = engine.dist.main  # under torch.distributed rank 0 alone writes
    tracker = (Tracker(out, tensorboard=cfg.train.tensorboard, resume_step=engine.iteration if resumed else None)
               if main_rank else NullTracker())
    manager = CheckpointManager(out / "checkpoints", keep_last=cfg.train.keep_last)
    if main_rank:
        with open(out / "parameter_groups.txt", "a") as f:
            for text in run.explain:
                tracker.text("parameter_groups", text)
                f.write(text + "\n\n")
    bar = tqdm(total=cfg.train.steps, initial=engine.iteration, disable=not (progress and main_rank),
               dynamic_ncols=True, desc=f"{cfg.task}")

    def log(e: Engine) -> None:
        e.check_finite()
        values = e.scalars()
        tracker.scalars(e.iteration, values)
        bar.set_postfix({k[5:]: f"{v:.3f}" for k, v in values.items() if k.startswith("loss/")}, refresh=False)

    def save(e: Engine) -> None:
        e.check_finite()  # never overwrite the last good checkpoint with a diverged state
        if main_rank:
            manager.save(e.state_dict(), e.iteration)

    engine.on("iteration", lambda e: bar.update(1))
    engine.on("iteration", log, every=cfg.train.log_every)
    engine.on("iteration", save, every=cfg.train.checkpoint_every)
    if main_rank:  # samples and evaluation: rank 0 only, and free of collectives
        for event, fn, every in run.handlers:
            engine.on(event, fn, every)
    for name, ncfg in vars(cfg.networks).items():
        if ncfg.unfreeze and ncfg.unfreeze_at > engine.iteration:
            engine.on("iteration", _unfreezer(name, ncfg.unfreeze, ncfg.unfreeze_at, tracker))
    engine.stop_at = stop_at
    engine.tracker = tracker
    first_signal: dict[int, float] = {}

    def on_signal(signum: int, _frame: Any) -> None:
        # A second Ctrl-C leaves now. The same signal within 2 s is one request: torchrun passes
        # on the terminal's Ctrl-C that its workers have already received.
        if signum in first_signal and time.monotonic() - first_signal[signum] > 2.0:
            raise KeyboardInterrupt
        first_signal.setdefault(signum, time.monotonic())
        engine.request_stop(signal.Signals(signum).name)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    try:
        engine.run()
        if engine.stop_reason is not None:
            engine.check_finite()
            if main_rank:
                path = manager.save(engine.state_dict(), engine.iteration)
                print(f"stopped by {engine.stop_reason} at step {engine.iteration}; checkpoint {path} "
                      f"(resume: --resume {manager.last})", file=sys.stderr)
            bar.close()
            code = {"SIGINT": 130, "SIGTERM": 143}.get(engine.stop_reason, 0)
        else:
            engine.check_finite()
            every = cfg.train.checkpoint_every
            if main_rank and (not every or engine.iteration % every):  # the final state, unless just saved
                manager.save(engine.state_dict(), engine.iteration)
            bar.close()
            if main_rank:
                summary = run.finish()
                summary.update({"steps": engine.iteration, "resumed": resumed, "world_size": engine.dist.world})
                text = json.dumps(_finite(summary), indent=2)
                (out / "summary.json").write_text(text)
                print(json.dumps(_finite(summary)))
        distributed.barrier()  # no rank leaves (and no launcher tears down) while rank 0 writes
    except NonFiniteLoss as e:
        bar.close()
        if main_rank:
            print(f"error: {e}; last good checkpoint kept: {manager.last if manager.last.exists() else 'none'}",
                  file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted twice at step {engine.iteration}; last checkpoint kept: {manager.last}",
              file=sys.stderr)
        code = 130
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        tracker.close()
    return code
