"""Sweep workers as scheduler jobs (``--launcher slurm | local``, through submitit): the local executor
runs the real jobs detached on this machine; a stand-in ``sbatch`` shows what Slurm would be given.
``benchmarks/slurm_single_node.sh`` runs the same against a real Slurm."""
import os
import signal
import stat
import time

import pytest

from ..cli_run import run, spawn
from .test_sweep import AE, FIG, rows

optuna = pytest.importorskip("optuna")
pytest.importorskip("submitit")


def _study(out):
    return optuna.load_study(study_name=out.name, storage=f"sqlite:///{out}/sweep.db")


def _wait_done(out, n, timeout=240):
    """Until ``n`` trials of the sweep in ``out`` are complete and no job's worker is still running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        trials = _study(out).trials
        done = [t for t in trials if t.state.name == "COMPLETE"]
        results = list(out.glob("jobs/*/*_result.pkl"))
        if len(done) >= n and len(results) >= len({p.parent for p in out.glob("jobs/*/*_submitted.pkl")}):
            return trials
        time.sleep(0.5)
    raise AssertionError(f"the jobs did not finish: {[t.state.name for t in _study(out).trials]}")


def _children(pid):
    """The pids of ``pid``'s child processes (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if entry.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except OSError:
            pass
    return found


def figures(out):
    return sorted((x.get("param/networks.decoder.lr"), x["seed"], x[FIG]) for x in rows(out))


def test_local_jobs_are_submitted_the_command_returns_and_report_gathers_what_a_sweep_here_gets(tmp_path):
    grid = ["networks.decoder.lr=1e-3,3e-3", "--seeds", "0-1"]
    jobs = tmp_path / "jobs-sweep"
    start = time.monotonic()
    r = spawn("multinet", ["sweep", "autoencoder", *AE, *grid, "--objective", FIG, "--direction", "minimize",
                           "--out", str(jobs), "--launcher", "local", "--jobs", "2", "--slurm-time", "10"])
    assert r.returncode == 0, r.stderr
    ids = r.stdout.split("(local): ")[1].split(";")[0].split()
    assert len(ids) == 2 and all(i.isdigit() for i in ids), r.stdout  # the jobs' ids, printed
    # It returned without waiting for them (its output, captured here, is not held open by them).
    assert not (jobs / "sweep.csv").exists() and len(_study(jobs).get_trials(states=(
        optuna.trial.TrialState.COMPLETE,))) < 4
    trials = _wait_done(jobs, 4)
    assert len([t for t in trials if t.state.name == "COMPLETE"]) == 4  # each config and seed once
    assert {p.parent.name for p in jobs.glob("jobs/*/*_log.out")} == set(ids)  # each job's own log
    report = run("multinet", ["sweep", "autoencoder", *AE, *grid, "--objective", FIG, "--direction", "minimize",
                              "--out", str(jobs), "--report"])
    assert report.returncode == 0, report.stderr
    here = tmp_path / "here-sweep"
    assert run("multinet", ["sweep", "autoencoder", *AE, *grid, "--objective", FIG, "--direction", "minimize",
                            "--out", str(here)]).returncode == 0
    assert figures(jobs) == figures(here)
    assert time.monotonic() - start < 300


def test_a_job_signalled_at_its_time_limit_saves_is_requeued_and_its_trial_resumes(tmp_path):
    """What Slurm does 90 s before a job's time limit (submitit's ``--signal=USR2@90``), done here
    by hand once the run has a checkpoint: the worker saves and stops, the job is requeued, the trial
    is queued again and finishes from its checkpoint with the figures of an uninterrupted run."""
    long = [a if a != "20" else "1200" for a in AE] + ["train.checkpoint_every=100", "networks.decoder.lr=1e-3"]
    out = tmp_path / "cut"
    r = spawn("multinet", ["sweep", "autoencoder", *long, "--objective", FIG, "--direction", "minimize",
                           "--out", str(out), "--launcher", "local", "--slurm-time", "10"])
    assert r.returncode == 0, r.stderr
    # The local job's id is its controller's pid; the task (which runs the sweep worker) is its child.
    # Found before the run has a checkpoint, so that the signal follows the checkpoint at once: the run
    # has only ~1,100 fast steps left then.
    job = int(r.stdout.split("(local): ")[1].split(";")[0])
    deadline = time.monotonic() + 120
    while not (tasks := _children(job)) and time.monotonic() < deadline:
        time.sleep(0.05)
    while not list(out.glob("trials/0000/seed-0/checkpoints/step_*.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(tasks[0], signal.SIGUSR2)
    trials = _wait_done(out, 1)
    log = "".join(p.read_text() for p in out.glob("jobs/*/*_log.*"))
    assert "SIGTERM at step" in log and "Requeued job" in log, log[-3000:]
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"] and trials[1].user_attrs["retries"] == 0
    step = int(log.split("SIGTERM at step ")[1].split(";")[0])
    assert 100 <= step < 1200
    whole = tmp_path / "whole"
    assert run("multinet", ["sweep", "autoencoder", *long, "--objective", FIG, "--direction", "minimize",
                            "--out", str(whole)]).returncode == 0
    assert run("multinet", ["sweep", "autoencoder", *long, "--objective", FIG, "--direction", "minimize",
                            "--out", str(out), "--report"]).returncode == 0
    assert figures(out) == figures(whole)


def stand_ins(tmp_path, sbatch):
    """A folder for PATH with a stand-in ``sbatch`` running the shell lines ``sbatch``, and an
    ``srun`` (submitit asks for one before it submits; only the job itself would run it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("sbatch", sbatch), ("srun", "exit 1")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IXUSR)
    return bin_dir


def test_slurm_is_given_one_array_job_with_the_options_asked_for(tmp_path):
    """A stand-in ``sbatch`` on PATH keeps the script submitit writes: what a real cluster receives."""
    bin_dir = stand_ins(tmp_path, f"cp \"$1\" {tmp_path}/script.sh\necho 'Submitted batch job 4242'")
    env_path = os.environ["PATH"]
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{env_path}"
    try:
        r = run("multinet", ["sweep", "autoencoder", *AE, "networks.decoder.lr=1e-3,3e-3", "--out",
                             str(tmp_path / "s"), "--launcher", "slurm", "--jobs", "3", "--slurm-time", "1-02:00:00",
                             "--slurm-partition", "gpu", "--slurm-gpus-per-job", "2", "--slurm-cpus-per-job", "8",
                             "--slurm-mem", "32G", "--slurm-setup", "source /opt/venv/bin/activate",
                             "--slurm-option", "constraint=a100", "--slurm-option", "exclusive",
                             "--storage", f"sqlite:///{tmp_path}/s.db"])
    finally:
        os.environ["PATH"] = env_path
    assert r.returncode == 0, r.stderr
    assert "4242_0 4242_1 4242_2" in r.stdout
    hint = r.stdout.split("figures so far: ")[1].strip()  # pasted back, it reports: quoted, no launcher words
    assert "--launcher" not in hint and "--slurm" not in hint and "'source /opt/venv/bin/activate'" not in hint
    assert hint.endswith("--storage sqlite:///" + f"{tmp_path}/s.db --report") and "'channel.eval_db=[4.0]'" in hint
    script = (tmp_path / "script.sh").read_text()
    for line in ("#SBATCH --array=0-2%3", "#SBATCH --partition=gpu", "#SBATCH --time=1560",
                 "#SBATCH --gpus-per-node=2", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32G",
                 "#SBATCH --constraint=a100", "#SBATCH --exclusive\n", "source /opt/venv/bin/activate",
                 "#SBATCH --signal=USR2@180"):
        assert line in script, (line, script)
    assert [t.state.name for t in optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/s.db").trials] \
        == ["WAITING", "WAITING"]  # the grid is queued for the jobs, nothing ran here


@pytest.mark.parametrize("extra, says", [
    (["--slurm-partition", "gpu"], "--slurm-partition: only with --launcher slurm"),
    (["--slurm-time", "30"], "--slurm-time: only with --launcher slurm or local"),
    (["--launcher", "local", "--slurm-time", "soon"], "--slurm-time 'soon': MINUTES, HH:MM:SS or D-HH:MM:SS"),
    (["--launcher", "local", "--slurm-option", "exclusive"], "--slurm-option: only with --launcher slurm"),
    (["--launcher", "slurm", "--slurm-option=--exclusive"],
     "--slurm-option '--exclusive': KEY=VALUE or KEY (an sbatch option without its dashes)"),
    (["--launcher", "bsub"], "invalid choice: 'bsub'"),
])
def test_launcher_options_that_cannot_work_stop_in_one_line(tmp_path, extra, says):
    r = run("multinet", ["sweep", "autoencoder", *AE, "--out", str(tmp_path / "s"), *extra])
    assert r.returncode == 2 and says in r.stderr.strip().splitlines()[-1], r.stderr  # one line (after a usage)
    assert not (tmp_path / "s").exists()  # checked before anything is written


def test_slurm_without_sbatch_here_says_where_to_submit_from(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch on it
    r = run("multinet", ["sweep", "autoencoder", *AE, "--out", str(tmp_path / "s"), "--launcher", "slurm"])
    assert not (tmp_path / "s").exists()  # no study opened, no grid queued
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].endswith(
        "--launcher slurm: no sbatch command here; submit from a machine of the cluster (a login node), "
        "or use --launcher local to run the jobs on this machine"), r.stderr
    (stand_ins(tmp_path, "exit 1") / "srun").unlink()  # sbatch without srun: submitit could not submit
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    r = run("multinet", ["sweep", "autoencoder", *AE, "--out", str(tmp_path / "s"), "--launcher", "slurm"])
    assert r.returncode == 2 and "--launcher slurm: no srun command here" in r.stderr.strip().splitlines()[-1], r.stderr


def test_sbatch_refusing_the_jobs_is_one_line_with_its_reason(tmp_path, monkeypatch):
    bin_dir = stand_ins(tmp_path, "echo 'sbatch: error: invalid partition specified: gpux' >&2\n"
                                  "echo 'sbatch: error: Batch job submission failed: Invalid partition name specified' >&2\n"
                                  "exit 1")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    r = run("multinet", ["sweep", "autoencoder", *AE, "--out", str(tmp_path / "s"), "--launcher", "slurm",
                         "--slurm-partition", "gpux"])
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: --launcher slurm: the jobs were not submitted: sbatch: error: invalid partition specified: gpux"]
