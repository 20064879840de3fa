"""Every bad input is one line, and nothing hangs: command-line words, config values, sizes, data
folders, signals during start-up, a full disk, a file size limit, another system's checkpoint."""
import os
import resource
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from multinet.cli import main
from multinet.gan import GanSystem
from multinet.run.lock import RunLock

from ..cli_run import ENV, from_a_terminal, run, spawn

GAN = ["--device", "cpu", "--no-progress", "train.tensorboard=false", "train.sample_every=0", "eval.samples=50",
       "eval.classifier_epochs=1", "networks.generator.ema=0"]


class SigtermWhileBuilt(GanSystem):
    """A SIGTERM arrives while the system is being built (setup, before training)."""

    def __init__(self, cfg, device, **build):
        os.kill(os.getpid(), signal.SIGTERM)
        super().__init__(cfg, device, **build)


class SwallowsCtrlC(GanSystem):
    """Ctrl-C arrives while a library's code runs during setup, and that code swallows it (as an
    import interrupted inside a C extension, or a bare ``except``, can)."""

    def __init__(self, cfg, device, **build):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(2)
        except KeyboardInterrupt:
            pass
        super().__init__(cfg, device, **build)


def _one_line(r, msg):
    """Exit status 2 and exactly one line on stderr, an ``error:`` holding ``msg``, no traceback."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.startswith("error: ") and r.stderr.strip().count("\n") == 0, r.stderr
    assert msg in r.stderr and "Traceback" not in r.stderr, r.stderr


# Every plain "these words -> one line" case, of both command lines: (the words after ``python -m``,
# a text the line holds). Each runs in an empty working folder and must leave it empty: refused
# before anything starts (no run folder, no data, no checkpoint).
@pytest.mark.parametrize("command,msg", [
    # python -m multinet.gan / multinet.autoencoder [RECIPE] ...
    (["multinet.gan", "gan_digits", "--resume", "/nonexistent/last.pt"],
     "/nonexistent/last.pt: no such checkpoint file"),
    (["multinet.gan", "gan_digits", "data.name=mnist"], "dataset mnist not found under data"),
    (["multinet.gan", "gan_digits", "data.name=celeba"],
     "dataset celeba not found under data/celeba (set data.download=true"),
    (["multinet.gan", "gan_digits", "data.name=imagefolder", "data.root=nowhere"],
     "data.root='nowhere': no such folder"),
    (["multinet.gan", "gan_digits", "eval.features='nope.mod:Features'"], "eval.features: cannot import 'nope.mod'"),
    (["multinet.gan", "gan_digits", "--out", "/proc/multinet-nope"],
     "--out /proc/multinet-nope: cannot create the run folder ("),
    (["multinet.gan", "gan_digits", "data.name=imagefolder", "data.root=.", "eval.drs_refit=100"],
     "eval.drs_refit: fits a critic to real examples held in memory; data.name='imagefolder' streams"),
    (["multinet.autoencoder", "ae_7_4", "train.trackers=['neptune']"],
     "train.trackers[0]: must be 'mlflow' or 'wandb', got 'neptune'"),
    (["multinet.autoencoder", "ae_7_4", "channel.model=sionna.Nope"],
     "channel.model: must be one of awgn, sionna.AWGN"),
    (["multinet.autoencoder", "ae_7_4", "link.policy_sigma=1.5"], "link.policy_sigma: must be in (0, 1), got 1.5"),
    (["multinet.gan", "gan_digits", "--resume"], "--resume without a checkpoint path needs --out DIR"),
    (["multinet.gan", "no_such_recipe"], "recipe 'no_such_recipe' not found"),
    (["multinet.gan", "/"], "recipe '/' is a folder, not a recipe file (named recipes: "),
    (["multinet.gan", "gan_digits", "--device", "cpu", "train.sync_batchnorm=true"], "SyncBatchNorm needs CUDA"),
    (["multinet.gan", "gan_digits", "train.checkpoint_every=-1"],
     "train.checkpoint_every: must be >= 0 (0 turns it off), got -1"),
    (["multinet.gan", "gan_digits", "train.sample_every=-5"], "train.sample_every: must be >= 0"),
    (["multinet.gan", "gan_digits", "data.batch_size=0"], "data.batch_size: must be >= 1, got 0"),
    (["multinet.gan", "gan_digits", "networks.generator.lr=-1"],
     "networks.generator.lr: must be in [0, 1e+30] (larger steps overflow float32), got -1.0"),
    (["multinet.gan", "gan_digits", "networks.discriminator.lr=nan"],
     "networks.discriminator.lr: expected a finite number, got nan"),
    (["multinet.gan", "gan_digits", "data.train_fraction=0"], "data.train_fraction: must be in (0, 1], got 0.0"),
    (["multinet.gan", "gan_digits", "networks.generator.betas=[0.5]"],
     "networks.generator.betas: must be two numbers in [0, 1)"),
    (["multinet.gan", "gan_digits", "networks.generator.ema=1.5"],
     "networks.generator.ema: must be in [0, 1) (0 turns it off), got 1.5"),
    (["multinet.gan", "gan_digits", "model.hidden=0"], "model.hidden: must be in [1, 65536], got 0"),
    (["multinet.autoencoder", "ae_7_4", "link.k=0"], "link.k: must be >= 1, got 0"),
    (["multinet.gan", "gan_digits", "--device", "tpu"], "device 'tpu' is not a device"),
    (["multinet.gan", "gan_digits", "seed=-1"], "seed: must be in [0, "),
    (["multinet.gan", "gan_digits", "networks.generator.lr=1e308"],
     "networks.generator.lr: must be in [0, 1e+30] (larger steps"),
    (["multinet.gan", "gan_digits", "--stop-at", "-1"], "--stop-at: must be >= 1, got -1"),
    (["multinet.autoencoder", "ae_7_4", "channel.eval_db=[nan]"],
     "channel.eval_db[0]: expected a finite number, got nan"),
    (["multinet.autoencoder", "ae_7_4", "channel.db=1e4"], "channel.db: must be in [-60, 60] dB, got 10000.0"),
    (["multinet.autoencoder", "ae_7_4", "link.k=64"], "link.k: must be in [1, 16] (2^k messages), got 64"),
    # A 0.1 key says where it went.
    (["multinet.autoencoder", "ae_7_4", "system.k=4"],
     "unknown key 'system': it is [link] since 1.0 (CHANGELOG.md, \"Migrating from 0.1\")"),
    (["multinet.gan", "gan_digits", "gan.ema=0.9"], "unknown key 'gan.ema': it is networks.generator.ema since 1.0"),
    (["multinet.gan", "gan_digits", "networks.generator.compile=true"],
     "unknown key 'networks.generator.compile': it is train.compile since 1.0"),
    (["multinet.gan", "gan_digits", "data.extra={}"],
     "unknown key 'data.extra': removed in 1.0, as no dataset read it: delete the line (CHANGELOG.md"),
    (["multinet.autoencoder", "ae_images_awgn", "data.name=ring8"],
     "data.name: link.kind = 'images' needs an image set held in memory (digits, mnist, fashion-mnist, cifar10, idx), "
     "got 'ring8'"),
    (["multinet.autoencoder", "ae_7_4", "link.batch_size=10000000000000"], "link.batch_size: must be in [1, 16777216]"),
    # python -m multinet train SYSTEM ...
    (["multinet", "train", "", "--steps", "3"], "SYSTEM: expected 'package.module:Name', got ''"),
    (["multinet", "train", ".cli:main", "--steps", "3"], "SYSTEM: expected 'package.module:Name', got '.cli:main'"),
    (["multinet", "train", "gan", "eval.features='torch.nn:Linear'"],
     "eval.features: torch.nn:Linear must be buildable without"),
    (["multinet", "train", "gan", "eval.features='torch_fidelity:GenerativeModelBase'"],
     "is an abstract class, not a feature"),
    (["multinet", "train", "gan", "eval.features='torch.nn:Identity'"],
     "torch.nn:Identity must return (features (N, d), logits"),
    (["multinet", "train", "gan", "networks.generator.eps=inf"],
     "networks.generator.eps: expected a finite number, got inf"),
    (["multinet", "train", "gan", f"train.steps={10 ** 30}"],
     "train.steps: 1000000000000000000000000000000 is out of range"),
    (["multinet", "train", "gan", f"train.steps={10 ** 13}"], "train.steps: must be in [0, 1000000000000]"),
    (["multinet", "train", "gan", "train.dist_timeout=inf"], "train.dist_timeout: expected a finite number, got inf"),
    (["multinet", "train", "gan", "--device", "cpu:99"], "device 'cpu:99': the CPU has no index (use cpu)"),
    (["multinet", "train", "gan", "--out", ""], "--out: empty; name the run folder"),
    (["multinet", "train", "gan", "model.d_fourier=1000000000"],
     "model.d_fourier: must be in [0, 65536], got 1000000000"),
    (["multinet", "train", "gan", "eval.fid_samples=1000000000000"], "eval.fid_samples: must be in [2, 10000000]"),
    (["multinet", "train", "gan", "data.name='imagefolder'", "data.root='/proc/self'"],
     "data.root='/proc/self' is on a pseudo file system (proc)"),
    (["multinet", "train", "gan", "data.name='imagefolder'", "data.root='/sys'"], "is on a pseudo file system (sysfs)"),
])
def test_bad_input_is_one_line_and_starts_nothing(tmp_path, command, msg):
    t = time.monotonic()
    r = run(command[0], [*command[1:], "--no-progress"], cwd=tmp_path)
    _one_line(r, msg)
    assert time.monotonic() - t < 60  # refused, not attempted
    assert not list(tmp_path.iterdir()), list(tmp_path.iterdir())


def test_a_folder_named_like_a_recipe_does_not_hide_it(tmp_path):
    """A folder ``gan_digits`` in the working directory is not a recipe file: the shipped recipe
    runs; a folder that names no recipe is one line."""
    (tmp_path / "gan_digits").mkdir()
    (tmp_path / "notes").mkdir()
    r = run("multinet", ["keys", "gan", "gan_digits"], cwd=tmp_path)
    assert r.returncode == 0 and "MLP GAN on scikit-learn's 8x8 digits" in r.stdout, r.stderr
    _one_line(run("multinet.gan", ["notes", "--no-progress"], cwd=tmp_path),
              "error: recipe 'notes' is a folder, not a recipe file (named recipes: ")


def _images(folder, n):
    folder.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (8, 8), (i * 5 % 256, 0, 0)).save(folder / f"{i}.png")


def test_links_back_into_an_image_folder_are_not_followed(tmp_path):
    from multinet.data.files import image_folder
    root = tmp_path / "imgs"
    _images(root / "a", 20)
    _images(root / "b", 20)
    (root / "a" / "loop").symlink_to("..")  # a/loop -> the root: every image again, under label a
    (root / "b" / "self").symlink_to(".")  # a cycle
    (root / "b" / "deeper").mkdir()
    (root / "b" / "deeper" / "up").symlink_to("../..")
    elsewhere = tmp_path / "elsewhere"
    _images(elsewhere, 5)
    (root / "b" / "more").symlink_to(elsewhere)  # a link to images outside the tree is followed
    t = time.monotonic()
    ds = image_folder(str(root), None)
    assert time.monotonic() - t < 10
    assert len(ds.samples) == 45
    assert sorted({label for _, label in ds.samples}) == [0, 1]
    assert sum(1 for path, label in ds.samples if label == 0) == 20


def test_sigterm_during_start_up_or_setup_is_one_line(tmp_path, capsys):
    p = subprocess.Popen([sys.executable, "-m", "multinet.gan", *GAN, "--steps", "1000000", "--out",
                          str(tmp_path / "r")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                         preexec_fn=from_a_terminal)
    time.sleep(0.3)  # still importing torch
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, (p.returncode, err)
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith("stopped by SIGTERM during start-up") or "stopped by SIGTERM" in err, err

    before = signal.getsignal(signal.SIGTERM)
    code = main(["train", f"{__name__}:SigtermWhileBuilt", *GAN, "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 143 and err.strip() == "stopped by SIGTERM during setup, before training started", (code, err)
    assert signal.getsignal(signal.SIGTERM) is before  # the program's own handling is back


def test_ctrl_c_during_setup_is_never_lost(tmp_path):
    """Until training starts, an interrupt ends ``python -m multinet`` at once in one line: raised
    as an exception it could be swallowed by a library and the run would train on."""
    r = spawn("multinet", ["train", "tests.cli.test_bad_input:SwallowsCtrlC", *GAN, "--steps", "5", "--out", str(tmp_path / "r")])
    assert r.returncode == 130 and r.stderr.strip() == "interrupted during setup, before training started", \
        (r.returncode, r.stderr)
    assert not (tmp_path / "r" / "summary.json").exists()


def test_resume_followed_by_an_override_is_not_read_as_a_path(tmp_path):
    out = tmp_path / "r"
    assert run("multinet", ["train", "gan", *GAN, "--steps", "2", "--out", str(out)]).returncode == 0
    r = run("multinet", ["train", "gan", "--out", str(out), "--resume", "train.steps=3", "--no-progress"])
    assert r.returncode == 0, r.stderr
    assert '"steps": 3' in r.stdout


def test_a_full_disk_when_the_lock_is_written_leaves_no_empty_lock(tmp_path, monkeypatch):
    real = os.fdopen

    def full(fd, *a, **k):
        f = real(fd, *a, **k)
        f.write = lambda text: (_ for _ in ()).throw(OSError(28, "No space left on device"))
        return f
    monkeypatch.setattr(os, "fdopen", full)
    with pytest.raises(OSError, match="cannot write .lock \\(No space left on device\\)"):
        RunLock(tmp_path / "r").acquire()
    assert not (tmp_path / "r" / ".lock").exists()


def test_a_file_size_limit_is_named(tmp_path):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (200 * 1024, 200 * 1024))
    p = subprocess.run([sys.executable, "-m", "multinet.gan", *GAN, "--steps", "3", "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, env=ENV, preexec_fn=limit, timeout=300)
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0, p.stderr
    assert "cannot be written (the file size limit (ulimit -f) is 204,800 bytes" in p.stderr, p.stderr
    assert not list((tmp_path / "r/checkpoints").glob(".*"))


def test_another_systems_checkpoint_names_both_systems(tmp_path):
    out = tmp_path / "ae"
    r = run("multinet", ["train", "autoencoder", "--device", "cpu", "--steps", "2", "--out", str(out), "--no-progress",
                         "train.tensorboard=false", "eval.max_blocks=1000", "eval.batch=1000", "eval.baselines=false"])
    assert r.returncode == 0, r.stderr
    for args in (["train", "gan", "--resume", str(out / "checkpoints/last.pt"), "--out", str(tmp_path / "g")],
                 ["evaluate", str(out / "checkpoints/last.pt"), "--system", "gan"]):
        _one_line(run("multinet", args), "was written by the system multinet.autoencoder.messages:MessageAutoencoder, not "
                                         "multinet.gan.system:GanSystem")


def test_a_system_module_that_fails_while_importing_is_one_line_naming_its_line(tmp_path, monkeypatch):
    (tmp_path / "broken_system.py").write_text("import torch\nsettings = {}\nlr = settings['lr']\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    r = run("multinet", ["train", "broken_system:Mine", "--steps", "2", "--out", str(tmp_path / "r")], cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: SYSTEM: importing 'broken_system' failed: KeyError: 'lr' [broken_system.py:3]"], r.stderr
    assert not (tmp_path / "r").exists()


def test_a_system_module_importing_a_name_10_removed_points_to_the_migration_table(tmp_path, monkeypatch):
    (tmp_path / "old_system.py").write_text("from multinet.handlers import NanGuard\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    r = run("multinet", ["train", "old_system:Mine", "--steps", "2", "--out", str(tmp_path / "r")], cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: SYSTEM: cannot import 'old_system' for 'old_system:Mine' (cannot import name "
                               "'NanGuard' from 'multinet.handlers'")
    assert r.stderr.strip().endswith("; a name 1.0 moved or removed: CHANGELOG.md, \"Migrating from 0.1\", says what "
                                     "replaces it")
    assert not (tmp_path / "r").exists()

