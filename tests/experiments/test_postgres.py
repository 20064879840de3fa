"""Sweeps on a real PostgreSQL server (started by ``tests/pg_server.py``; ``.ci/run`` installs it):
worker processes that share one study as separate machines would, and a report while they run."""
import csv
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ..cli_run import ENV, run
from ..pg_server import Unavailable, postgres, server
from .test_sweep import AE, FIG

optuna = pytest.importorskip("optuna")

GRID = "networks.decoder.lr=1e-3,2e-3,3e-3,4e-3,5e-3,6e-3"


@pytest.fixture(scope="module")
def pg_url():
    folder = tempfile.mkdtemp(prefix="multinet-pg-")  # in /tmp itself: the server's user must reach it
    try:
        with postgres(Path(folder)) as url:
            yield url
    except Unavailable as e:
        pytest.skip(f"no PostgreSQL server: {e}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _command(out, url, study, *extra):
    return ["sweep", "autoencoder", *AE, GRID, "--objective", FIG, "--direction", "minimize", "--out", str(out),
            "--storage", url, "--study", study, *extra]


def _worker(out, url, study):
    return subprocess.Popen([sys.executable, "-m", "multinet", *_command(out, url, study)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def test_three_workers_share_one_study_with_no_config_run_twice_and_a_report_while_they_run(tmp_path, pg_url):
    workers = [_worker(tmp_path, pg_url, "three") for _ in range(3)]  # as three machines on one shared folder
    study = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # a report while the workers run: what is done so far
        try:
            study = optuna.load_study(study_name="three", storage=pg_url)
            if any(t.state.name == "COMPLETE" for t in study.trials):
                break
        except KeyError:  # not created yet
            pass
        time.sleep(0.5)
    early = run("multinet", _command(tmp_path, pg_url, "three", "--report"))
    assert early.returncode == 0, early.stderr
    with open(tmp_path / "sweep.csv", newline="") as f:
        assert 1 <= len(list(csv.DictReader(f))) <= 6
    outs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1][-1500:] for o in outs]
    study = optuna.load_study(study_name="three", storage=pg_url)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    lrs = sorted(t.params["networks.decoder.lr"] for t in done)
    assert lrs == ["1e-3", "2e-3", "3e-3", "4e-3", "5e-3", "6e-3"], lrs  # each config once
    # No config was started twice: a copy queued by a worker that started at the same moment is
    # set aside when taken (surplus), never run.
    assert len([t for t in study.trials if not t.user_attrs.get("surplus")]) == 6
    assert len({t.user_attrs["pid"] for t in done}) >= 2  # the work was shared
    said = [line.split(" (trial")[0] for out, _ in outs for line in out.splitlines() if line.startswith("trials/")]
    assert len(said) == len(set(said)) == 6, said  # each run trained by one worker
    with open(tmp_path / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and all(0 <= float(r[FIG]) <= 1 for r in rows)


def test_a_postgresql_url_without_a_driver_name_uses_the_installed_driver(tmp_path, pg_url):
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    r = run("multinet", ["sweep", "autoencoder", *AE, "networks.decoder.lr=1e-3", "--objective", FIG, "--direction",
                         "minimize", "--out", str(tmp_path), "--storage", plain, "--study", "plain"])
    assert r.returncode == 0, r.stderr
    assert [t.state.name for t in optuna.load_study(study_name="plain", storage=pg_url).trials] == ["COMPLETE"]


@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_a_trial_whose_worker_died_on_another_machine_is_finished_after_the_grace_period(tmp_path, where, request):
    """A worker elsewhere took a config, beat once and went silent (its machine died): a worker
    here, with heartbeats every second, finishes the rest, waits out the 4 s grace period, queues
    the silent trial again and trains it, with the figures an uninterrupted sweep gets."""
    from multinet.experiments.plan import SweepPlan
    from multinet.experiments.study import open_study, queue_grid
    url = request.getfixturevalue("pg_url") if where == "postgresql" else f"sqlite:///{tmp_path}/shared.db"
    grid = {"networks.decoder.lr": ["1e-3", "2e-3"]}
    plan = SweepPlan("autoencoder", AE[:4], [0], grid, objective=FIG, direction="minimize", steps=20)  # AE's items
    study = open_study(plan, tmp_path / "cut", url, "died", heartbeat=1)
    queue_grid(study, plan)
    elsewhere = study.ask()  # the other machine's worker: named, one heartbeat, then nothing
    elsewhere.set_user_attr("host", "another-machine")
    elsewhere.set_user_attr("pid", 4242)
    elsewhere.set_user_attr("heartbeat", 1)
    elsewhere.storage.record_heartbeat(elsewhere._trial_id)
    run_dir = tmp_path / "cut" / "trials" / "0000" / "seed-0"  # its run folder, locked by the dead worker
    run_dir.mkdir(parents=True)
    (run_dir / ".lock").write_text("4242 another-machine 2026-12-07T00:00:00\n")
    args = ["sweep", "autoencoder", *AE, "networks.decoder.lr=1e-3,2e-3", "--objective", FIG, "--direction",
            "minimize", "--storage", url, "--heartbeat", "1"]
    start = time.monotonic()
    r = run("multinet", [*args, "--out", str(tmp_path / "cut"), "--study", "died"])
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - start > 4  # it waited for the grace period
    trials = optuna.load_study(study_name="died", storage=url).trials
    assert trials[elsewhere.number].state.name == "FAIL"
    retry = [t for t in trials if t.user_attrs.get("retries") == elsewhere.number]
    assert [t.state.name for t in retry] == ["COMPLETE"]
    whole = run("multinet", [*args, "--out", str(tmp_path / "whole"), "--study", "whole"])
    assert whole.returncode == 0, whole.stderr

    def figures(out):
        with open(out / "sweep.csv", newline="") as f:
            return sorted((x["param/networks.decoder.lr"], x[FIG]) for x in csv.DictReader(f))
    assert figures(tmp_path / "cut") == figures(tmp_path / "whole")


def test_a_worker_killed_mid_trial_is_finished_by_another_from_its_checkpoint(tmp_path, pg_url):
    """Two workers on one study; one is killed with SIGKILL (its whole process group) once its run
    has a checkpoint: the other queues its trial again, resumes the run from that checkpoint, and
    the sweep's figures are those of an uninterrupted one."""
    import os
    import signal
    long = [a if a != "20" else "400" for a in AE] + ["train.checkpoint_every=50"]

    def command(out, study):
        return ["sweep", "autoencoder", *long, "networks.decoder.lr=1e-3,2e-3", "--objective", FIG, "--direction",
                "minimize", "--out", str(out), "--storage", pg_url, "--study", study, "--heartbeat", "1"]
    cut = tmp_path / "cut"
    victim = subprocess.Popen([sys.executable, "-m", "multinet", *command(cut, "killed")], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(cut.glob("trials/*/seed-0/checkpoints/step_*.pt")) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivor = subprocess.Popen([sys.executable, "-m", "multinet", *command(cut, "killed")], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    out, err = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, err[-2000:]
    assert "resuming" in out or any(t.user_attrs.get("retries") is not None
                                    for t in optuna.load_study(study_name="killed", storage=pg_url).trials), out
    whole = run("multinet", command(tmp_path / "whole", "killed-whole"))  # one server for the module: own names
    assert whole.returncode == 0, whole.stderr

    def figures(folder):
        with open(folder / "sweep.csv", newline="") as f:
            return sorted((x["param/networks.decoder.lr"], x[FIG]) for x in csv.DictReader(f))
    assert figures(cut) == figures(tmp_path / "whole")


def test_a_trial_that_never_beat_is_not_waited_for(tmp_path):
    """A running trial from a worker without heartbeats (``--heartbeat 0``, or an older multinet)
    may never end: a worker with nothing left to take leaves instead of waiting on it forever."""
    from multinet.experiments.plan import SweepPlan
    from multinet.experiments.study import open_study, queue_grid
    url = f"sqlite:///{tmp_path}/shared.db"
    plan = SweepPlan("autoencoder", AE[:4], [0], {"networks.decoder.lr": ["1e-3", "2e-3"]}, objective=FIG,
                     direction="minimize", steps=20)
    study = open_study(plan, tmp_path, url, "silent")
    queue_grid(study, plan)
    elsewhere = study.ask()
    elsewhere.set_user_attr("host", "another-machine")
    elsewhere.set_user_attr("pid", 4242)
    start = time.monotonic()
    r = run("multinet", ["sweep", "autoencoder", *AE, "networks.decoder.lr=1e-3,2e-3", "--objective", FIG,
                         "--direction", "minimize", "--storage", url, "--heartbeat", "1", "--out", str(tmp_path),
                         "--study", "silent"])
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - start < 60 and "waiting for" not in r.stdout
    states = [t.state.name for t in optuna.load_study(study_name="silent", storage=url).trials]
    assert states == ["RUNNING", "COMPLETE"]


def test_a_database_that_goes_down_mid_sweep_stops_it_in_one_line_and_the_same_command_resumes(tmp_path):
    """The server is stopped (as a crash) while a run trains: the sweep ends with one line and exit
    status 75; with the server back, the same command finishes with the figures of a sweep that
    never lost its database."""
    import glob
    folder = Path(tempfile.mkdtemp(prefix="multinet-pg-"))
    try:
        with postgres(folder) as url:
            long = [a if a != "20" else "1000" for a in AE] + ["train.checkpoint_every=100"]
            command = [sys.executable, "-m", "multinet", "sweep", "autoencoder", *long, "networks.decoder.lr=1e-3",
                       "--objective", FIG, "--direction", "minimize", "--out", str(tmp_path / "cut"), "--storage", url]
            p = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
            deadline = time.monotonic() + 120
            while not glob.glob(f"{tmp_path}/cut/trials/*/seed-0/checkpoints/step_*.pt") and time.monotonic() < deadline:
                time.sleep(0.1)
            server(folder, "stop")
            _, err = p.communicate(timeout=300)
            assert p.returncode == 75, err[-3000:]
            lines = err.strip().splitlines()
            assert lines[-1].startswith("error: the sweep's storage stopped answering (") and "Traceback" not in err
            assert lines[-1].endswith("the same command resumes the sweep once the storage is back")
            server(folder, "start")
            again = run("multinet", command[3:])  # the same command (here in this process)
            assert again.returncode == 0, again.stderr[-3000:]
        whole = run("multinet", ["sweep", "autoencoder", *long, "networks.decoder.lr=1e-3", "--objective", FIG,
                                 "--direction", "minimize", "--out", str(tmp_path / "whole")])
        assert whole.returncode == 0, whole.stderr

        def figures(out):
            with open(out / "sweep.csv", newline="") as f:
                return sorted((x["seed"], x[FIG]) for x in csv.DictReader(f))
        assert figures(tmp_path / "cut") == figures(tmp_path / "whole")
    except Unavailable as e:
        pytest.skip(f"no PostgreSQL server: {e}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
