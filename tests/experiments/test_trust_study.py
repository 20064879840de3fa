"""Trust, part 2: a sweep's study and folders are data. A planted sampler state never runs, a trial
never chooses where runs are written, and every value read back from a study is checked."""
import json
import os
import pickle
import shutil
import sqlite3

import numpy as np
import pytest

from multinet.config import ConfigError

from ..cli_run import run, run_within
from .test_sweep import AE, FIG, sweep
from ..state.test_trust import _Payload

optuna = pytest.importorskip("optuna")
cmaes = pytest.importorskip("cmaes")

GRID = "networks.decoder.lr=1e-3,3e-3"
SEARCH = ["--search", "networks.decoder.lr=loguniform:1e-4:1e-2"]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A finished two-config grid sweep; each test works on its own copy."""
    out = tmp_path_factory.mktemp("study") / "grid"
    r = sweep(out, GRID)
    assert r.returncode == 0, r.stderr
    return out


def _copy(grid, tmp_path):
    out = tmp_path / "grid"  # the study's name is the folder's: keep it
    shutil.copytree(grid, out)
    return out, optuna.load_study(study_name="grid", storage=f"sqlite:///{out}/sweep.db")


def _one_line(r, msg):
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, \
        (r.returncode, r.stderr)
    assert msg in r.stderr, r.stderr


def test_a_planted_cma_es_state_is_refused_in_one_line_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    out = tmp_path / "search"
    out.mkdir()
    study = optuna.create_study(study_name="search", storage=f"sqlite:///{out}/sweep.db")
    dist = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    study.add_trial(optuna.trial.create_trial(
        params={"networks.decoder.lr": 1e-3}, distributions={"networks.decoder.lr": dist}, value=0.5,
        system_attrs={"cma:optimizer:0": pickle.dumps(_Payload(marker)).hex()}))
    r = sweep(out, *SEARCH, "--trials", "2", "--sampler", "cmaes")
    _one_line(r, "CMA-ES state (cma:optimizer:*): holds os.makedirs, not only the CMA-ES optimizer's numbers")
    assert "--trust-storage" in r.stderr
    assert not marker.exists()


def test_the_cma_es_state_a_sweep_wrote_reads_back_without_a_flag():
    from multinet.experiments.storage import sampler_state
    opt = cmaes.CMA(mean=np.zeros(2), sigma=1.0, seed=1)
    opt.tell([(opt.ask(), float(i)) for i in range(opt.population_size)])
    again = sampler_state(pickle.dumps(opt).hex(), "test")
    assert isinstance(again, cmaes.CMA) and again.generation == 1 and np.array_equal(again.mean, opt.mean)
    with pytest.raises(ConfigError, match="not a readable CMA-ES state"):
        sampler_state("zz", "test")
    # NumPy's builders only as a pickled array uses them: no object dtype (pointers the file chose,
    # which crashed the process), no array of a size the file chose.
    for evil, msg in ((np.ndarray, ((1,), np.dtype("O"), b"A" * 8)), "numpy.dtype"), \
                     ((np.ndarray, ((10 ** 9,), np.dtype("f8"))), "not a readable CMA-ES state"):
        class Evil:
            def __reduce__(self, e=evil):
                return e
        with pytest.raises(ConfigError, match=msg):
            sampler_state(pickle.dumps(Evil()).hex(), "test")
    opt.__dict__["_popsize"] = 10 ** 9  # an optimizer whose sizes are not an optimizer's
    with pytest.raises(ConfigError, match="out of range"):
        sampler_state(pickle.dumps(opt).hex(), "test")
    with pytest.raises(ConfigError, match=r"not a CMA-ES state \(a list\)"):
        sampler_state(pickle.dumps([1, 2]).hex(), "test")


def test_trust_storage_gives_optunas_own_sampler():
    from multinet.experiments.storage import make_sampler
    assert type(make_sampler("cmaes", True)) is optuna.samplers.CmaEsSampler
    checked = make_sampler("cmaes", False)
    assert isinstance(checked, optuna.samplers.CmaEsSampler) and type(checked) is not optuna.samplers.CmaEsSampler


@pytest.mark.parametrize("folder", ["/tmp/multinet-victim", "../../victim", "trials/../../victim", 7])
def test_a_trials_folder_is_derived_never_taken_from_the_study(grid, tmp_path, folder):
    out, study = _copy(grid, tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "metrics.jsonl").write_text('{"step": 1}\n' * 60)
    if isinstance(folder, str) and folder.startswith("/"):
        folder = str(victim)
    # A waiting trial for a seed the grid has not run yet, naming a folder of its own.
    study.enqueue_trial({"networks.decoder.lr": "1e-3"}, user_attrs={
        "queued": True, "params": {"networks.decoder.lr": "1e-3", "seed": 3}, "folder": folder})
    r = sweep(out, GRID)
    assert r.returncode == 0, r.stderr
    assert (out / "trials" / "0000" / "seed-3" / "summary.json").exists()
    assert sorted(p.name for p in victim.iterdir()) == ["metrics.jsonl"]
    assert (victim / "metrics.jsonl").read_text() == '{"step": 1}\n' * 60
    assert "victim" not in (out / "sweep.md").read_text()


@pytest.mark.parametrize("attr,value,msg", [
    ("params", [1, 2], "its 'params' is [1, 2], not a dict"),
    ("params", {"networks.decoder.lr": "9e-9", "seed": 0}, "networks.decoder.lr='9e-9' is not a value of this sweep"),
    ("params", {"networks.decoder.lr": "1e-3", "seed": -4}, "seed=-4 is not a value of this sweep"),
    ("params", {"networks.decoder.lr": "1e-3", "seed": "0"}, "seed='0' is not a value of this sweep"),
    ("pid", "1234", "its 'pid' is '1234', not a int"),
    ("seconds/seed-0", "nan", "its 'seconds/seed-0' is 'nan', not a int or float"),
    ("seconds/seed-0", -1e9, "its seconds/seed-0 -1000000000.0 is not a run's time"),
    ("surplus", "yes", "its 'surplus' is 'yes', not a bool")])
def test_every_value_read_back_from_a_study_is_checked(grid, tmp_path, attr, value, msg):
    out, _ = _copy(grid, tmp_path)
    # Written straight into sweep.db, as anyone with the file can (Optuna refuses to edit a finished trial).
    with sqlite3.connect(out / "sweep.db") as db:
        (trial_id,), = db.execute("SELECT trial_id FROM trials WHERE number = 0")
        db.execute("DELETE FROM trial_user_attributes WHERE trial_id = ? AND key = ?", (trial_id, attr))
        db.execute("INSERT INTO trial_user_attributes (trial_id, key, value_json) VALUES (?, ?, ?)",
                   (trial_id, attr, json.dumps(value)))
        if attr == "pid":  # a pid is read for the trials still marked as running
            db.execute("UPDATE trials SET state = 'RUNNING' WHERE trial_id = ?", (trial_id,))
    for extra in ([], [] if attr == "pid" else ["--report"]):  # only a sweep that continues asks after a pid
        _one_line(sweep(out, GRID, *extra), msg)


@pytest.mark.parametrize("definition", ["[1, 2]", "{not json", 5])
def test_a_studys_definition_is_checked(grid, tmp_path, definition):
    out, study = _copy(grid, tmp_path)
    study.set_user_attr("definition", definition)
    for extra in ([], ["--report"]):
        r = sweep(out, GRID, *extra)
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, r.stderr
        assert "definition" in r.stderr or "holds another sweep" in r.stderr, r.stderr


def test_a_trials_folder_that_links_out_of_the_sweep_is_refused(grid, tmp_path):
    out, _ = _copy(grid, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(out / "trials", elsewhere)
    (out / "trials").symlink_to(elsewhere)
    _one_line(sweep(out, GRID, "--report"), "resolves outside")


def _spawned_sweep(out, *extra):
    """The sweep command under a deadline (a reader blocked on a FIFO fails the test, never hangs it)."""
    args = ["sweep", "autoencoder", *AE, "--objective", FIG, "--direction", "minimize", "--out", str(out), *extra]
    return run_within(120, "multinet", args)


def test_a_fifo_in_a_sweep_folder_never_hangs(grid, tmp_path):
    out, _ = _copy(grid, tmp_path)
    summary = out / "trials" / "0000" / "seed-0" / "summary.json"
    summary.unlink()
    os.mkfifo(summary)
    _one_line(_spawned_sweep(out, GRID, "--report"), "a FIFO, not a regular file")
    os.mkfifo(tmp_path / "journal")
    _one_line(_spawned_sweep(tmp_path / "j", GRID, "--storage", f"journal:{tmp_path / 'journal'}"),
              "a FIFO, not a regular file")
    os.mkfifo(tmp_path / "db")
    _one_line(_spawned_sweep(tmp_path / "k", GRID, "--storage", f"sqlite:///{tmp_path / 'db'}"),
              "a FIFO, not a regular file")


def test_the_sweep_command_says_what_trust_storage_does():
    r = run("multinet", ["sweep", "--help"])
    text = " ".join(r.stdout.split())  # argparse wraps the help
    assert "--trust-storage" in text and "runs any code in it" in text


def _refused(r, msg):
    assert r.returncode == 2 and "Traceback" not in r.stderr and msg in r.stderr, r.stderr


def test_a_config_fixed_in_the_study_by_someone_else_is_refused_before_it_trains(grid, tmp_path):
    out = tmp_path / "search"
    assert sweep(out, *SEARCH, "--trials", "1").returncode == 0
    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out}/sweep.db")
    study.enqueue_trial({"networks.decoder.lr": 50.0})  # outside the range: Optuna only warns
    _refused(sweep(out, *SEARCH, "--trials", "2"), "networks.decoder.lr=50.0 is not a value of this sweep")
    assert not (out / "trials" / "0001").exists()
    # A "retry" of trial 0 with another config would reuse trial 0's folder and its summary.
    study.enqueue_trial({"networks.decoder.lr": 0.0099}, user_attrs={"retries": 0})
    _refused(sweep(out, *SEARCH, "--trials", "3"), "retries 0 names no earlier trial of this study with the same config")
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["0000"]
    # A grid trial queued as one config whose fixed value is another.
    gout, gstudy = _copy(grid, tmp_path)
    gstudy.enqueue_trial({"networks.decoder.lr": "3e-3"}, user_attrs={
        "queued": True, "params": {"networks.decoder.lr": "1e-3", "seed": 1}})
    _refused(sweep(gout, GRID), "not a value of this sweep or not the config it was queued as")
    assert not (gout / "trials" / "0000" / "seed-1").exists() and not (gout / "trials" / "0001" / "seed-1").exists()


def test_the_sweep_folders_own_study_file_must_be_inside_it(grid, tmp_path):
    out, _ = _copy(grid, tmp_path)
    (tmp_path / "elsewhere.db").write_bytes((out / "sweep.db").read_bytes())
    (out / "sweep.db").unlink()
    (out / "sweep.db").symlink_to(tmp_path / "elsewhere.db")
    _one_line(sweep(out, GRID, "--report"), "sweep.db: links outside")
