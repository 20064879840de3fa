"""The command line: parse, then dispatch to the runner or a loaded system. Nothing else lives here.

    python -m multinet train SYSTEM [RECIPE] [key=value ...] [--out DIR] [--steps N] [--seed S]
                             [--device D] [--resume [CKPT]] [--stop-at N] [--no-progress]
    python -m multinet evaluate CKPT [key=value ...]
    python -m multinet sample CKPT --n N --out FILE.npy [--rejection drs]
    python -m multinet sample EXPORT/generator.json --n N --out FILE.npy [--seed S]
    python -m multinet export CKPT --out DIR
    python -m multinet sweep SYSTEM [RECIPE] [key=value | key=v1,v2 ...] --out DIR [--seeds 0-4]
                             [--search key=loguniform:1e-5:1e-3 --trials N] [--objective FIG] [--jobs N]
    python -m multinet compare RUN... [--out FILE.png]
    python -m multinet keys SYSTEM [RECIPE] [key=value ...]

SYSTEM is ``gan``, ``autoencoder`` or the import path of your own ``System`` subclass
(``my_pkg.systems:InfoGAN``); ``evaluate`` / ``sample`` / ``export`` read the system from the
checkpoint (or ``--system``). Errors are one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from . import distributed, startup
from .config import ConfigError, error_line, list_recipes, to_dict, to_toml
from .run.system import NotOffered, System, notes_shown
from .state.imports import import_class

__all__ = ["main", "system_main", "SHIPPED_SYSTEMS"]

SHIPPED_SYSTEMS = {"gan": "multinet.gan.system:GanSystem", "autoencoder": "multinet.autoencoder.system:AeSystem"}


def _system(name: str) -> type[System]:
    return import_class(SHIPPED_SYSTEMS.get(name, name), System, "SYSTEM")


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("items", nargs="*", metavar="RECIPE | key=value",
                   help="a recipe name or .toml path, then key=value overrides (data.batch_size=128)")
    p.add_argument("--out", help="run folder (default: runs/<recipe>-<time>)")
    p.add_argument("--steps", type=int, help="total number of training iterations")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--resume", nargs="?", const="", metavar="CKPT|auto",
                   help="continue a run (default: OUT/checkpoints/last.pt) up to the total steps; auto: continue "
                        "OUT's run if it has a checkpoint, else start it (for restarts: torchrun, Slurm requeue)")
    p.add_argument("--stop-at", type=int, metavar="N",
                   help="save a checkpoint and stop after iteration N (resume later with --resume)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true",
                   help="a new run may replace an earlier run's files in --out (checkpoints, metrics, summary)")
    _trust_args(p)


def _trust_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-code", action="store_true",
                   help="a saved file (checkpoint, export) may name code outside multinet to import; only for "
                        "files whose maker you trust")
    p.add_argument("--allow-no-checksum", action="store_true",
                   help="read a checkpoint that has no checksum (one written before checkpoints had one)")


def _ckpt_args(p: argparse.ArgumentParser, system: bool) -> None:
    p.add_argument("checkpoint")
    if system:
        p.add_argument("--system", help="gan, autoencoder or module:Class (default: the one the checkpoint names)")
    p.add_argument("--device", default="cpu")
    _trust_args(p)


_COMMANDS = {"train": "train a system on a recipe", "evaluate": "score a checkpoint again; prints JSON",
             "sample": "draw samples from a checkpoint into FILE.npy (+ FILE.png for images)",
             "export": "write the trained networks for use outside a run",
             "sweep": "seeds, a grid or a search over recipe keys (Optuna); resumable",
             "compare": "runs of one system side by side: their figures, and curves with --out",
             "keys": "print every key of a system's config with its value (a recipe's, with overrides) as TOML"}


def _parser(command: str, fixed: str | None = None) -> argparse.ArgumentParser:
    prog = f"python -m multinet.{fixed} {command}" if fixed else f"python -m multinet {command}"
    recipes = list_recipes(fixed)
    p = argparse.ArgumentParser(prog=prog, description=_COMMANDS[command], epilog="named recipes: " + ", ".join(recipes))
    if command in ("train", "sweep", "keys"):
        if not fixed:
            p.add_argument("system", help="gan, autoencoder, or module:Class of your own System")
        if command == "keys":
            p.add_argument("items", nargs="*", metavar="RECIPE | key=value", help="a recipe, then key=value overrides")
        elif command == "train":
            _train_args(p)
        else:
            from .experiments.sweep import sweep_arguments
            sweep_arguments(p)
        return p
    if command == "compare":
        p.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
        p.add_argument("--out", help="FILE.png: BLER curves or evaluation figures over steps")
        return p
    _ckpt_args(p, not fixed)
    if command in ("evaluate", "sample"):
        p.add_argument("overrides", nargs="*", help="key=value (eval.*, and what the system allows)")
    if command == "sample":
        p.add_argument("--n", type=int, default=64)
        p.add_argument("--out", required=True, help="FILE.npy")
        p.add_argument("--rejection", choices=("none", "drs"), default="none",
                       help="drs: discriminator rejection sampling (the checkpoint's eval.drs_* settings apply)")
        p.add_argument("--seed", type=int, default=0, help="for an exported generator (CKPT = its .json or folder)")
    if command == "export":
        p.add_argument("--out", required=True, help="folder")
    return p


def _usage(fixed: str | None) -> str:
    prog = f"python -m multinet.{fixed}" if fixed else "python -m multinet"
    lines = [f"usage: {prog} {{{','.join(_COMMANDS)}}} ..."] + [f"  {c:<9} {h}" for c, h in _COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None, fixed: str | None = None) -> int:
    startup.started()
    previous = startup.stop_on_sigterm()  # setup stops in one line on SIGTERM as on Ctrl-C
    try:
        return _main(argv, fixed)
    finally:
        if previous is not None:
            import signal
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None, fixed: str | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in _COMMANDS:
        print(_usage(fixed), file=sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    args = _parser(argv[0], fixed).parse_intermixed_args(argv[1:])
    args.command = argv[0]
    if args.command not in ("train", "sweep"):  # nothing to save: Ctrl-C and SIGTERM are the command's own to report
        startup.setup_done()
    with warnings.catch_warnings():  # restores the default display afterwards
        warnings.showwarning = _one_line_warning
        try:
            name = fixed or getattr(args, "system", None)
            system = _system(name) if name is not None else None
            if args.command == "train":
                return _train(system, args)
            if args.command == "sweep":
                from .experiments import run_sweep
                return run_sweep(system, name, args, ([fixed] if fixed else []) + argv[1:])
            if args.command == "keys":  # what recipe.toml would hold: every key, typed and checked
                from .run.resume import resolve
                print(to_toml(to_dict(resolve(system, args.items).cfg)), end="")
                return 0
            if args.command == "compare":
                from .experiments import compare_runs
                print(compare_runs(args.runs, args.out), end="")
                return 0
            return _use(system, args)
        except (ConfigError, ValueError, OSError, NotOffered) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except startup.Terminated:
            print("stopped by SIGTERM during setup, before training started", file=sys.stderr)
            return 143
        except KeyboardInterrupt:  # before training started (once it runs, Ctrl-C saves and stops)
            print("interrupted during setup, before training started", file=sys.stderr)
            return 130
        finally:
            try:
                distributed.shutdown()
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM (a launcher ending the other ranks) while closing:
                pass  # what the command did is already said and saved


def system_main(name: str, argv: list[str] | None = None) -> int:
    """``python -m multinet.gan ...``: ``train`` is implied unless a subcommand is named."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] not in [[c] for c in _COMMANDS]:
        argv = ["train", *argv]
    return main(argv, fixed=name)


def _one_line_warning(message: Warning | str, category: type, filename: str, lineno: int, file: Any = None,
                      line: str | None = None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _train(system: type[System], args: argparse.Namespace) -> int:
    from .run.resume import auto_resume, resolve
    from .run.runner import Runner
    if args.out is not None and not args.out.strip():
        raise ConfigError("--out: empty; name the run folder")
    if args.resume and "=" in args.resume and not Path(args.resume).exists():
        # argparse gives --resume the next word: "--resume train.steps=90" is an override, not a path
        args.items, args.resume = [*args.items, args.resume], ""
    if args.resume == "auto" and not Path("auto").is_file():  # a start, or a restart's continuation
        args.resume = auto_resume(args.out)
    extra = [f"train.steps={args.steps}"] if args.steps is not None else []
    extra += [f"seed={args.seed}"] if args.seed is not None else []
    extra += [f'device="{args.device}"'] if args.device is not None else []
    launch = resolve(system, args.items, args.out, args.resume, extra, name=system.__name__.lower(),
                     allow_no_checksum=args.allow_no_checksum)
    runner = Runner(system, launch.cfg, launch.out, resume=launch.resume,
                    progress=not args.no_progress, stop_at=args.stop_at, overwrite=args.overwrite,
                    trust_code=args.trust_code)
    return runner.fit().code  # errors during training are reported by the runner, with the rank


def _use(system: type[System] | None, args: argparse.Namespace) -> int:
    if args.command == "sample" and (args.checkpoint.endswith(".json") or Path(args.checkpoint).is_dir()):
        return _sample_export(args)
    with notes_shown():
        return _use_saved(system, args)


def _use_saved(system: type[System] | None, args: argparse.Namespace) -> int:
    from .run.saved import load_system
    try:
        built, ckpt = load_system(args.checkpoint, system, args.device, getattr(args, "overrides", []),
                                  trust_code=args.trust_code, allow_no_checksum=args.allow_no_checksum)
        step = int(ckpt.get("engine", {}).get("iteration", 0))
        if args.command == "evaluate":
            print(json.dumps({"checkpoint": args.checkpoint, "step": step, **built.evaluate()}))
            return 0
        if args.command == "export":
            for path in built.export(Path(args.out)):
                print(f"wrote {path}")
            return 0
        return _sample(built, args)
    except RuntimeError as e:  # e.g. rejection sampling that accepts too little
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 2


def _sample(system: System, args: argparse.Namespace) -> int:
    from .run.saved import sample_saved
    return _save_samples(sample_saved(system, args.n, args.rejection), args)


def _sample_export(args: argparse.Namespace) -> int:
    """``sample EXPORT.json``: only the exported generator is read, no training run."""
    from .run.saved import sample_exported
    return _save_samples(sample_exported(args.checkpoint, args.n, args.seed, args.device, args.trust_code), args)


def _save_samples(x: Any, args: argparse.Namespace) -> int:
    from .run.saved import save_samples
    print(save_samples(x, Path(args.out)))
    return 0
