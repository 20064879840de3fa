"""Sweep workers as cluster jobs, through submitit (as Hydra's submitit launcher): ``--launcher slurm``
submits ``--jobs`` workers as one Slurm array job sharing the sweep's storage, prints the job ids and
returns; ``sweep --report`` gathers. ``--launcher local`` runs the same jobs detached on this machine
(submitit's local executor), which is how the flow is tested without a cluster.

Each job runs ``python -m multinet sweep ... --worker job`` as a child process: it queues again what
an earlier job left interrupted, then takes trials until none is left. Near its time limit (or on
preemption) submitit signals the job; the worker is stopped with SIGTERM (its run saves a
checkpoint), and the job is requeued, so its trial resumes from that checkpoint.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..config import ConfigError

__all__ = ["SlurmOptions", "SweepJob", "submit_workers", "parse_minutes"]

LAUNCHERS = ("here", "slurm", "local")


def parse_minutes(text: str) -> int:
    """Slurm's time forms: ``MINUTES``, ``HH:MM:SS``, ``MM:SS``, ``D-HH[:MM[:SS]]`` -> whole minutes."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise ConfigError(f"--slurm-time {text!r}: MINUTES, HH:MM:SS or D-HH:MM:SS")
    days, a, b, c = (int(g) if g else 0 for g in m.groups())
    if m.group(1) is not None:  # D-HH[:MM[:SS]]
        minutes = days * 1440 + a * 60 + b + (c > 0)
    elif m.group(4) is not None:  # HH:MM:SS
        minutes = a * 60 + b + (c > 0)
    else:  # MINUTES or MM:SS (seconds round up)
        minutes = a + (b > 0)
    if minutes < 1:
        raise ConfigError(f"--slurm-time {text!r}: at least one minute")
    return minutes


@dataclass(frozen=True)
class SlurmOptions:
    """What each worker job asks of the scheduler (``--slurm-*``)."""
    time: str = "60"
    partition: str = ""
    gpus_per_job: int = 0
    cpus_per_job: int = 0  # 0: the cluster's default
    mem: str = ""  # Slurm's --mem, e.g. 16G; "": the cluster's default
    account: str = ""
    qos: str = ""
    setup: tuple[str, ...] = ()  # shell lines before the worker starts (module load, source a venv)
    options: tuple[str, ...] = ()  # more sbatch options, KEY=VALUE

    def executor_parameters(self, launcher: str, name: str, jobs: int) -> dict[str, Any]:
        """The parameters of submitit's ``AutoExecutor`` (``slurm_``-prefixed ones apply to Slurm only)."""
        params: dict[str, Any] = {"timeout_min": parse_minutes(self.time), "name": name, "tasks_per_node": 1,
                                  "nodes": 1, "gpus_per_node": self.gpus_per_job}
        if self.cpus_per_job:
            params["cpus_per_task"] = self.cpus_per_job
        if launcher == "local":
            return params
        extra = {}
        for option in self.options:
            key, eq, value = option.partition("=")
            if not eq or not key.strip():
                raise ConfigError(f"--slurm-option {option!r}: KEY=VALUE (an sbatch option without its dashes)")
            extra[key.strip().replace("-", "_")] = value
        params.update(slurm_array_parallelism=jobs, slurm_additional_parameters=extra,
                      **{f"slurm_{k}": v for k, v in (("partition", self.partition), ("mem", self.mem),
                                                       ("account", self.account), ("qos", self.qos)) if v},
                      **({"slurm_setup": list(self.setup)} if self.setup else {}))
        return params


@dataclass
class SweepJob:
    """What one submitted job runs: a sweep worker (``python -m multinet sweep ARGV --worker job``) in
    the folder the sweep was submitted from. submitit calls ``checkpoint`` on the job's timeout or
    preemption signal: the worker is stopped cleanly and the same job is requeued."""
    argv: list[str]
    cwd: str
    grace: float = 120.0  # seconds the worker has to save its checkpoint
    _child: Any = field(default=None, repr=False, compare=False)

    def __call__(self) -> int:
        def ignore_usr2() -> None:  # the scheduler signals every process of the job: submitit handles it
            signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        self._child = subprocess.Popen([sys.executable, "-m", "multinet", "sweep", *self.argv, "--worker", "job"],
                                       cwd=self.cwd, start_new_session=True, preexec_fn=ignore_usr2)
        while (code := self._child.poll()) is None:
            time.sleep(1.0)
        if code not in (0, 130, 143):
            raise RuntimeError(f"the sweep worker exited with code {code}; its lines are in this job's log")
        return code

    def checkpoint(self) -> Any:
        import submitit
        child, self._child = self._child, None
        if child is not None and child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)  # the worker and a torchrun job of its own save and stop
            deadline = time.monotonic() + self.grace
            while child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
        return submitit.helpers.DelayedSubmission(SweepJob(self.argv, self.cwd, self.grace))

    def __getstate__(self) -> dict[str, Any]:  # the process is this job's own, never pickled
        return {"argv": self.argv, "cwd": self.cwd, "grace": self.grace, "_child": None}


def submit_workers(launcher: str, options: SlurmOptions, jobs: int, argv: list[str], out: Path,
                   name: str) -> list[str]:
    """Submit ``jobs`` sweep workers (one array job on Slurm) and return their job ids. Their logs go
    to ``out/jobs/``."""
    try:
        import submitit
    except ImportError:
        raise ConfigError(f"--launcher {launcher} needs submitit: pip install 'multinet[slurm]'") from None
    if launcher == "slurm" and not shutil.which("sbatch"):
        raise ConfigError("--launcher slurm: no sbatch command here; submit from a machine of the cluster "
                          "(a login node), or use --launcher local to run the jobs on this machine")
    executor = submitit.AutoExecutor(folder=out / "jobs" / "%j", cluster=launcher)
    executor.update_parameters(**options.executor_parameters(launcher, name, jobs))
    job = SweepJob(argv, os.getcwd())
    try:
        with _detached(launcher == "local"), executor.batch():
            submitted = [executor.submit(job) for _ in range(jobs)]
    except Exception as e:  # noqa: BLE001 - sbatch refused the job: its own words, in one line
        first = str(e).strip().splitlines()
        raise ConfigError(f"--launcher {launcher}: the jobs were not submitted: "
                          f"{first[-1] if first else type(e).__name__}") from None
    return [j.job_id for j in submitted]


@contextlib.contextmanager
def _detached(local: bool) -> Iterator[None]:
    """Jobs started here by submitit's local executor inherit this process's standard streams; they
    get /dev/null instead, so a caller reading this command's output is not held until they end."""
    if not local:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        yield
    finally:
        for fd, copy in zip((0, 1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(null)
