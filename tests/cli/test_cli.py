"""End-to-end runs of the two CLIs on a few CPU steps: run folder, resume, stop, errors."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from multinet import load_checkpoint

from ..cli_run import ENV, ROOT, from_a_terminal, run, spawn

# Exact resume is promised bit for bit on the CPU; pin it so a machine with a GPU tests the same.
FAST_GAN = ["gan_digits", "--device", "cpu", "train.log_every=5", "train.sample_every=10", "train.checkpoint_every=10",
            "eval.samples=200", "eval.classifier_epochs=1", "train.tensorboard=false", "--no-progress",
            "networks.generator.ema=0.5"]  # an EMA that short runs fill (no warning)
FAST_AE = ["ae_7_4", "--device", "cpu", "train.log_every=5", "train.checkpoint_every=10", "eval.max_blocks=20000",
           "eval.batch=10000", "eval.ml_errors=10", "eval.osd_max_blocks=20000", "--no-progress"]


def _weights(path):
    ck = load_checkpoint(path)
    return {f"{n}.{k}": v for n, s in ck["networks"].items() for k, v in s["module"].items()}


def _losses(out):
    rows = [json.loads(l) for l in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss/discriminator" if "loss/discriminator" in r else "loss/0_joint"])
            for r in rows if any(k.startswith("loss/") for k in r)]


def test_gan_run_folder_and_exact_resume(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    r = run("multinet.gan", FAST_GAN + ["--steps", "20", "--out", str(full), "data.root=" + str(tmp_path / "d")])
    assert r.returncode == 0, r.stderr
    for name in ["recipe.toml", "metrics.jsonl", "summary.json", "checkpoints/last.pt", "parameter_groups.txt"]:
        assert (full / name).exists(), name
    assert list((full / "samples").glob("*.png"))
    summary = json.loads((full / "summary.json").read_text())
    assert {"classifier_is", "classifier_fd", "real_fd_floor"} <= set(summary)

    r = run("multinet.gan", FAST_GAN + ["--steps", "20", "--stop-at", "10", "--out", str(part),
                                        "data.root=" + str(tmp_path / "d")])
    assert r.returncode == 0, r.stderr
    assert "stopped by step limit at step 10" in r.stderr
    r = run("multinet.gan", ["--resume", "--out", str(part), "--no-progress"])
    assert r.returncode == 0, r.stderr
    a, b = _weights(full / "checkpoints/last.pt"), _weights(part / "checkpoints/last.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert _losses(full) == _losses(part)

    # A run killed after its step-10 checkpoint had logged steps 15 and 20 (and written a torn
    # line): resuming from step 10 rewrites them, once each, as the uninterrupted run had them.
    died = tmp_path / "died"
    shutil.copytree(full, died)
    with open(died / "metrics.jsonl", "a") as f:
        f.write('{"step": 25, "loss/discrim')
    r = run("multinet.gan", ["--resume", str(died / "checkpoints/step_00000010.pt"), "--out", str(died), "--no-progress"])
    assert r.returncode == 0, r.stderr
    rows = [json.loads(l) for l in (died / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == sorted(r["step"] for r in rows)
    assert _losses(died) == _losses(full) and [r["step"] for r in rows].count(20) == \
        [json.loads(l)["step"] for l in (full / "metrics.jsonl").read_text().splitlines()].count(20)


def test_gan_sample_command(tmp_path):
    out = tmp_path / "r"
    assert run("multinet.gan", FAST_GAN + ["--steps", "5", "--out", str(out), "networks.generator.ema=0.9"]).returncode == 0
    r = run("multinet.gan", ["sample", str(out / "checkpoints/last.pt"), "--n", "16", "--out", str(tmp_path / "s.npy")])
    assert r.returncode == 0, r.stderr
    import numpy as np
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (16, 1, 8, 8) and x.dtype == np.float32 and (tmp_path / "s.png").exists()
    from PIL import Image
    assert Image.open(tmp_path / "s.png").size == (4 * 34 + 2, 4 * 34 + 2)  # 8x8 digits enlarged to 32 px, 4 by 4
    r = run("multinet.gan", ["sample", str(out / "checkpoints/last.pt"), "--n", "16", "--rejection", "drs",
                             "--out", str(tmp_path / "d.npy")])
    assert r.returncode == 0, r.stderr
    assert "note: rejection sampling accepted" in r.stderr and np.load(tmp_path / "d.npy").shape == (16, 1, 8, 8)
    r = run("multinet.gan", ["sample", str(out / "checkpoints/last.pt"), "--n", "4", "--out", str(tmp_path / "plain")])
    assert r.returncode == 0 and r.stdout.strip() == f"wrote 4 samples to {tmp_path / 'plain.npy'} and {tmp_path / 'plain.png'}"
    assert np.load(tmp_path / "plain.npy").shape == (4, 1, 8, 8)
    r = run("multinet.gan", ["evaluate", str(out / "checkpoints/last.pt"), "eval.rejection=drs", "eval.samples=100"])
    assert r.returncode == 0, r.stderr
    scores = json.loads(r.stdout.strip().splitlines()[-1])
    # rejection-sampled images are scored beside the plain generator, never instead of it
    assert scores["step"] == 5 and {"classifier_is", "classifier_fd", "drs_classifier_is", "drs_classifier_fd",
                                    "drs_acceptance"} <= set(scores)
    assert 0 < scores["drs_acceptance"] <= 1
    r = run("multinet.gan", ["evaluate", str(out / "checkpoints/last.pt"), "train.steps=9"])
    assert r.returncode == 2 and r.stderr.strip() == ("error: only eval.*, data.root, data.workers, data.download keys "
                                                      "can change for a saved run, got train.steps")


def test_autoencoder_exact_resume_across_phase_switch(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    assert run("multinet.autoencoder", FAST_AE + ["--steps", "30", "--out", str(full)]).returncode == 0
    r = run("multinet.autoencoder", FAST_AE + ["--steps", "30", "--stop-at", "25", "--out", str(part)])
    assert r.returncode == 0, r.stderr  # stopped inside the decoder-only phase
    assert load_checkpoint(part / "checkpoints/last.pt")["engine"]["phase"] == ["1_decoder"]
    assert run("multinet.autoencoder", ["--resume", str(part / "checkpoints/last.pt"), "--no-progress"]).returncode == 0
    a, b = _weights(full / "checkpoints/last.pt"), _weights(part / "checkpoints/last.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for f in ["bler.csv", "bler.png", "codebook.npy", "summary.json"]:
        assert (full / f).exists(), f
    import numpy as np
    cb = np.load(full / "codebook.npy")
    assert cb.shape == (16, 7) and np.allclose((cb ** 2).sum(1), 7.0, atol=1e-4)
    curves = json.loads((full / "summary.json").read_text())["curves"]
    assert {"autoencoder after 0_joint", "autoencoder after 1_decoder", "Hamming(7,4) ML"} <= set(curves)
    # Resumed after the phase switch, the run still reports the joint phase's curve (kept in its checkpoint).
    assert json.loads((part / "summary.json").read_text())["curves"] == curves
    assert (part / "bler.csv").read_text() == (full / "bler.csv").read_text()
    # evaluate CKPT re-scores the saved system at other Eb/N0 points and under another channel.
    r = run("multinet.autoencoder", ["evaluate", str(full / "checkpoints/last.pt"), "channel.eval_db=[1.0,3.0]",
                                     "channel.fading='rayleigh'", "eval.max_blocks=20000"])
    assert r.returncode == 0, r.stderr
    scored = json.loads(r.stdout.strip().splitlines()[-1])
    assert scored["step"] == 30 and set(scored["curves"]["autoencoder after 1_decoder"]) == {"1", "3"}
    faded = scored["curves"]["autoencoder after 1_decoder"]["3"]
    assert faded > curves["autoencoder after 1_decoder"]["2"]  # fading at 3 dB is worse than AWGN at 2 dB
    r = run("multinet", ["evaluate", str(full / "checkpoints/last.pt"), "link.n=8"])
    assert r.returncode == 2 and "only eval.*, channel.*, finetune_channel.* keys can change" in r.stderr


def test_sigterm_saves_and_exits_with_one_line(tmp_path):
    out = tmp_path / "r"
    p = subprocess.Popen([sys.executable, "-m", "multinet.gan", *FAST_GAN, "--steps", "1000000", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                         preexec_fn=from_a_terminal)
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text()):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert err.strip().count("\n") == 0 and "stopped by SIGTERM" in err
    assert load_checkpoint(out / "checkpoints/last.pt")["engine"]["iteration"] > 0


def test_ctrl_c_while_torch_is_imported_is_one_line(tmp_path):
    """0.3 s in, ``python -m multinet.gan`` is still importing torch (a second or more): Python
    would print the import's traceback. Later interrupts get the setup's or the run's own line."""
    p = subprocess.Popen([sys.executable, "-m", "multinet.gan", *FAST_GAN, "--steps", "1000000", "--out",
                          str(tmp_path / "r")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                         preexec_fn=from_a_terminal)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode in (-signal.SIGINT, 130), err
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith("interrupted during start-up") or err.startswith("interrupted during setup") \
        or "stopped by SIGINT" in err, err
    # a program that only imports multinet keeps Python's own hook, run with -m or not
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/__init__.py").write_text("import multinet\n")
    (tmp_path / "mine/run.py").write_text("import sys\nprint(sys.excepthook is sys.__excepthook__)\n")
    for args in (["-c", "import sys, multinet; print(sys.excepthook is sys.__excepthook__)"], ["-m", "mine.run"]):
        r = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=ENV, cwd=tmp_path)
        assert r.stdout.strip() == "True", r.stderr


def test_nan_stops_run_and_keeps_last_good_checkpoint(tmp_path):
    out = tmp_path / "r"
    # The learning rates jump from 1e-30 to 1e30 after 12 optimizer steps: the losses blow up after
    # the first checkpoint (step 10), and the guard must stop the run before it saves again.
    blow_up = [f"networks.{n}.{k}" for n in ("generator", "discriminator")
               for k in ("lr=1e-30", "schedule.name='step'", "schedule.step_size=12", "schedule.gamma=1e60")]
    r = run("multinet.gan", FAST_GAN + ["--steps", "40", "--out", str(out), *blow_up])
    assert r.returncode == 1, r.stderr
    assert "non-finite loss in phase" in r.stderr and r.stderr.strip().count("\n") == 0
    assert "(largest |weight| " in r.stderr  # how far the kept state is from overflow
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.pt", "step_00000010.pt"]
    assert load_checkpoint(out / "checkpoints/last.pt")["engine"]["iteration"] == 10
    assert (out / "checkpoints/last.pt").read_bytes() == (out / "checkpoints/step_00000010.pt").read_bytes()


def test_every_zero_turns_periodic_events_off(tmp_path):
    out = tmp_path / "r"
    r = run("multinet.gan", FAST_GAN + ["--steps", "7", "--out", str(out), "train.log_every=0",
                                        "train.checkpoint_every=0", "train.sample_every=0"])
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.pt", "step_00000007.pt"]
    assert load_checkpoint(out / "checkpoints/last.pt")["engine"]["iteration"] == 7
    assert _losses(out) == []
    assert json.loads((out / "summary.json").read_text())["steps"] == 7


@pytest.mark.parametrize("name,files", [("cifar10", "put cifar-10-batches-py/ (cifar-10-python.tar.gz, extracted) there"),
                                        ("mnist", "put MNIST/raw/ with the four *-ubyte files there")])
def test_a_failed_download_names_the_files_to_put_in_place(tmp_path, monkeypatch, name, files):
    import urllib.error
    import torchvision

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    for cls in (torchvision.datasets.CIFAR10, torchvision.datasets.MNIST):
        monkeypatch.setattr(cls, "download", offline)
    r = run("multinet.gan", ["gan_digits", f"data.name={name}", "data.download=true", f"data.root={tmp_path / 'd'}",
                             "--no-progress", "--out", str(tmp_path / "r")])
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert f"dataset {name}: download to {tmp_path / 'd'} failed (no network?); {files}" in r.stderr, r.stderr


def test_resume_refuses_overrides_it_cannot_honour(tmp_path):
    out = tmp_path / "r"
    assert run("multinet.gan", FAST_GAN + ["--steps", "4", "--out", str(out)]).returncode == 0
    before = (out / "checkpoints/last.pt").read_bytes()
    for args, msg in [(["networks.generator.betas=[0.1, 0.9]"], "networks.generator.betas: cannot change on --resume"),
                      (["networks.generator.lr=0"], "networks.generator.lr: 0.0004 -> 0.0 cannot be applied on --resume"),
                      (["--seed", "3"], "seed: cannot change on --resume"),
                      (["model.hidden=8"], "model.hidden: cannot change on --resume")]:
        r = run("multinet.gan", ["--resume", "--out", str(out), "--steps", "6", "--no-progress", *args])
        assert r.returncode == 2 and msg in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
        assert (out / "checkpoints/last.pt").read_bytes() == before
    # length, evaluation and the device may change
    r = run("multinet.gan", ["--resume", "--out", str(out), "--steps", "6", "--no-progress", "eval.samples=100",
                             "--device", "cpu"])
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == 6


def test_out_folder_mistakes_are_one_line_and_keep_checkpoints(tmp_path):
    (tmp_path / "afile").write_text("x")
    r = run("multinet.gan", FAST_GAN + ["--steps", "2", "--out", str(tmp_path / "afile")])
    assert r.returncode == 2 and r.stderr.strip() == f"error: --out {tmp_path / 'afile'}: exists and is not a folder"
    out = tmp_path / "r"
    assert run("multinet.gan", FAST_GAN + ["--steps", "10", "--out", str(out)]).returncode == 0
    before = {p.name: p.read_bytes() for p in (out / "checkpoints").iterdir()}
    r = run("multinet.gan", FAST_GAN + ["--steps", "20", "--out", str(out)])  # a new run, not --resume
    assert r.returncode == 2 and "holds an earlier run's files (checkpoints, metrics.jsonl" in r.stderr, r.stderr
    assert "continue it with --resume" in r.stderr and r.stderr.strip().count("\n") == 0
    assert {p.name: p.read_bytes() for p in (out / "checkpoints").iterdir()} == before
    # A run killed before its first checkpoint left only its log: the same command is refused too
    # (it used to append to that log), and --overwrite replaces the earlier files.
    died = tmp_path / "died"
    died.mkdir()
    (died / "metrics.jsonl").write_text('{"step": 5, "loss/generator": 1.0}\n')
    r = run("multinet.gan", FAST_GAN + ["--steps", "10", "--out", str(died)])
    assert r.returncode == 2 and "holds an earlier run's files (metrics.jsonl)" in r.stderr, r.stderr
    (died / "checkpoints").mkdir()
    (died / "checkpoints" / ".step_00000003.pt.abc.tmp").write_bytes(b"half a checkpoint")
    r = run("multinet.gan", FAST_GAN + ["--steps", "10", "--out", str(died), "--overwrite"])
    assert r.returncode == 0, r.stderr
    steps = [json.loads(line)["step"] for line in (died / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10] and not list((died / "checkpoints").glob("*.tmp")) and not (died / ".lock").exists()


def test_a_run_folder_in_use_is_refused_and_a_stale_lock_is_taken_over(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / ".lock").write_text(f"{os.getpid()} {__import__('socket').gethostname()} 2026-01-01T00:00:00\n")
    r = run("multinet.gan", FAST_GAN + ["--steps", "4", "--out", str(out)])  # this test's process holds it
    assert r.returncode == 2 and f"--out {out}: in use by another run (pid {os.getpid()}" in r.stderr, r.stderr
    assert not (out / "recipe.toml").exists() and (out / ".lock").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / ".lock").write_text(f"{dead.stdout.strip()} {__import__('socket').gethostname()} 2026-01-01T00:00:00\n")
    r = run("multinet.gan", FAST_GAN + ["--steps", "4", "--out", str(out)])  # its owner is gone: stale
    assert r.returncode == 0, r.stderr
    assert not (out / ".lock").exists()


def test_unfreeze_at_step_and_resume_after_it(tmp_path):
    args = FAST_GAN + ["networks.discriminator.freeze=['net.fc1']", "networks.discriminator.unfreeze=['net.fc1']",
                       "networks.discriminator.unfreeze_at=5"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert run("multinet.gan", args + ["--steps", "12", "--out", str(full)]).returncode == 0
    ck = load_checkpoint(full / "checkpoints/last.pt")["networks"]["discriminator"]
    assert "net.fc1.weight" in ck["trainable"]
    assert any("net.fc1.weight" in g["names"] for g in ck["optimizer"]["groups"])
    assert run("multinet.gan", args + ["--steps", "12", "--stop-at", "8", "--out", str(part)]).returncode == 0
    r = run("multinet.gan", ["--resume", "--out", str(part), "--no-progress"])
    assert r.returncode == 0, r.stderr
    a, b = _weights(full / "checkpoints/last.pt"), _weights(part / "checkpoints/last.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_corrupt_checkpoint_on_resume_is_one_line(tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"\x00not a checkpoint")
    r = run("multinet.autoencoder", ["--resume", str(bad), "--no-progress"])
    assert r.returncode == 2
    assert f"{bad}: not a readable checkpoint" in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    (tmp_path / "text.pt").write_text("just some text\n" * 20)
    r = run("multinet.gan", ["--resume", str(tmp_path / "text.pt"), "--no-progress"])
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "text.pt: not a readable checkpoint" in r.stderr



@pytest.mark.parametrize("workers,damage", [(0, "truncated"), (1, "not an image")])
def test_an_unreadable_image_stops_the_run_with_one_line_naming_it(tmp_path, workers, damage):
    from PIL import Image
    import numpy as np
    (tmp_path / "imgs/a").mkdir(parents=True)
    args = FAST_GAN + ["--steps", "10", "--out", str(tmp_path / "r"), "data.name=imagefolder",
                       f"data.root='{tmp_path / 'imgs'}'", "data.image_size=8", "data.batch_size=4",
                       f"data.workers={workers}", "model.hidden=16"]
    r = run("multinet.gan", args)  # a class folder without images
    assert r.returncode == 2 and r.stderr.startswith(f"error: data.root='{tmp_path / 'imgs'}': no images (")
    assert r.stderr.strip().endswith("in class folder(s) a"), r.stderr
    for i in range(12):
        Image.fromarray(np.full((8, 8, 3), 20 * i, dtype=np.uint8)).save(tmp_path / f"imgs/a/{i}.png")
    good = (tmp_path / "imgs/a/0.png").read_bytes()
    bad = tmp_path / "imgs/a/7.png"
    bad.write_bytes(good[:len(good) // 2] if damage == "truncated" else b"GIF89a, or so it says")
    r = run("multinet.gan", args)
    assert r.returncode == 1
    assert f"{bad}: not a readable image (" in r.stderr and "remove or replace the file" in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, r.stderr

def test_checkpoints_that_do_not_fit_and_recipes_that_are_not_the_runs_are_one_line(tmp_path):
    from multinet import save_checkpoint
    out = tmp_path / "r"
    assert run("multinet.gan", FAST_GAN + ["--steps", "2", "--out", str(out), "networks.generator.ema=0"]).returncode == 0
    ck = load_checkpoint(out / "checkpoints/last.pt")
    ck.pop("format"), ck.pop("checksum", None)
    w = ck["networks"]["generator"]["module"]
    first = next(iter(w))
    w[first] = torch.zeros(3, 3)  # another architecture
    save_checkpoint(ck, tmp_path / "arch.pt")
    ck2 = load_checkpoint(out / "checkpoints/last.pt")
    ck2.pop("format"), ck2.pop("checksum", None)
    ck2["stateful"]["data"] = {"epoch": "zero"}  # a broken data-sampler state
    save_checkpoint(ck2, tmp_path / "sampler.pt")
    for args, msg in [(["--resume", str(tmp_path / "arch.pt")], f"{tmp_path / 'arch.pt'}: network 'generator' does "
                       f"not fit this run's: size mismatch for {first}"),
                      (["sample", str(tmp_path / "arch.pt"), "--n", "4", "--out", str(tmp_path / "s.npy")],
                       "arch.pt: does not fit this system: size mismatch for"),
                      (["--resume", str(tmp_path / "sampler.pt")], f"{tmp_path / 'sampler.pt'}: "),
                      (["gan_ring8", "--resume", "--out", str(out)], "recipe gan_ring8 is not the one")]:
        r = run("multinet.gan", args + ["--no-progress"] if args[0] != "sample" else args)
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and msg in r.stderr, (args, r.stderr)
    assert load_checkpoint(out / "checkpoints/last.pt")["engine"]["iteration"] == 2  # nothing was overwritten


@pytest.mark.skipif(not any(shutil.which(c) for c in ("cc", "gcc", "clang")), reason="torch.compile on CPU needs a C compiler")
def test_compiled_networks_train_and_save_plain_names(tmp_path):
    """train.compile=true: the same checkpoint names as without, and training that matches the
    uncompiled run to float rounding (compiled kernels may sum in another order)."""
    outs = {}
    for flag in ("false", "true"):
        outs[flag] = tmp_path / flag
        r = run("multinet.gan", FAST_GAN + ["--steps", "4", "--out", str(outs[flag]), f"train.compile={flag}",
                                            "data.root=" + str(tmp_path / "d")])
        assert r.returncode == 0, r.stderr[-2000:]
    a, b = _weights(outs["false"] / "checkpoints/last.pt"), _weights(outs["true"] / "checkpoints/last.pt")
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


def test_warnings_print_as_one_line(tmp_path):
    r = spawn("multinet.gan", FAST_GAN + ["--steps", "3", "--out", str(tmp_path / "r"), "networks.generator.ema=0.999"])
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "EMA of generator" in ln]
    assert len(lines) == 1 and lines[0].startswith("warning: EMA of generator: decay 0.999"), r.stderr
    assert "UserWarning" not in r.stderr and "warnings.warn" not in r.stderr


def test_extending_an_autoencoder_run_keeps_its_phase_boundaries(tmp_path):
    out = tmp_path / "r"
    assert run("multinet.autoencoder", FAST_AE + ["--steps", "30", "--out", str(out)]).returncode == 0
    r = run("multinet.autoencoder", ["--resume", "--out", str(out), "--steps", "50", "--no-progress"])
    assert r.returncode == 0, r.stderr
    assert "phase '1_decoder' now ends at step 50 (was 30); earlier phase boundaries stay" in r.stderr
    ck = load_checkpoint(out / "checkpoints/last.pt")["engine"]
    assert ck["phase_steps"] == {"0_joint": 22, "1_decoder": 28}  # was rescaled to 37 / 13 (back to joint)
    rows = (out / "bler.csv").read_text().splitlines()
    assert sum("autoencoder after 1_decoder" in line for line in rows) == 6  # evaluated once, at its new end


def test_user_system_runs_under_the_same_command_line(tmp_path):
    """python -m multinet train module:Class: run folder, --stop-at, --resume, evaluate and sample."""
    out = tmp_path / "cgan"
    base = ["train", "examples.cond_gan_digits:CondGan", "--device", "cpu", "--no-progress", "--out", str(out),
            "--steps", "8", "train.log_every=2", "train.tensorboard=false"]
    r = run("multinet", base + ["--stop-at", "4"], cwd=ROOT)
    assert r.returncode == 0 and "stopped by step limit at step 4" in r.stderr, r.stderr
    r = run("multinet", ["train", "examples.cond_gan_digits:CondGan", "--resume", "--out", str(out), "--no-progress"],
            cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "summary.json").read_text())["resumed"] is True
    r = run("multinet", ["evaluate", str(out / "checkpoints/last.pt")], cwd=ROOT)  # a saved file names no code
    assert r.returncode == 2 and "--system examples.cond_gan_digits:CondGan" in r.stderr, r.stderr
    r = run("multinet", ["evaluate", str(out / "checkpoints/last.pt"), "--system", "examples.cond_gan_digits:CondGan"],
            cwd=ROOT)
    assert r.returncode == 0, r.stderr
    again, summary = json.loads(r.stdout.strip().splitlines()[-1]), json.loads((out / "summary.json").read_text())
    assert 0 <= again["label_match"] <= 1 and again["label_match"] == summary["label_match"]  # the same figure
    moved = [_weights(out / "checkpoints" / f) for f in ("step_00000004.pt", "last.pt")]
    assert any(not torch.equal(moved[0][k], moved[1][k]) for k in moved[0])  # steps 5-8 trained
    r = run("multinet", ["sample", str(out / "checkpoints/last.pt"), "--n", "10", "--out", str(tmp_path / "s.npy"),
                         "--trust-code"], cwd=ROOT)
    assert r.returncode == 0, r.stderr
    r = run("multinet", ["export", str(out / "checkpoints/last.pt"), "--out", str(tmp_path / "x"), "--trust-code"],
            cwd=ROOT)
    assert r.returncode == 2 and r.stderr.strip() == "error: CondGan offers no export()"
    for args, msg in [(["train", "subprocess:run"], "SYSTEM: 'subprocess:run' is refused"),
                      (["train", "examples.cond_gan_digits:CondGan", "latent_dims=3"], "unknown key 'latent_dims'"),
                      (["fit"], "usage: python -m multinet {train,evaluate,sample,export,sweep,compare,keys}")]:
        r = run("multinet", args, cwd=tmp_path if args[0] == "fit" else ROOT)
        assert r.returncode == 2 and msg in r.stderr, r.stderr


def test_two_runs_started_together_on_one_folder(tmp_path):
    """They used to both exit 0 with every step logged twice; now one runs and the other stops."""
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "multinet.gan", *FAST_GAN, "--steps", "40", "--out", str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                         preexec_fn=from_a_terminal)
             for _ in range(2)]
    results = [(*p.communicate(timeout=300), p.returncode) for p in procs]
    assert sorted(code for _, _, code in results) == [0, 2], results
    err = next(e for _, e, code in results if code == 2)
    assert "in use by another run" in err or "holds an earlier run's files" in err, err
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(5, 45, 5)) and not (out / ".lock").exists()


def test_a_run_that_finished_during_setup_is_not_appended_to(tmp_path, monkeypatch):
    """The folder was empty at the first check, but another run wrote it and let go of the lock
    while this one was still setting up: the second check, under the lock, refuses it."""
    from multinet.run.lock import RunLock
    out, take = tmp_path / "r", RunLock.acquire

    def finished_meanwhile(lock):
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.jsonl").write_text('{"step": 5}\n')
        take(lock)

    monkeypatch.setattr(RunLock, "acquire", finished_meanwhile)
    r = run("multinet.gan", FAST_GAN + ["--steps", "4", "--out", str(out)])
    assert r.returncode == 2 and "holds an earlier run's files (metrics.jsonl)" in r.stderr, r.stderr
    assert (out / "metrics.jsonl").read_text() == '{"step": 5}\n' and not (out / ".lock").exists()


def test_keys_prints_every_key_of_a_system_as_a_recipe_that_loads_back(tmp_path):
    from multinet.config import load_recipe, to_dict
    from multinet.gan import GanRecipe
    r = run("multinet", ["keys", "gan", "gan_digits", "networks.generator.lr=1e-4"])
    assert r.returncode == 0 and "[networks.generator]" in r.stdout and "lr = 0.0001" in r.stdout, r.stderr
    (tmp_path / "mine.toml").write_text(r.stdout)
    expected = load_recipe(GanRecipe, "gan_digits", ["networks.generator.lr=1e-4"])
    assert to_dict(load_recipe(GanRecipe, str(tmp_path / "mine.toml"), [])) == to_dict(expected)
    r = run("multinet", ["keys", "examples.bigan_digits:BiGan"])  # a system of one's own, its defaults
    assert r.returncode == 0 and "[networks.encoder]" in r.stdout, r.stderr
    r = run("multinet.autoencoder", ["keys", "ae_7_4", "channel.dbb=3"])
    assert r.returncode == 2 and "unknown key 'channel.dbb'" in r.stderr
