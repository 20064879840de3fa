"""Workers that share one study: whose trial is whose, and what happens when a worker dies.

A worker names its host and process on each trial it takes. A trial left running by a dead worker
of this host (its process is gone), or, on a database storage with heartbeats, by one whose
heartbeat stopped on any machine, is failed and queued again, and its runs resume from their
checkpoints. Workers that start at the same moment may each queue the grid, or each queue a retry:
the first copy of each runs, a copy taken second is set aside (``surplus``).
"""
from __future__ import annotations

import contextlib
import datetime
import socket
import threading
import warnings
from typing import Any, Iterator

from ..run.lock import process_alive
from .plan import SweepPlan
from .storage import heartbeat_of
from .trials import live_trials, params_of, trial_attr

__all__ = ["requeue_interrupted", "queued_before", "asked_for", "over_budget", "set_aside", "heartbeats"]


def requeue_interrupted(study: Any, plan: SweepPlan) -> int:
    """Queue again every trial this host's dead workers left running and every interrupted one not
    yet queued again (its runs resume in its folder). Returns how many."""
    import optuna
    n = 0
    if heartbeat_of(study._storage):  # a worker silent past the grace period, on any machine
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    now = datetime.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = trial_attr(t, "pid", int)
        # A worker names its host, then its process: a trial with a host but no process yet is alive.
        mine = pid is not None and trial_attr(t, "host", str) == socket.gethostname() and not process_alive(pid)
        # Killed between taking the trial and naming its process: unnamed for a minute means gone.
        unnamed = pid is None and t.datetime_start and (now - t.datetime_start).total_seconds() > 60
        if mine or unnamed:
            try:
                study.tell(t.number, state=optuna.trial.TrialState.FAIL)  # its worker is gone (kill -9)
            except optuna.exceptions.UpdateFinishedTrialError:  # another worker got there first
                pass
    trials = live_trials(study)
    retried = {trial_attr(t, "retries", int) for t in trials}
    for t in trials:
        dead = t.state == optuna.trial.TrialState.FAIL and "error" not in t.user_attrs
        if dead and t.number not in retried:
            params = params_of(t, plan)
            dead = {"dead_pid": trial_attr(t, "pid", int), "dead_host": trial_attr(t, "host", str)}
            study.enqueue_trial(params, user_attrs={"retries": t.number, "queued": True, "params": params,
                                                    **{k: v for k, v in dead.items() if v is not None}})
            n += 1
    return n


def queued_before(trial: Any, plan: SweepPlan, study: Any) -> bool:
    """Whether a trial with a smaller number was queued as the same work (config, seed, and which
    dead trial it retries): workers that start together may each queue the grid, or each queue a
    retry; the first copy is the one that runs."""
    def key(t: Any) -> tuple[Any, Any]:
        return params_of(t, plan), trial_attr(t, "retries", int)
    mine = key(trial)
    return any(t.number < trial.number and trial_attr(t, "queued", bool, False) and key(t) == mine
               for t in live_trials(study))


def asked_for(trials: list[Any], before: int | None = None) -> int:
    """How many trials count against a search's ``--trials``: asked for (running, complete or pruned)
    and not set aside; with ``before``, only those numbered below it."""
    from optuna.trial import TrialState
    counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return sum(t.state in counted and (before is None or t.number < before)
               and not trial_attr(t, "surplus", bool, False) for t in trials)


def over_budget(trial: Any, plan: SweepPlan, study: Any) -> bool:
    """Whether a search trial just asked for is one more than ``--trials``: workers that count the
    trials at the same moment may each ask for the last one; the storage numbers them in turn, and
    those beyond the budget by number are set aside. A retry of a dead trial is never beyond it."""
    if not plan.search or trial_attr(trial, "queued", bool, False):
        return False
    return asked_for(study.get_trials(deepcopy=False), before=trial.number) >= plan.trials


def set_aside(study: Any, trial: Any) -> None:
    """A trial taken only to find its work done or taken (``surplus``): ended, never run, left out
    of the report and of the count."""
    from optuna.trial import TrialState
    trial.set_user_attr("surplus", True)
    study.tell(trial, state=TrialState.FAIL)


@contextlib.contextmanager
def heartbeats(trial: Any) -> Iterator[None]:
    """While inside, ``trial``'s heartbeat is recorded every heartbeat interval (a database storage
    with heartbeats on; otherwise nothing), so that workers elsewhere see it alive."""
    storage, every = trial.storage, heartbeat_of(trial.storage)
    if not every:
        yield
        return
    trial.set_user_attr("heartbeat", every)  # other workers wait for a trial that beats, and for no other
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.record_heartbeat(trial._trial_id)
            except Exception:  # noqa: BLE001 - a database hiccup: the next beat tries again
                pass
            if stop.wait(every):
                return
    thread = threading.Thread(target=beat, name="multinet-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
