"""``python -m multinet sweep``: check the plan, open the study, run trials (in ``--jobs`` worker
processes), write the report. The same command run again continues a sweep where it stopped."""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..config import ConfigError, error_line
from .plan import SweepPlan, parse_dist, parse_seeds, split_items
from .report import write_report
from .storage import storage_errors
from .study import Interrupted, open_study, queue_grid, work
from .launchers import SlurmOptions, check_launcher, submit_workers, worker_command
from .workers import requeue_interrupted

__all__ = ["run_sweep", "plan_from_args", "sweep_arguments"]


def sweep_arguments(p: argparse.ArgumentParser) -> None:
    """The ``sweep`` command's options (after its system), on the command line's parser."""
    p.add_argument("items", nargs="*", metavar="RECIPE | key=value | key=v1,v2",
                   help="a recipe, fixed overrides, and grid keys (every combination of their values)")
    p.add_argument("--out", required=True, help="sweep folder: trials/, sweep.db, sweep.csv, sweep.md, sweep.png")
    p.add_argument("--seeds", default="0", help="0-4, 0,3,7 or 5: every config runs once per seed")
    p.add_argument("--search", action="append", default=[], metavar="key=KIND:...",
                   help="loguniform:LOW:HIGH, uniform:LOW:HIGH, int:LOW:HIGH or categorical:a,b,c")
    p.add_argument("--trials", type=int, help="how many configs a search tries")
    p.add_argument("--objective", metavar="FIGURE",
                   help="the evaluation figure each trial is scored by (a config's: its mean over seeds); "
                        "nested ones by path, curves/<curve>/<dB>")
    p.add_argument("--direction", default="maximize", choices=("maximize", "minimize"),
                   help="whether a better objective is higher (default) or lower")
    p.add_argument("--sampler", choices=("tpe", "random", "gp", "qmc", "cmaes"),
                   help="how a search proposes configs: Optuna's TPE (default), random, Gaussian process, "
                        "quasi-Monte Carlo (Sobol) or CMA-ES")
    p.add_argument("--pruner", choices=("median", "hyperband", "none"),
                   help="a search's trials stopped early on their train.eval_every evaluations (default: median)")
    p.add_argument("--steps", type=int, help="training iterations of every run")
    p.add_argument("--storage", help="SQLAlchemy URL or journal:FILE shared by workers (default: DIR/sweep.db)")
    p.add_argument("--study", help="study name (default: the --out folder's name)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes on this machine")
    p.add_argument("--heartbeat", type=int, default=30, metavar="SECONDS",
                   help="on a database storage, each worker's running trial beats every SECONDS; one silent for "
                        "4 x SECONDS (its worker died, on any machine) is queued again (default 30; 0: off)")
    p.add_argument("--nproc", type=int, default=1,
                   help="run each trial's runs as torchrun jobs of N processes (GPUs); such runs are not pruned")
    p.add_argument("--trust-storage", action="store_true",
                   help="a CMA-ES search may unpickle the sampler state the study holds with Optuna's own reader "
                        "(which runs any code in it); only for a storage that no one you do not trust can write")
    p.add_argument("--report", action="store_true",
                   help="run nothing: write sweep.csv / .md / .png from what the study and its folders hold now")
    p.add_argument("--launcher", choices=("here", "slurm", "local"), default="here",
                   help="here: run the workers now on this machine (default); slurm: submit --jobs worker jobs "
                        "(one array job, through submitit) and return; local: the same jobs, detached, here")
    p.add_argument("--slurm-time", default=SlurmOptions.time, metavar="TIME",
                   help=f"each worker job's time limit: MINUTES, HH:MM:SS or D-HH:MM:SS (default {SlurmOptions.time}); "
                        "near it the job saves, is requeued, and its trial resumes")
    for name, kind, meta, text in (("partition", str, "P", None), ("gpus-per-job", int, "G", "GPUs of each job"),
                                   ("cpus-per-job", int, "C", None), ("mem", str, "MEM", "e.g. 32G"),
                                   ("account", str, "A", None), ("qos", str, "Q", None)):
        p.add_argument(f"--slurm-{name}", type=kind, default=getattr(SlurmOptions, name.replace("-", "_")),
                       metavar=meta, help=text)
    p.add_argument("--slurm-setup", action="append", default=[], metavar="LINE",
                   help="a shell line each job runs first (module load ..., source venv/bin/activate); repeatable")
    p.add_argument("--slurm-option", action="append", default=[], metavar="KEY[=VALUE]",
                   help="another sbatch option: constraint=a100, exclusive; repeatable")
    p.add_argument("--worker", nargs="?", const="spawned", choices=("spawned", "job"), help=argparse.SUPPRESS)


def plan_from_args(name: str, args: Any) -> SweepPlan:
    items, grid = split_items(args.items)
    search = dict(parse_dist(s) for s in args.search)
    return SweepPlan(name, items, parse_seeds(args.seeds), grid, search, args.trials or 0,
                     args.objective or "", args.direction, args.steps, args.pruner or "", args.nproc,
                     args.sampler or "")


def run_sweep(system: type, name: str, args: Any, argv: list[str]) -> int:
    """``argv``: the command's words after ``sweep`` (the system first), for worker processes."""
    plan = plan_from_args(name, args)
    plan.check(system)
    if args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: at least 1")
    out = Path(args.out)
    if args.report and not args.storage and not (out / "sweep.db").is_file():
        raise ConfigError(f"--report: {out} holds no sweep (no sweep.db; name its --storage)")
    if args.heartbeat < 0:
        raise ConfigError(f"--heartbeat {args.heartbeat}: seconds >= 0 (0 turns it off)")
    launch = _launch_options(args)  # every option checked before anything is written
    out.mkdir(parents=True, exist_ok=True)
    study = open_study(plan, out, args.storage, args.study, args.trust_storage, args.heartbeat)
    say = (lambda text: print(text, flush=True))
    if args.report:  # while workers run, or after: what is on disk now
        _report(study, plan, out, say)
        return 0
    if args.worker == "spawned":  # started by another sweep process: its share of the trials, nothing else
        return _work(study, plan, system, out, say)
    again = requeue_interrupted(study, plan)  # a job worker too: its trial, if a time limit cut it
    if args.worker == "job":
        return _work(study, plan, system, out, say)
    if again:
        say(f"resuming {again} interrupted trial(s) from their checkpoints")
    if not plan.search:
        queue_grid(study, plan)
    say(f"sweep: {plan.configs} config(s) × {len(plan.seeds)} seed(s) in {out} "
        f"(study {study.study_name!r}; {args.jobs} worker(s))")
    threads_per_job = max(1, (os.cpu_count() or 1) // args.jobs)  # this machine's cores, shared
    if args.launcher != "here":
        if args.launcher == "slurm" and not args.storage:
            say(f"note: the worker jobs share {out / 'sweep.db'} (SQLite) through the filesystem; on a network "
                "filesystem use --storage postgresql://... (or journal:FILE)")
        threads = threads_per_job if args.launcher == "local" else args.slurm_cpus_per_job
        ids = submit_workers(args.launcher, launch, args.jobs, argv, out, f"multinet-{study.study_name}", threads)
        say(f"submitted {len(ids)} worker job(s) ({args.launcher}): {' '.join(ids)}; logs in {out / 'jobs'}\n"
            f"figures so far: python -m multinet sweep {shlex.join(_without_launcher(argv))} --report")
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_job)}
    workers = [subprocess.Popen(worker_command(argv, "spawned"), env=env) for _ in range(args.jobs - 1)]
    if workers:  # the cores shared between this process and its workers
        import torch
        torch.set_num_threads(threads_per_job)
    try:
        code = _work(study, plan, system, out, say)
    finally:
        codes = [w.wait() for w in workers]
    if STORAGE_DOWN in (code, *codes):
        return STORAGE_DOWN
    _report(study, plan, out, say)
    return code or next((c for c in codes if c), 0)


def _launch_options(args: Any) -> SlurmOptions:
    """The ``--slurm-*`` options, which only a launcher takes (``--slurm-time`` also bounds local jobs)."""
    if args.slurm_gpus_per_job < 0 or args.slurm_cpus_per_job < 0:
        raise ConfigError("--slurm-gpus-per-job / --slurm-cpus-per-job: 0 or more")
    options = SlurmOptions(args.slurm_time, args.slurm_partition, args.slurm_gpus_per_job, args.slurm_cpus_per_job,
                           args.slurm_mem, args.slurm_account, args.slurm_qos, tuple(args.slurm_setup),
                           tuple(args.slurm_option))
    default = SlurmOptions()
    given = [f.name for f in dataclasses.fields(SlurmOptions) if getattr(options, f.name) != getattr(default, f.name)]
    for name in given:
        flag = "--slurm-" + {"options": "option"}.get(name, name).replace("_", "-")
        if args.launcher == "here" or (args.launcher == "local" and name != "time"):
            raise ConfigError(f"{flag}: only with --launcher slurm" + (" or local" if name == "time" else ""))
    if args.launcher != "here":
        options.executor_parameters(args.launcher, "check", args.jobs)  # a bad time or option: now, in one line
        if not args.report and not args.worker:
            check_launcher(args.launcher)
    return options


def _without_launcher(argv: list[str]) -> list[str]:
    """The sweep's words without those that only submitting takes (``--launcher``, ``--slurm-*``,
    ``--jobs``): what ``--report`` is given."""
    kept, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word.startswith(("--launcher", "--slurm-", "--jobs")):
            skip = "=" not in word
        else:
            kept.append(word)
    return kept


def _report(study: Any, plan: SweepPlan, out: Path, say: Any) -> None:
    say(write_report(study, plan, out) + f"written: {out / 'sweep.csv'}, {out / 'sweep.md'}, {out / 'sweep.png'}")


STORAGE_DOWN = 75  # sysexits' EX_TEMPFAIL: run the same command again once the storage answers


def _work(study: Any, plan: SweepPlan, system: type, out: Path, say: Any) -> int:
    try:
        work(study, plan, system, out, say)
    except Interrupted as e:
        print(str(e), file=sys.stderr)
        return e.code
    except storage_errors() as e:
        cause = e.__cause__ or e.__context__ or e
        print(f"error: the sweep's storage stopped answering ({error_line(cause, 200)}); every run keeps its "
              "checkpoints, and the same command resumes the sweep once the storage is back", file=sys.stderr)
        return STORAGE_DOWN
    return 0
