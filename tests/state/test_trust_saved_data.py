"""Trust, part 2: a checkpoint's counters and named code by role, run folders read as bounded data,
and exports bounded before they allocate. (Studies and sweep folders: test_trust_study.py.)"""
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from multinet import Runner
from multinet.config import load_recipe
from multinet.experiments import compare_runs
from multinet.gan import GanRecipe, GanSystem
from multinet.nets.schedules import SCHEDULE_FUNCTIONS
from multinet.state.checkpoint import load_checkpoint
from multinet.state.export import load_exported
from multinet.state.imports import CodeRefused, import_function, saved_file
from multinet.state.runfiles import read_json, read_text

from ..cli_run import ENV, run_within
from .test_trust import TINY, _cli, _commands, _crafted

MARK_TIMEOUT = 60  # seconds: a reader that blocks (a FIFO) would take the subprocess past this


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trust2") / "run"
    cfg = load_recipe(GanRecipe, "gan_digits", [*TINY, "eval.standard_metrics=false"])
    assert Runner(GanSystem, cfg, out, progress=False, echo=False).fit().code == 0
    return out / "checkpoints" / "last.pt"


def _one_line(code, err, msg):
    assert code == 2 and err.strip().count("\n") == 0 and "Traceback" not in err, (code, err)
    assert msg in err, err


def test_a_schedule_fn_from_a_checkpoint_must_be_a_schedule_even_inside_multinet(trained, tmp_path):
    def attack(ckpt):
        ckpt["config"]["networks"]["generator"]["schedule"] = {"name": "lambda", "fn": "multinet.cli:main"}
    path = _crafted(trained, tmp_path, attack)
    code, _, err = _cli(*_commands(path, tmp_path)["resume"])
    _one_line(code, err, "'multinet.cli:main', which is not a function registered as a schedule")
    from multinet.cli import main
    with saved_file("f.pt"):
        with pytest.raises(CodeRefused, match="not a function registered as a schedule"):
            import_function("multinet.cli:main", "schedule.fn", SCHEDULE_FUNCTIONS, "a function registered as a schedule")
        assert import_function("multinet.cli:main", "schedule.fn", [main]) is main  # registered: accepted
    assert import_function("multinet.cli:main", "schedule.fn", SCHEDULE_FUNCTIONS) is main  # named now: any function


def test_a_feature_network_from_a_checkpoint_must_be_a_feature_net(trained, tmp_path):
    def attack(ckpt):
        ckpt["config"]["eval"].update(standard_metrics=True, features="multinet.gan.networks:MLPDiscriminator")
    path = _crafted(trained, tmp_path, attack)
    for name in ("evaluate", "resume"):
        code, _, err = _cli(*_commands(path, tmp_path)[name])
        _one_line(code, err, "which is not a multinet.gan.fidelity.FeatureNet")


@pytest.mark.parametrize("state", [5, None, {"seconds": "nan"}, {"seconds": float("nan")}, {"seconds": float("inf")},
                                   {"seconds": -1e9}, {"seconds": 1e308}, {"seconds": True}])
def test_a_checkpoints_timer_must_hold_a_training_time(trained, tmp_path, state):
    path = _crafted(trained, tmp_path, lambda c: c["stateful"].__setitem__("timer", state))
    code, _, err = _cli(*_commands(path, tmp_path)["resume"])
    _one_line(code, err, "timer: ")
    assert "is not a training time" in err


@pytest.mark.parametrize("change", [
    lambda e: e.update(iteration=10 ** 30), lambda e: e.update(iteration=2.5), lambda e: e.update(world_size=0),
    lambda e: e.update(phase_steps={"generator": -1}), lambda e: e.update(total_steps=10 ** 20),
    lambda e: e.update(plan={"generator": [0, "x"]}), lambda e: e.update(plan={"discriminator": [5, 3]}),
    lambda e: e.update(phase=[{"x": 1}])], ids=["iteration", "float", "world", "phase", "total", "plan", "backwards",
                                              "names"])
def test_a_checkpoints_counters_are_step_counts_for_every_command(trained, tmp_path, change):
    path = _crafted(trained, tmp_path, lambda c: change(c["engine"]))
    with pytest.raises(ValueError, match=r"broken checkpoint: engine .* is not valid \("):
        load_checkpoint(path)
    for name, args in _commands(path, tmp_path).items():
        code, _, err = _cli(*args)
        _one_line(code, err, "is not valid (")


def test_an_export_asking_for_a_huge_network_is_refused_before_it_allocates(trained, tmp_path):
    assert _cli("export", trained, "--out", tmp_path / "x")[0] == 0
    spec = json.loads((tmp_path / "x/generator.json").read_text())
    spec["init_args"]["hidden"] = 10 ** 12  # overflows even the meta build
    (tmp_path / "x/generator.json").write_text(json.dumps(spec))
    t = time.monotonic()
    with pytest.raises(ValueError, match="init_args hidden = 1000000000000 is larger than the .* refused before"):
        load_exported(tmp_path / "x/generator.json")
    assert time.monotonic() - t < 10


def _run_folder(path, summary=None):
    path.mkdir(parents=True)
    (path / "recipe.toml").write_text('task = "gan"\n')
    if summary is not None:
        (path / "summary.json").write_text(summary)
    return path


@pytest.mark.parametrize("text,msg", [
    ("[1, 2]", "expected JSON an object, got an array"), ('"fid"', "expected JSON an object, got a string"),
    ("[" * 200_000 + "]" * 200_000, "not valid JSON"), ('{"a":' * 100 + "1" + "}" * 100, "JSON nested over 64 deep"),
    ("{bad", "not valid JSON"), ('{"fid": 1' + "0" * 400 + "}", "is out of range"), ('{"fid": 1e999}', "out of range"),
    ('{"fid": NaN}', "NaN is not a number JSON knows")])
def test_compare_reads_a_summary_as_bounded_json(tmp_path, text, msg):
    a, b = _run_folder(tmp_path / "a", '{"fid": 1.0}'), _run_folder(tmp_path / "b", text)
    code, _, err = _cli("compare", a, b)
    _one_line(code, err, msg)


def _special(folder, name, kind):
    target = folder / name
    target.unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "zero":
        target.symlink_to("/dev/zero")
    else:  # a link to a regular file outside the run folder
        (folder.parent / "elsewhere.json").write_text('{"fid": 0.0}')
        target.symlink_to(folder.parent / "elsewhere.json")


def _spawned(*args):
    """The command in a fresh process with a deadline: a reader that blocks shows as a time-out."""
    r = subprocess.run([sys.executable, "-m", "multinet", *map(str, args)], capture_output=True, text=True,
                       timeout=MARK_TIMEOUT, env=ENV)
    return r.returncode, r.stdout, r.stderr


@pytest.mark.parametrize("name,kind,msg", [
    ("summary.json", "fifo", "a FIFO, not a regular file"), ("summary.json", "zero", "links outside"),
    ("summary.json", "out", "links outside"), ("recipe.toml", "fifo", "recipe.toml: a FIFO, not a regular file"),
    ("metrics.jsonl", "zero", "links outside"), ("metrics.jsonl", "fifo", "a FIFO, not a regular file")])
def test_compare_reads_regular_files_inside_the_run_only_and_never_hangs(tmp_path, name, kind, msg):
    a = _run_folder(tmp_path / "a", '{"fid": 1.0}')
    (a / "metrics.jsonl").write_text('{"step": 1, "loss/generator": 1.0}\n')
    _special(a, name, kind)
    args = ["compare", a, *(["--out", tmp_path / "c.png"] if name == "metrics.jsonl" else [])]
    if kind == "zero":  # in a process of its own: a reader of /dev/zero that regressed would take all memory
        code, _, err = _spawned(*args)
    else:
        r = run_within(MARK_TIMEOUT, "multinet", args)
        code, err = r.returncode, r.stderr
    _one_line(code, err, msg)


def test_the_readers_refuse_what_is_not_a_small_regular_file(tmp_path):
    (tmp_path / "big.json").write_bytes(b" " * 200 + b"{}")
    with pytest.raises(ValueError, match="202 bytes, over the 100"):
        read_json(tmp_path / "big.json", limit=100)
    os.mkfifo(tmp_path / "fifo")
    t = time.monotonic()
    with pytest.raises(ValueError, match="a FIFO, not a regular file"):
        read_text(tmp_path / "fifo")
    assert time.monotonic() - t < 5
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_text(tmp_path / "bin")


def test_a_resumed_runs_metrics_file_must_be_its_own(trained, tmp_path):
    """A run folder whose metrics.jsonl links elsewhere: a resume would append to that file."""
    import shutil
    run = tmp_path / "run"
    shutil.copytree(trained.parent.parent, run)
    victim = tmp_path / "victim.jsonl"
    victim.write_text('{"step": 1}\n' * 60)
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(victim)
    code, _, err = _cli("train", "gan", "--resume", "--out", run, "--steps", "4", "--no-progress")
    _one_line(code, err, "links outside")
    assert victim.read_text() == '{"step": 1}\n' * 60
