"""No interrupted run loses a result: evaluations at a checkpoint's step, the final evaluation, the
run folder a resume writes into, and the result files themselves."""
import csv
import json

import pytest
import torch

from multinet.autoencoder import AeSystem, evaluation
from multinet.state.checkpoint import load_checkpoint, save_checkpoint
from multinet.gan import GanSystem
from multinet.run.outcomes import weight_headroom

from ..cli_run import run

# 8 steps: joint 6, decoder 2; a checkpoint falls on the phase switch (step 6), as ae_7_4's 2000 on 6000.
AE = ["ae_7_4", "--device", "cpu", "--steps", "8", "train.checkpoint_every=3", "train.log_every=2",
      "eval.max_blocks=4000", "eval.batch=2000", "eval.baselines=false", "channel.eval_db=[2.0, 4.0]",
      "link.batch_size=256", "train.tensorboard=false", "--no-progress"]
GAN = ["gan_digits", "--device", "cpu", "--steps", "6", "train.checkpoint_every=2", "train.eval_every=2",
       "train.log_every=2", "train.sample_every=0", "eval.samples=100", "eval.classifier_epochs=1",
       "train.tensorboard=false", "--no-progress", "networks.generator.ema=0"]


def _ae(*args):
    return run("multinet.autoencoder", [*AE, *map(str, args)])


def _results(out):
    return json.loads((out / "summary.json").read_text())["curves"], (out / "bler.csv").read_text()


@pytest.fixture(scope="module")
def ae_whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("ae") / "whole"
    r = _ae("--out", out)
    assert r.returncode == 0, r.stderr
    curves, table = _results(out)
    assert set(curves) == {"autoencoder after 0_joint", "autoencoder after 1_decoder"}
    return curves, table


def test_a_stop_at_the_phase_switch_keeps_the_after_joint_curve(ae_whole, tmp_path):
    out = tmp_path / "r"
    r = _ae("--out", out, "--stop-at", "6")
    assert r.returncode == 0, r.stderr
    saved = load_checkpoint(out / "checkpoints/step_00000006.pt")["stateful"]["system"]["results"]
    assert {row["after_step"] for row in saved} == {6}  # the checkpoint holds the switch's evaluation
    r = _ae("--out", out, "--resume")
    assert r.returncode == 0, r.stderr
    assert _results(out) == ae_whole


def test_an_interrupted_final_evaluation_is_finished_on_resume(ae_whole, tmp_path, monkeypatch):
    out = tmp_path / "r"
    finish = AeSystem.finish

    def interrupted(self, ctx):  # a second Ctrl-C (or a kill) during the final evaluation
        self.write_rows(ctx.out, self.results[:1])
        raise KeyboardInterrupt
    monkeypatch.setattr(AeSystem, "finish", interrupted)
    r = _ae("--out", out)
    assert r.returncode == 130 and not (out / "summary.json").exists()
    monkeypatch.setattr(AeSystem, "finish", finish)
    r = _ae("--out", out, "--resume")
    assert r.returncode == 0, r.stderr
    assert "stopped before its final evaluation; finishing it" in r.stderr
    assert _results(out) == ae_whole
    r = _ae("--out", out, "--resume")  # now there is nothing left to do
    assert r.returncode == 0 and "nothing to do" in r.stdout


def test_an_evaluation_interrupted_at_a_checkpoint_step_is_run_again(tmp_path, monkeypatch):
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert run("multinet.gan", [*GAN, "--out", str(whole)]).returncode == 0
    evaluate, calls = GanSystem.evaluate, []

    def killed_at_step_4(self):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(self)
    monkeypatch.setattr(GanSystem, "evaluate", killed_at_step_4)
    assert run("multinet.gan", [*GAN, "--out", str(part)]).returncode == 130
    assert load_checkpoint(part / "checkpoints/last.pt")["engine"]["iteration"] == 2  # not 4: no step skipped
    monkeypatch.setattr(GanSystem, "evaluate", evaluate)
    r = run("multinet.gan", [*GAN, "--out", str(part), "--resume"])
    assert r.returncode == 0, r.stderr

    def rows(out):
        return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [row for row in rows(part) if any(k.startswith("eval/") for k in row)]
    assert [row["step"] for row in evals] == [2, 4, 6]
    assert rows(part) == rows(whole)


def test_a_resume_never_writes_into_another_runs_folder(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert _ae("--out", out, "--steps", "4").returncode == 0
    before = {p.name: p.read_bytes() for p in b.iterdir() if p.is_file()}
    r = _ae("--resume", a / "checkpoints/last.pt", "--out", b, "--steps", "6")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "holds another run's files" in r.stderr, r.stderr
    assert {p.name: p.read_bytes() for p in b.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in (b / "checkpoints").iterdir()) == ["last.pt", "step_00000003.pt", "step_00000004.pt"]
    r = _ae("--resume", a / "checkpoints/last.pt", "--out", tmp_path / "c", "--steps", "6")  # an empty one is fine
    assert r.returncode == 0, r.stderr


def test_result_files_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    rows = [{"curve": "c", "ebn0_db": float(db), "bler": 0.1} for db in range(4)]
    evaluation.write_rows(tmp_path / "bler.csv", rows, evaluation.COLUMNS)
    before = (tmp_path / "bler.csv").read_text()
    write = csv.DictWriter.writerow

    def full_disk(self, row):
        if row.get("ebn0_db") == 2.0:
            raise OSError(28, "No space left on device")
        return write(self, row)
    monkeypatch.setattr(csv.DictWriter, "writerow", full_disk)
    with pytest.raises(OSError):
        evaluation.write_rows(tmp_path / "bler.csv", [{**r, "bler": 0.2} for r in rows], evaluation.COLUMNS)
    assert (tmp_path / "bler.csv").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bler.csv"]  # no temporary file left


def test_a_nan_stop_says_how_close_to_overflow_the_kept_weights_are(tmp_path):
    net = {"module": {"w": torch.tensor([1.0, -2.6e38]), "steps": torch.tensor(3)}}
    payload = {"config": {}, "networks": {"g": net}, "engine": {"iteration": 1}, "rng": {}}
    save_checkpoint(payload, tmp_path / "big.pt")
    assert "largest |weight| is 2.6e+38, close to overflow" in weight_headroom(tmp_path / "big.pt")
    net["module"]["w"] = torch.tensor([1.0, -2.5])
    save_checkpoint(payload, tmp_path / "small.pt")
    assert weight_headroom(tmp_path / "small.pt") == " (largest |weight| 2.5)"
