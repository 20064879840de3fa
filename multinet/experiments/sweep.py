"""``python -m multinet sweep``: check the plan, open the study, run trials (in ``--jobs`` worker
processes), write the report. The same command run again continues a sweep where it stopped."""
from __future__ import annotations

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

__all__ = ["run_sweep", "plan_from_args"]


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
    slurm_only = {"partition": "", "gpus_per_job": 0, "cpus_per_job": 0, "mem": "", "account": "", "qos": "",
                  "setup": [], "option": []}
    given = [k for k, empty in slurm_only.items() if getattr(args, f"slurm_{k}") != empty]
    if given and args.launcher != "slurm":
        raise ConfigError(f"--slurm-{given[0].replace('_', '-')}: only with --launcher slurm")
    if args.slurm_time != "60" and args.launcher == "here":
        raise ConfigError("--slurm-time: only with --launcher slurm or local")
    if args.slurm_gpus_per_job < 0 or args.slurm_cpus_per_job < 0:
        raise ConfigError("--slurm-gpus-per-job / --slurm-cpus-per-job: 0 or more")
    options = SlurmOptions(args.slurm_time, args.slurm_partition, args.slurm_gpus_per_job, args.slurm_cpus_per_job,
                           args.slurm_mem, args.slurm_account, args.slurm_qos, tuple(args.slurm_setup),
                           tuple(args.slurm_option))
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
