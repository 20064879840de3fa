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

from .cli_run import ENV, run
from .pg_server import Unavailable, postgres
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
