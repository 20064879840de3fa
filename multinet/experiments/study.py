"""A sweep on an Optuna study: where it is stored, which trials are left, and running one.

Every run is a normal run folder, ``trials/<NNNN>/seed-<s>`` for config NNNN. Trials are asked and
told by hand (``ask`` / ``tell``), so the sweep decides what a trial is. In a grid (or a seeds-only
sweep) a trial is one config at one seed, all queued once, up front, and workers (``--jobs``, or
more machines on one storage) pop them, so seeds run in parallel too; the report takes each
config's mean over seeds. In a search a trial is one config over every seed in turn, its value the
mean over seeds, since that is what Optuna's sampler must be told; it asks until ``--trials``
configs are complete or pruned.

Nothing runs twice. A finished seed run is read back from its ``summary.json``; an interrupted
trial (Ctrl-C, SIGTERM, a worker killed with ``kill -9``: its process is gone) is queued again
with its folder, and its runs resume from their checkpoints, exactly as ``--resume`` would.
"""
from __future__ import annotations

import math
import os
import socket
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from ..config import ConfigError, error_line, flatten
from ..handlers.timer import saved_seconds
from ..run.resume import resolve
from ..run.runner import Runner
from ..state.checkpoint import load_checkpoint
from ..state.runfiles import parse_json, read_json
from .plan import SweepPlan
from .storage import asking_alone, default_storage, heartbeat_of, make_sampler, open_storage
from .workers import asked_for, heartbeats, over_budget, queued_before, requeue_interrupted, set_aside
from .trials import drawn, folder_of, live_trials, params_of, run_folder, trial_attr

__all__ = ["open_study", "queue_grid", "work", "Interrupted"]


class Interrupted(Exception):
    """A trial's run stopped on a signal: the sweep stops with that exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError('sweeps run on Optuna: pip install "multinet[sweep]"') from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_study(plan: SweepPlan, out: Path, storage: str | None, name: str | None,
               trust_storage: bool = False, heartbeat: int = 0) -> Any:
    """The study of this sweep, created or joined; a study made by a different sweep is refused.
    ``trust_storage``: a CMA-ES search may unpickle its state with Optuna's own reader (``storage``).
    ``heartbeat``: seconds between a running trial's heartbeats on a database storage (0: none)."""
    optuna = _optuna()
    store = open_storage(storage, None, heartbeat) if storage else open_storage(default_storage(out), out, heartbeat)
    pruner = {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2),
              "hyperband": lambda: optuna.pruners.HyperbandPruner(),
              "none": lambda: optuna.pruners.NopPruner()}
    if plan.chosen_pruner not in pruner:
        raise ConfigError(f"--pruner {plan.pruner!r}: median, hyperband or none")
    study = optuna.create_study(study_name=name or out.name, storage=store, load_if_exists=True,
                                direction=plan.direction, sampler=make_sampler(plan.chosen_sampler, trust_storage),
                                pruner=pruner[plan.chosen_pruner]())
    saved = study.user_attrs.get("definition")
    if saved is not None and not plan.continues(_definition(saved, study.study_name)):
        raise ConfigError(f"study {study.study_name!r} holds another sweep (different system, recipe, keys, "
                          "objective or steps, or a search's seeds or ranges); name a new one with --study or a new --out")
    if saved != plan.definition():
        study.set_user_attr("definition", plan.definition())
    return study


def _definition(saved: Any, study: str) -> dict[str, Any]:
    """The sweep definition a study holds, checked: a JSON object of ``SweepPlan.definition``'s keys."""
    try:
        value = parse_json(saved, f"study {study!r}: its definition") if isinstance(saved, str) else saved
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"study {study!r}: its definition is not a sweep's (a {type(value).__name__}); name a new "
                          "study with --study or a new --out")
    return value


def queue_grid(study: Any, plan: SweepPlan) -> None:
    """Queue every (config, seed) of a grid (or of a seeds-only sweep) not queued before. The grid's
    keys are the trial's Optuna parameters; its seed is an attribute, so that more seeds can join the
    study later (Optuna fixes a parameter's choices for the life of a study)."""
    import itertools
    keys = list(plan.grid)
    have = [params_of(t, plan) for t in live_trials(study)]
    for values in itertools.product(*(plan.grid[k] for k in keys)):
        for seed in plan.seeds:
            params = {**dict(zip(keys, values)), "seed": seed}
            if params not in have:
                study.enqueue_trial(dict(zip(keys, values)),
                                    user_attrs={"queued": True, "params": params})


def work(study: Any, plan: SweepPlan, system: type, out: Path, say: Callable[[str], None]) -> None:
    """Run trials until none is left for this worker (on a storage with heartbeats: until no trial
    runs anywhere, so that one whose worker died is finished here)."""
    with warnings.catch_warnings():  # the heartbeats are ours (``heartbeats``), with ask and tell
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        _work_loop(study, plan, system, out, say)


def _work_loop(study: Any, plan: SweepPlan, system: type, out: Path, say: Callable[[str], None]) -> None:
    from optuna.trial import TrialState
    beating = heartbeat_of(study._storage)  # Optuna keeps a study's storage there
    said_waiting = False
    while True:
        if beating:  # a trial another worker left (killed, on any machine) is this one's to finish
            requeue_interrupted(study, plan)
        trials = study.get_trials(deepcopy=False)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        # Nothing left to take: a grid with no queued trial, a search with every config asked for.
        if not waiting and (not plan.search or asked_for(trials) >= plan.trials):
            # Wait for running trials that beat: each ends, or goes stale and is queued again. One
            # that never beat (a worker without heartbeats) may never end: it is not waited for.
            running = [t for t in trials if t.state == TrialState.RUNNING and trial_attr(t, "heartbeat", int)]
            if beating and running:
                if not said_waiting:
                    say(f"waiting for {len(running)} trial(s) running in other workers (a worker that dies is "
                        "replaced here; Ctrl-C leaves)")
                    said_waiting = True
                time.sleep(min(beating, 2))  # a short poll: no lingering once they end
                continue
            return
        with asking_alone(study._storage):  # one queued trial to one worker, on SQLite too
            trial = study.ask()
        if not plan.search and not trial_attr(trial, "queued", bool, False):  # another worker took the last one
            set_aside(study, trial)
            return
        if trial_attr(trial, "queued", bool, False) and queued_before(trial, plan, study):  # queued twice at once
            set_aside(study, trial)
            continue
        if over_budget(trial, plan, study):  # another worker asked for the search's last trial at the same time
            set_aside(study, trial)
            return
        if plan.search:  # a study continued with another sampler shows which proposed each trial
            trial.set_user_attr("sampler", plan.chosen_sampler)
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        try:
            params = drawn(trial, plan)  # the config first: a search trial's folder follows from it
            folder = folder_of(trial, plan, {t.number: t for t in live_trials(study)})
            trial.set_user_attr("folder", folder)  # for people reading the study; never read back
            seeds = plan.seeds if plan.search else [params_of(trial, plan)["seed"]]
            with heartbeats(trial):
                value, state = run_trial(trial, plan, system, params, seeds, out, folder, say)
        except Interrupted:
            study.tell(trial, state=TrialState.FAIL)  # queued again at the next start, with its folder
            raise
        except (ConfigError, ValueError, OSError) as e:
            trial.set_user_attr("error", error_line(e, 300))
            study.tell(trial, state=TrialState.FAIL)
            raise
        try:
            study.tell(trial, **({"state": TrialState.PRUNED} if state == "pruned" else
                                 {"state": TrialState.FAIL} if state == "failed" else {"values": value}))
        except _optuna().exceptions.UpdateFinishedTrialError:  # taken for dead (a stall, a partition) and retried
            say(f"trial {trial.number}: already ended by another worker, which took it over when its heartbeat "
                "stopped; this worker's result for it is not recorded")


def run_trial(trial: Any, plan: SweepPlan, system: type, params: dict[str, Any], seeds: list[int], out: Path,
              folder: str, say: Callable[[str], None]) -> tuple[float | None, str]:
    """One config at ``seeds`` in turn, in ``out/folder``: (mean objective, "complete") or (None,
    "pruned"/"failed")."""
    values = []
    for i, seed in enumerate(seeds):
        run = run_folder(out, folder, seed)
        where = f"{folder}/seed-{seed} (trial {trial.number})"  # named as sweep.md and sweep.csv name it
        summary_file = run / "summary.json"
        if summary_file.exists():  # finished before an interruption: read, not re-run
            summary = read_json(summary_file, run, what="a run's summary")
            trial.set_user_attr(f"seconds/seed-{seed}", round(_trained_seconds(run), 2))  # as it trained
        else:
            pruned: list[int] = []

            def report(engine: Any, figures: dict[str, Any], i: int = i) -> None:
                value = _objective(figures, plan)
                step = i * (engine.total_steps + 1) + engine.iteration  # seed by seed, on one axis
                trial.report(value, step)
                if trial.should_prune():
                    pruned.append(engine.iteration)
                    engine.request_stop("pruning")
            if plan.nproc > 1:
                code, error, summary, seconds = _torchrun(plan, params, seed, run)
            else:
                # A run resumed from its checkpoint takes this sweep's items as given now (its trackers
                # and their addresses among them), as ``train --resume`` with them would.
                resume = "" if (run / "checkpoints" / "last.pt").exists() else None
                launch = resolve(system, plan.overrides(params, seed), out=str(run), resume=resume)
                dead = (trial_attr(trial, "dead_pid", int), trial_attr(trial, "dead_host", str))
                runner = Runner(system, launch.cfg, run, resume=launch.resume, progress=False, echo=False,
                                overwrite=resume is None, on_evaluation=(report,) if plan.search else (),
                                takes_over=dead if None not in dead else None)  # its dead worker's lock
                result = runner.fit()
                code, summary, seconds = result.code, result.summary, result.seconds
                error = result.error or f"{result.stop_reason or 'interrupted'} at step {result.step}"
            trial.set_user_attr(f"seconds/seed-{seed}", round(seconds, 2))  # training time, over its resumes
            if pruned:
                say(f"{where}: pruned at step {pruned[0]}")
                return None, "pruned"
            if code in (130, 143):
                raise Interrupted(code, f"{where}: {error}; the same command resumes the sweep")
            if code != 0:
                trial.set_user_attr("error", error[:300])
                say(f"{where}: failed: {error}")
                return None, "failed"
        if not plan.objective:  # a grid or seeds sweep reports every figure: Optuna keeps a placeholder 0
            say(f"{where}: done")
            continue
        values.append(_objective(summary, plan))
        say(f"{where}: {plan.objective} = {values[-1]:.6g}")
    return (statistics.fmean(values) if values else 0.0), "complete"


def _torchrun(plan: SweepPlan, params: dict[str, Any], seed: int,
              run: Path) -> tuple[int, str, dict[str, Any], float]:
    """One run as a torchrun job of ``plan.nproc`` processes on this machine (``python -m multinet
    train`` under ``torch.distributed.run``): (exit code, its last error line, its summary, its
    training time from its last checkpoint). Its evaluations are its own: a trial run this way is
    not pruned."""
    import subprocess
    import sys
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={plan.nproc}",
              "-m", "multinet", "train", plan.system, "--out", str(run), "--no-progress"]
    resume = (run / "checkpoints" / "last.pt").exists()
    done = subprocess.run(launch + plan.overrides(params, seed) + (["--resume"] if resume else ["--overwrite"]),
                          capture_output=True, text=True)
    lines = [line for line in done.stderr.splitlines() if line.startswith(("error", "stopped", "interrupted"))]
    summary = read_json(run / "summary.json", run) if (run / "summary.json").exists() else {}
    code = done.returncode if done.returncode >= 0 else 128 - done.returncode  # killed by a signal: 128 + N
    return code, (lines[-1] if lines else f"torchrun exited with {done.returncode}"), summary, _trained_seconds(run)


def _trained_seconds(run: Path) -> float:
    """The training time a run's last checkpoint holds (0 when it has none, or an older one without it)."""
    try:
        state = load_checkpoint(run / "checkpoints" / "last.pt")
        return saved_seconds((state.get("stateful") or {}).get("timer") or {"seconds": 0.0})
    except (OSError, ValueError, AttributeError):
        return 0.0


def _objective(figures: dict[str, Any], plan: SweepPlan) -> float:
    """The objective's value; a figure saved as null (non-finite: a reverse KL with no mode captured)
    counts as the worst value for the direction."""
    name, flat = plan.objective, flatten(figures, sep="/")
    value = flat.get(name)
    if value is None and name in flat:
        return math.inf if plan.direction == "minimize" else -math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        numbers = sorted(k for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        raise ConfigError(f"--objective {name!r}: the evaluation has no such figure (figures: {', '.join(numbers[:30])}"
                          f"{', ...' if len(numbers) > 30 else ''})")
    return float(value)
