"""One run per run folder: a lock file naming its owner, released on exit, stale ones detected.

Two runs writing one folder interleave their ``metrics.jsonl`` rows and overwrite each other's
checkpoints and summary; the second run must stop instead. The lock is ``<out>/.lock`` created
with ``O_EXCL`` (atomic on local and NFSv3+ filesystems) and holding ``pid host start-time``. A
lock whose process is gone (same host, no such pid) is stale: a run killed with ``kill -9``
left it, and the next run takes it over. Under torchrun rank 0 alone takes it. The lock
also names the job that restarts it: torchrun's elastic run (the rendezvous id), else a Slurm job.
After torchrun's agents restart the job (a lost node, ``--max-restarts``), or Slurm requeues it,
the new process takes over a lock of the same job held on another machine, or by a process gone
from this one: the agents stop every worker of a round before the next round starts, Slurm ends a
job's processes before requeueing it, and a lost machine's processes are gone with it. So a job id
must name one run: give each torchrun job its own ``--rdzv-id`` (``$SLURM_JOB_ID``).

The folder's other rule lives here too: which files mean an earlier run left results there
(``earlier_run``; a run that died before any result left none), and clearing them for a new run.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from ..state.runfiles import read_text

__all__ = ["RunLock", "LockedError", "process_alive", "earlier_run", "clear_run_folder", "RUN_FILES", "SETUP_FILES"]


class LockedError(OSError):
    """The run folder is in use by another live run."""


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (an id no process can have: no)."""
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 1 << 22:  # Linux's pid_max at most
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """``.lock`` in a run folder: one run at a time. A lock whose process is gone from this host is
    taken over; so is one held by ``dead`` (pid, host), a worker a sweep knows to be dead elsewhere."""

    def __init__(self, folder: str | Path, dead: tuple[int, str] | None = None) -> None:
        self.path = Path(folder) / ".lock"
        self.held, self.dead = False, dead

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OSError(f"--out {self.path.parent}: cannot create the run folder ({e.strerror or e})") from None
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._stale():
                    raise LockedError(self._message()) from None
                self.path.unlink(missing_ok=True)  # its owner is gone: take it over
                continue
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%dT%H:%M:%S')}"
                            f"{' ' + job if (job := _job()) else ''}\n")
            except OSError as e:  # a full disk: no empty lock left behind for the next run to puzzle over
                self.path.unlink(missing_ok=True)
                raise OSError(f"--out {self.path.parent}: cannot write {self.path.name} "
                              f"({e.strerror or e})") from None
            self.held = True
            return
        raise LockedError(self._message())

    def _owner(self) -> tuple[int, str, str, str] | None:
        try:
            pid, host, since, *rest = read_text(self.path, self.path.parent, limit=4096).split()
            return int(pid), host, since, (rest[0] if rest else "")
        except (OSError, ValueError):
            return None

    def _stale(self) -> bool:
        owner = self._owner()
        if owner is None:  # unreadable or half-written: its writer died while writing it
            return time.time() - self.path.stat().st_mtime > 10 if self.path.exists() else True
        pid, host, _, job = owner
        here = host == socket.gethostname()
        if job and job == _job() and not (here and process_alive(pid)):
            return True  # an earlier round or run of this job (restarted, requeued), on a machine that may be gone
        return (here and not process_alive(pid)) or (pid, host) == self.dead

    def _message(self) -> str:
        owner = self._owner()
        who = f"pid {owner[0]} on {owner[1]} since {owner[2]}" if owner else "another run"
        return (f"--out {self.path.parent}: in use by another run ({who}); wait for it to end, or remove "
                f"{self.path} if that run is gone")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def _job() -> str:
    """The restartable job this process is part of, as the lock names it: torchrun's elastic run
    (``job=elastic:ID``, its rendezvous id, unless torchrun's default ``none``), else a Slurm job
    (``job=slurm:ID``: a requeued job keeps its id); "" for neither."""
    for kind, name in (("elastic", "TORCHELASTIC_RUN_ID"), ("slurm", "SLURM_JOB_ID")):
        value = os.environ.get(name, "")
        if value and value != "none" and not any(c.isspace() for c in value):
            return f"job={kind}:{value}"
    return ""


# What a run writes that a new run in the same folder would append to, mix with, or prune.
RUN_FILES = ("checkpoints", "metrics.jsonl", "summary.json", "recipe.toml", "parameter_groups.txt", "tb",
             "mlflow_run_id", "wandb_run_id", "mlruns", "wandb")
# Written before the first step: a folder holding only these (and an empty metrics.jsonl) is a run
# that died during setup or its first steps, with nothing to keep or resume.
SETUP_FILES = ("recipe.toml", "parameter_groups.txt", "tb")


def earlier_run(folder: Path) -> list[str]:
    """The run files in ``folder`` when an earlier run left results there (else none)."""
    found = []
    for name in RUN_FILES:
        p = folder / name
        if p.is_file() or (p.is_dir() and any(p.iterdir())):
            found.append(name)
    results = [n for n in found if n not in SETUP_FILES
               and not (n == "metrics.jsonl" and (folder / n).stat().st_size == 0)]
    return found if results else []


def clear_run_folder(folder: Path, earlier_files: bool) -> None:
    """Remove the temporary files of killed saves, and with ``earlier_files`` every run file too."""
    import shutil
    if earlier_files:
        for name in RUN_FILES:
            p = folder / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    for tmp in [*(folder / "checkpoints").glob(".*.tmp"), *folder.glob(".*.tmp*")]:
        tmp.unlink(missing_ok=True)
