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
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..config import ConfigError

__all__ = ["SlurmOptions", "SweepJob", "submit_workers", "check_launcher", "worker_command", "parse_minutes"]

# submitit asks the scheduler for a signal this long before a job's time limit; the worker then has
# all but SAVE_MARGIN of it to save and stop before the job is requeued.
SIGNAL_LEAD_S, SAVE_MARGIN_S = 180, 30


def worker_command(argv: list[str], kind: str) -> list[str]:
    """The command of a sweep worker: ``spawned`` by a sweep here, or a scheduler's ``job``."""
    return [sys.executable, "-m", "multinet", "sweep", *argv, "--worker", kind]


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
    options: tuple[str, ...] = ()  # more sbatch options: KEY=VALUE, or KEY for a flag

    def executor_parameters(self, launcher: str, name: str, jobs: int) -> dict[str, Any]:
        """The parameters of submitit's ``AutoExecutor`` (``slurm_``-prefixed ones apply to Slurm only).
        Each job is one task on one node, so its GPUs are the node's."""
        minutes = parse_minutes(self.time)
        params: dict[str, Any] = {"timeout_min": minutes, "name": name, "tasks_per_node": 1, "nodes": 1,
                                  "gpus_per_node": self.gpus_per_job}
        if self.cpus_per_job:
            params["cpus_per_task"] = self.cpus_per_job
        if launcher == "local":
            return {**params, "signal_delay_s": min(SIGNAL_LEAD_S, minutes * 30)}  # submitit's LocalExecutor
        extra: dict[str, Any] = {}
        for option in self.options:
            key, eq, value = option.partition("=")
            if not key.strip() or key.strip().startswith("-"):
                raise ConfigError(f"--slurm-option {option!r}: KEY=VALUE or KEY (an sbatch option without its dashes)")
            extra[key.strip().replace("-", "_")] = value if value else True  # a bare KEY (or KEY=) is a flag
        params.update(slurm_array_parallelism=jobs, slurm_additional_parameters=extra,
                      slurm_signal_delay_s=SIGNAL_LEAD_S,
                      **{f"slurm_{k}": v for k, v in (("partition", self.partition), ("mem", self.mem),
                                                       ("account", self.account), ("qos", self.qos)) if v},
                      **({"slurm_setup": list(self.setup)} if self.setup else {}))
        return params


@dataclass
class SweepJob:
    """What one submitted job runs: a sweep worker (``worker_command(argv, "job")``) in the folder the
    sweep was submitted from, with ``threads`` threads (0: torch's default). submitit calls
    ``checkpoint`` on the job's time-limit or preemption signal: the worker is stopped as Ctrl-C stops
    it (its run saves), and the same job is requeued."""
    argv: list[str]
    cwd: str
    threads: int = 0
    grace: float = SIGNAL_LEAD_S - SAVE_MARGIN_S  # seconds the worker has to save and stop
    _child: Any = field(default=None, repr=False, compare=False)

    def __call__(self) -> int:
        def ignore_usr2() -> None:  # the scheduler signals every process of the job: submitit handles it
            signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        env = {**os.environ, **({"OMP_NUM_THREADS": str(self.threads)} if self.threads else {})}
        # Its own session: a torchrun job of the worker's is stopped with it (os.killpg).
        self._child = subprocess.Popen(worker_command(self.argv, "job"), cwd=self.cwd, env=env,
                                       start_new_session=True, preexec_fn=ignore_usr2)
        try:
            while (code := self._child.poll()) is None:
                time.sleep(1.0)
        except BaseException:  # the job cancelled (SIGINT) or ended by submitit: the worker goes with it
            self._stop()
            raise
        if code not in (0, 130, 143):
            raise RuntimeError(f"the sweep worker exited with code {code}; its lines are in this job's log")
        return code

    def checkpoint(self) -> Any:
        """Called by submitit inside its signal handler: stop the worker, then requeue this job."""
        import submitit
        self._stop()
        return submitit.helpers.DelayedSubmission(dataclasses.replace(self))  # the same job, no process

    def _stop(self) -> None:
        """SIGTERM to the worker's session, then wait up to ``grace`` for it to save and leave. Waited
        for with ``os.waitpid``: inside a signal handler ``Popen.poll`` may find its lock taken."""
        child, self._child = self._child, None
        if child is None:
            return
        try:
            os.killpg(child.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline:
            try:
                if os.waitpid(child.pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:  # already reaped
                return
            time.sleep(0.5)

    def __getstate__(self) -> dict[str, Any]:  # the process is this job's own, never pickled
        return {**self.__dict__, "_child": None}


def check_launcher(launcher: str) -> None:
    """What submitting needs, checked before anything is written: submitit, and for Slurm its
    ``sbatch`` and ``srun`` (submitit submits with one and starts each job with the other)."""
    if importlib.util.find_spec("submitit") is None:
        raise ConfigError(f"--launcher {launcher} needs submitit: pip install 'multinet[slurm]'")
    missing = [command for command in ("sbatch", "srun") if not shutil.which(command)] if launcher == "slurm" else []
    if missing:
        raise ConfigError(f"--launcher slurm: no {missing[0]} command here; submit from a machine of the cluster "
                          "(a login node), or use --launcher local to run the jobs on this machine")


def submit_workers(launcher: str, options: SlurmOptions, jobs: int, argv: list[str], out: Path, name: str,
                   threads: int = 0) -> list[str]:
    """Submit ``jobs`` sweep workers (one array job on Slurm) and return their job ids. Their logs go
    to ``out/jobs/``; what ``sbatch`` says when it refuses ends the one-line error."""
    import submitit
    folder = out / "jobs" / "%j"
    executor = submitit.LocalExecutor(folder) if launcher == "local" else submitit.AutoExecutor(folder, cluster="slurm")
    params = options.executor_parameters(launcher, name, jobs)
    executor.update_parameters(**params)
    lead = params.get("signal_delay_s") or params["slurm_signal_delay_s"]
    job = SweepJob(argv, os.getcwd(), threads, grace=max(lead - SAVE_MARGIN_S, lead / 2))
    with tempfile.TemporaryFile("w+") as said:
        try:
            # Local jobs must not hold this command's output open; sbatch's complaints go in the error.
            with _streams_to(said), executor.batch():
                submitted = [executor.submit(job) for _ in range(jobs)]
        except Exception as e:  # noqa: BLE001 - sbatch refused the job: its own words, in one line
            said.seek(0)
            lines = [line.strip() for line in said.read().splitlines() + str(e).splitlines() if line.strip()]
            raise ConfigError(f"--launcher {launcher}: the jobs were not submitted: "
                              f"{lines[0] if lines else type(e).__name__}") from None
    return [j.job_id for j in submitted]


@contextlib.contextmanager
def _streams_to(file: Any) -> Iterator[None]:
    """Standard input from /dev/null and output to ``file`` while jobs are submitted: jobs that
    submitit's local executor starts inherit them, and sbatch (through submitit) writes its errors
    there."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(n) for n in (0, 1, 2)]
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
        os.dup2(file.fileno(), 1)
        os.dup2(file.fileno(), 2)
        with contextlib.redirect_stdout(file), contextlib.redirect_stderr(file):
            yield
    finally:
        for n, copy in zip((0, 1, 2), saved):
            os.dup2(copy, n)
            os.close(copy)
        os.close(null)
