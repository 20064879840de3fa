"""Sweeps (seeds, grids, searches on an Optuna study) and ``compare``: real studies, real runs."""
import csv
import socket
import statistics

import pytest
import scipy.stats

from multinet import load_checkpoint

from ..cli_run import run, spawn

optuna = pytest.importorskip("optuna")

# (2,2) autoencoder runs of 20 steps scored at one Eb/N0 on 2,000 blocks: about a second each.
AE = ["ae_2_2", "eval.max_blocks=2000", "eval.batch=2000", "channel.eval_db=[4.0]", "--steps", "20"]
FIG = "curves/autoencoder after 1_decoder/4"


def sweep(out, *extra, objective=FIG, spawned=False):
    args = ["sweep", "autoencoder", *AE, "--objective", objective, "--direction", "minimize", "--out", str(out), *extra]
    return spawn("multinet", args) if spawned else run("multinet", args)


def rows(out):
    with open(out / "sweep.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_grid_over_seeds_runs_each_config_and_seed_once_and_reports_them(tmp_path):
    r = sweep(tmp_path, "networks.decoder.lr=1e-3,3e-3", "--seeds", "0-1")
    assert r.returncode == 0, r.stderr
    got = rows(tmp_path)
    assert sorted((x["param/networks.decoder.lr"], x["seed"]) for x in got) == \
        [("1e-3", "0"), ("1e-3", "1"), ("3e-3", "0"), ("3e-3", "1")]
    assert all(x["state"] == "complete" and 0 <= float(x[FIG]) <= 1 for x in got)
    assert all((tmp_path / x["folder"] / f"seed-{x['seed']}" / "checkpoints" / "last.pt").exists() for x in got)
    table = (tmp_path / "sweep.md").read_text()
    assert "Best config" in table and (tmp_path / "sweep.png").stat().st_size > 1000
    for lr in ("1e-3", "3e-3"):  # each config's cell: mean ± 95 % half-width (sd) of its two seeds
        vals = [float(x[FIG]) for x in got if x["param/networks.decoder.lr"] == lr]
        mean, sd = statistics.fmean(vals), statistics.stdev(vals)
        assert f"{mean:.4g} ± {scipy.stats.t.ppf(0.975, 1) * sd / 2 ** 0.5:.2g} (sd {sd:.2g})" in table
    # The seeds differ, the two learning rates differ: four distinct runs, not one run copied.
    assert len({x[FIG] for x in got}) >= 3
    again = sweep(tmp_path, "networks.decoder.lr=1e-3,3e-3", "--seeds", "0-1")  # done: nothing runs twice
    assert again.returncode == 0 and "seed 0:" not in again.stdout
    trials = optuna.load_study(study_name=tmp_path.name, storage=f"sqlite:///{tmp_path}/sweep.db").trials
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)  # one per config and seed
    assert [x[FIG] for x in rows(tmp_path)] == [x[FIG] for x in got]


def test_two_worker_processes_share_one_search_with_pruning_which_stops_at_its_trial_count(tmp_path):
    r = sweep(tmp_path, "--search", "networks.decoder.lr=loguniform:1e-4:1e-2", "--trials", "4",
              "train.eval_every=10", "--pruner", "median", "--jobs", "2", spawned=True)  # two workers, no repeats
    assert r.returncode == 0, r.stderr
    study = optuna.load_study(study_name=tmp_path.name, storage=f"sqlite:///{tmp_path}/sweep.db")
    done = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) == 4 and len({t.params["networks.decoder.lr"] for t in done}) == 4
    assert all(t.intermediate_values for t in done)  # every evaluation reached the pruner
    assert all(1e-4 <= t.params["networks.decoder.lr"] <= 1e-2 for t in done)
    assert len({t.user_attrs["pid"] for t in done}) == 2  # both processes trained


def test_a_search_continues_with_each_sampler_and_records_which_proposed_each_trial(tmp_path):
    space = ["--search", "networks.decoder.lr=loguniform:1e-4:1e-2", "--search", "networks.encoder.lr=uniform:1e-4:1e-2"]
    for n, name in enumerate(("random", "gp", "qmc", "cmaes"), start=1):  # one more trial each time
        r = sweep(tmp_path, *space, "--trials", str(n), "--sampler", name)
        assert r.returncode == 0, r.stderr
    study = optuna.load_study(study_name=tmp_path.name, storage=f"sqlite:///{tmp_path}/sweep.db")
    assert [(t.state.name, t.user_attrs["sampler"]) for t in study.trials] == \
        [("COMPLETE", name) for name in ("random", "gp", "qmc", "cmaes")]
    assert len({tuple(t.params.values()) for t in study.trials}) == 4
    assert all(1e-4 <= v <= 1e-2 for t in study.trials for v in t.params.values())


def test_a_trial_whose_worker_died_resumes_in_its_own_folder(tmp_path):
    assert sweep(tmp_path, "networks.decoder.lr=1e-3,3e-3").returncode == 0
    study = optuna.load_study(study_name=tmp_path.name, storage=f"sqlite:///{tmp_path}/sweep.db")
    first = {x["param/networks.decoder.lr"]: x[FIG] for x in rows(tmp_path)}
    # A worker killed with kill -9 leaves its trial RUNNING under a process that no longer exists;
    # the folder it recorded is not where its runs go: that is derived from its config (0000).
    dead = study.ask()
    for k, v in {"host": socket.gethostname(), "pid": 2 ** 22 + 7, "folder": "trials/0007", "queued": True,
                 "params": {"networks.decoder.lr": "1e-3", "seed": 1}}.items():
        dead.set_user_attr(k, v)
    r = sweep(tmp_path, "networks.decoder.lr=1e-3,3e-3")
    assert r.returncode == 0 and "resuming 1 interrupted trial" in r.stdout, r.stdout + r.stderr
    states = [t.state.name for t in optuna.load_study(study_name=tmp_path.name,
                                                      storage=f"sqlite:///{tmp_path}/sweep.db").trials]
    assert states.count("COMPLETE") == 3 and states.count("FAIL") == 1
    assert (tmp_path / "trials" / "0000" / "seed-1" / "summary.json").exists()
    assert not (tmp_path / "trials" / "0007").exists()
    assert {x["param/networks.decoder.lr"]: x[FIG] for x in rows(tmp_path) if x["seed"] == "0"} == first


def test_a_grids_runs_are_never_pruned_even_when_a_config_trails(tmp_path):
    # Evaluations every 4 steps reach the study; the second config (a decoder that barely learns) trails
    # the first at each of them, which a median pruner would stop. Each config's mean needs every seed.
    r = sweep(tmp_path, "networks.decoder.lr=1e-2,1e-7", "networks.encoder.lr=1e-7", "train.eval_every=4",
              "--seeds", "0-1")
    assert r.returncode == 0, r.stderr
    assert [x["state"] for x in rows(tmp_path)] == ["complete"] * 4


@pytest.mark.parametrize("extra,says", [
    (["networks.decoder.lrr=1e-3,3e-3"], "lrr"),
    (["--search", "link.kind=loguniform:1e-3:1", "--trials", "2"], "link.kind"),
    (["--search", "networks.decoder.lr=loguniform:0:1", "--trials", "2"], "LOW < HIGH"),
    (["--storage", "postgresql://nobody@127.0.0.1:9/none"], "--storage"),
    (["--report"], "holds no sweep"),
    (["--trials", "3"], "--trials counts the configs of a search"),
    (["--seeds", "0-1", "--pruner", "median"], "pruning is for --search"),
    (["--seeds", "3-1"], "from low to high"),
    (["--sampler", "gp"], "samplers are for --search"),
])
def test_bad_sweeps_stop_before_any_trial_in_one_line(tmp_path, extra, says):
    r = sweep(tmp_path, *extra)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and says in r.stderr, r.stderr
    assert not (tmp_path / "trials").exists()


def test_a_missing_objective_names_the_figures_and_another_definition_is_refused(tmp_path):
    r = sweep(tmp_path, objective="bler_typo")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and FIG in r.stderr, r.stderr
    for other in (["channel.db=5.0"], ["--search", "networks.decoder.lr=loguniform:1e-4:1e-2", "--trials", "2"]):
        r = sweep(tmp_path, *other, objective="bler_typo")  # another base config; a search on a grid's study
        assert r.returncode == 2 and "holds another sweep" in r.stderr, r.stderr


def test_a_grid_given_more_seeds_runs_only_the_new_runs_in_the_configs_folders(tmp_path):
    assert sweep(tmp_path, "networks.decoder.lr=1e-3,3e-3").returncode == 0
    first = tmp_path / "trials" / "0000" / "seed-0" / "summary.json"
    before = first.stat().st_mtime_ns
    r = sweep(tmp_path, "networks.decoder.lr=1e-3,3e-3", "--seeds", "0-1")
    assert r.returncode == 0, r.stderr
    # Each run is named on the console by its folder, as sweep.md and sweep.csv name it, then its trial.
    assert sorted(line.split(":")[0] for line in r.stdout.splitlines() if line.startswith("trials/")) == \
        ["trials/0000/seed-1 (trial 2)", "trials/0001/seed-1 (trial 3)"]
    got = {(x["param/networks.decoder.lr"], x["seed"]): x["folder"] for x in rows(tmp_path)}
    assert got == {("1e-3", "0"): "trials/0000", ("3e-3", "0"): "trials/0001", ("1e-3", "1"): "trials/0000",
                   ("3e-3", "1"): "trials/0001"}
    assert first.stat().st_mtime_ns == before
    (tmp_path / "sweep.md").unlink()
    r = sweep(tmp_path, "networks.decoder.lr=1e-3,3e-3", "--seeds", "0-1", "--report")  # runs nothing, reports
    assert r.returncode == 0 and "trial " not in r.stdout and "| trials/0001 | 3e-3 | 2 |" in r.stdout, r.stderr
    assert (tmp_path / "sweep.md").read_text() in r.stdout
    r = sweep(tmp_path, "networks.decoder.lr=1e-3,2e-3")  # other grid values: another sweep
    assert r.returncode == 2 and "holds another sweep" in r.stderr, r.stderr


def test_compare_puts_runs_of_one_system_side_by_side_and_refuses_two_systems(tmp_path):
    assert sweep(tmp_path, "networks.decoder.lr=1e-3,3e-3").returncode == 0
    a, b = tmp_path / "trials" / "0000" / "seed-0", tmp_path / "trials" / "0001" / "seed-0"
    r = run("multinet", ["compare", str(a), str(b), "--out", str(tmp_path / "c.png")])
    assert r.returncode == 0, r.stderr
    assert FIG in r.stdout and r.stdout.splitlines()[1] == "|---|---|---|" and (tmp_path / "c.png").stat().st_size > 1000
    other = tmp_path / "gan"
    other.mkdir()
    (other / "recipe.toml").write_text('task = "gan"\n')
    r = run("multinet", ["compare", str(a), str(other)])
    assert r.returncode == 2 and "different systems" in r.stderr and r.stderr.count("\n") == 1
    gans = [tmp_path / f"gan-{lr}" for lr in ("1e-4", "4e-4")]  # never evaluated while training: their losses
    for g, lr in zip(gans, ("1e-4", "4e-4")):
        assert run("multinet", ["train", "gan", "gan_digits", "--steps", "4", "train.log_every=2", "--no-progress",
                                f"networks.generator.lr={lr}", "--out", str(g)]).returncode == 0
    r = run("multinet", ["compare", *map(str, gans), "--out", str(tmp_path / "g.png")])
    assert r.returncode == 0 and "classifier_fd" in r.stdout and (tmp_path / "g.png").stat().st_size > 1000, r.stderr


def test_ctrl_c_stops_a_sweep_in_one_line_and_the_same_command_finishes_it_with_the_same_figures(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from ..cli_run import ENV, from_a_terminal
    grid = ["networks.decoder.lr=1e-3,3e-3", "--steps", "300", "train.checkpoint_every=50"]
    whole = tmp_path / "whole"
    assert sweep(whole, *grid).returncode == 0
    cut = tmp_path / "cut"
    args = [sys.executable, "-m", "multinet", "sweep", "autoencoder", *AE, *grid, "--objective", FIG,
            "--direction", "minimize", "--out", str(cut)]
    p = subprocess.Popen(args, env=ENV, preexec_fn=from_a_terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    second = cut / "trials" / "0001" / "seed-0" / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not second.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "the same command resumes the sweep" in err, err
    assert err.strip().count("\n") == 0, err  # one line
    before = load_checkpoint(second)["stateful"]["timer"]["seconds"]  # the time trained before the stop
    assert before > 0
    r = sweep(cut, *grid)  # the same command (in this process: the same code from its arguments on)
    assert r.returncode == 0 and "resuming 1 interrupted trial" in r.stdout, r.stdout + r.stderr
    figures = lambda out: sorted((x["param/networks.decoder.lr"], x[FIG]) for x in rows(out))  # noqa: E731
    assert figures(cut) == figures(whole)
    # The resumed run's time counts both processes, not only the one that finished it.
    assert float(next(x for x in rows(cut) if x["folder"] == "trials/0001")["seconds"]) >= before


def test_a_config_still_queued_is_not_queued_again(tmp_path):
    from multinet.experiments.plan import SweepPlan
    from multinet.experiments.study import open_study, queue_grid
    from multinet.experiments.workers import requeue_interrupted
    plan = SweepPlan("autoencoder", ["ae_2_2"], [0], {"networks.decoder.lr": ["1e-3", "3e-3"]}, objective=FIG)
    study = open_study(plan, tmp_path, None, None)
    queue_grid(study, plan)
    taken = study.ask()  # a worker popped the first config and was killed before naming its process
    assert taken.user_attrs["params"] == {"networks.decoder.lr": "1e-3", "seed": 0}
    for _ in range(2):  # a sweep started again (twice) queues nothing already queued
        queue_grid(study, plan)
        assert requeue_interrupted(study, plan) == 0
    assert len(study.trials) == 2


def test_each_run_may_be_a_torchrun_job(tmp_path):
    """--nproc 2: every run of the trial is ``torchrun --nproc-per-node 2 -m multinet train`` (gloo on
    the CPU); the sweep reads its summary like any other."""
    import json
    r = sweep(tmp_path, "--nproc", "2", "--steps", "12", "networks.decoder.lr=1e-3")
    assert r.returncode == 0, r.stdout + r.stderr
    (row,) = rows(tmp_path)
    assert row["state"] == "complete" and 0 <= float(row[FIG]) <= 1
    summary = json.loads((tmp_path / row["folder"] / "seed-0" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 12
    assert float(row["seconds"]) > 0  # read from the job's last checkpoint


def test_a_figure_saved_as_null_is_the_worst_objective_and_keeps_its_column(tmp_path):
    """A non-finite figure is saved as null (a reverse KL with no mode captured): as an objective it is
    the worst value for the direction, not a missing figure; in the report its column stays."""
    import math

    from multinet.experiments.plan import SweepPlan
    from multinet.experiments.report import _numbers
    from multinet.experiments.study import _objective
    plan = SweepPlan("gan", ["gan_ring8"], objective="reverse_kl", direction="minimize")
    assert _objective({"modes": 0, "reverse_kl": None}, plan) == math.inf
    plan.direction = "maximize"
    assert _objective({"reverse_kl": None}, plan) == -math.inf and _objective({"reverse_kl": 0.25}, plan) == 0.25
    assert math.isnan(_numbers({"modes": 0, "reverse_kl": None})["reverse_kl"])


def test_a_seeds_sweep_needs_no_objective_and_can_be_ranked_by_any_figure_afterwards(tmp_path):
    args = ["sweep", "autoencoder", *AE, "networks.decoder.lr=1e-3,3e-3", "--out", str(tmp_path)]
    r = run("multinet", args)
    assert r.returncode == 0 and "trials/0000/seed-0 (trial 0): done" in r.stdout, r.stdout + r.stderr
    table = (tmp_path / "sweep.md").read_text()
    assert FIG in table and "Best config" not in table
    r = run("multinet", [*args, "--report", "--objective", FIG, "--direction", "minimize"])
    assert r.returncode == 0 and "Best config (minimize " + FIG in (tmp_path / "sweep.md").read_text(), r.stderr
    r = run("multinet", ["sweep", "autoencoder", *AE, "--search", "networks.encoder.lr=loguniform:1e-4:1e-2", "--trials",
                         "1", "--out", str(tmp_path / "search")])
    assert r.returncode == 2 and "--objective: a search needs the evaluation figure" in r.stderr, r.stderr


def test_a_trial_whose_run_had_finished_reads_the_run_and_keeps_its_training_time(tmp_path):
    """A trial taken over after its run finished (its worker died before telling the study) reads
    the run's summary instead of training again, and reports the run's training time: here a
    second study over the same folder takes the same run folder."""
    assert sweep(tmp_path, "networks.decoder.lr=1e-3").returncode == 0
    trained = float(rows(tmp_path)[0]["seconds"])
    r = sweep(tmp_path, "networks.decoder.lr=1e-3", "--study", "again")
    assert r.returncode == 0, r.stderr
    row = rows(tmp_path)[0]
    # The checkpoint's time: training up to the final checkpoint, without the final evaluation.
    assert row["state"] == "complete" and 0 < float(row["seconds"]) <= trained


def test_search_trials_asked_beyond_the_budget_at_the_same_moment_are_set_aside(tmp_path):
    """Three workers count two trials left of a budget of 2 at the same moment and each asks for one:
    the storage numbers them in turn, and the third is beyond the budget (set aside, never run)."""
    from multinet.experiments.plan import SweepPlan, parse_dist
    from multinet.experiments.study import open_study
    from multinet.experiments.workers import over_budget
    plan = SweepPlan("autoencoder", AE[:4], [0], {}, dict([parse_dist("networks.decoder.lr=loguniform:1e-4:1e-2")]),
                     2, FIG, "minimize", 20)
    study = open_study(plan, tmp_path, None, "budget")
    asked = [study.ask() for _ in range(3)]
    assert [over_budget(t, plan, study) for t in asked] == [False, False, True]
    asked[2].set_user_attr("surplus", True)
    study.tell(asked[2], state=optuna.trial.TrialState.FAIL)
    study.tell(asked[0], state=optuna.trial.TrialState.FAIL)  # its worker died: a retry is queued
    study.enqueue_trial(asked[0].params, user_attrs={"retries": asked[0].number, "queued": True})
    retry = study.ask()
    assert not over_budget(retry, plan, study)  # a retry replaces a trial, never one more


def _take_queued(url, out):
    """A worker's loop, bare: take a trial in its turn until none is queued, and record which."""
    from multinet.experiments.storage import asking_alone
    study = optuna.load_study(study_name="race", storage=url)
    taken = []
    while True:
        with asking_alone(study._storage):
            trial = study.ask()
        if "k" not in trial.user_attrs:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            break
        taken.append(trial.user_attrs["k"])
        study.tell(trial, 0.0)  # raises if another worker took (and told) the same trial
    out.put(taken)


def test_workers_on_one_sqlite_file_never_take_the_same_queued_trial(tmp_path):
    """SQLite ignores Optuna's SELECT ... FOR UPDATE: without turns, four processes popping 60 queued
    trials took some twice (seen: 2 of 4 workers failed telling a trial another had told)."""
    import multiprocessing
    url = f"sqlite:///{tmp_path}/race.db"
    study = optuna.create_study(study_name="race", storage=url)
    for k in range(60):
        study.enqueue_trial({}, user_attrs={"k": k})
    del study  # its connections stay in this process: each worker opens its own
    ctx = multiprocessing.get_context("fork")  # no re-import of torch per worker (the workers use none)
    out = ctx.Queue()
    workers = [ctx.Process(target=_take_queued, args=(url, out)) for _ in range(4)]
    for w in workers:
        w.start()
    taken = []
    for _ in workers:
        taken += out.get(timeout=120)
    for w in workers:
        w.join(timeout=60)
    assert all(w.exitcode == 0 for w in workers)
    assert sorted(taken) == list(range(60))  # each queued trial taken once
