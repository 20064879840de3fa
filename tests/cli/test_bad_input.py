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
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert msg in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr


@pytest.mark.parametrize("args,msg", [
    (["train", "", "--steps", "3"], "SYSTEM: expected 'package.module:Name', got ''"),
    (["train", ".cli:main", "--steps", "3"], "SYSTEM: expected 'package.module:Name', got '.cli:main'"),
    (["train", "gan", "eval.features='torch.nn:Linear'"], "eval.features: torch.nn:Linear must be buildable without"),
    (["train", "gan", "eval.features='torch_fidelity:GenerativeModelBase'"], "is an abstract class, not a feature"),
    (["train", "gan", "eval.features='torch.nn:Identity'"], "torch.nn:Identity must return (features (N, d), logits"),
    (["train", "gan", "networks.generator.eps=inf"], "networks.generator.eps: expected a finite number, got inf"),
    (["train", "gan", f"train.steps={10 ** 30}"], "train.steps: 1000000000000000000000000000000 is out of range"),
    (["train", "gan", f"train.steps={10 ** 13}"], "train.steps: must be in [0, 1000000000000]"),
    (["train", "gan", "train.dist_timeout=inf"], "train.dist_timeout: expected a finite number, got inf"),
    (["train", "gan", "--device", "cpu:99"], "device 'cpu:99': the CPU has no index (use cpu)"),
    (["train", "gan", "--out", ""], "--out: empty; name the run folder"),
    (["train", "gan", "model.d_fourier=1000000000"], "model.d_fourier: must be in [0, 65536], got 1000000000"),
    (["train", "gan", "eval.fid_samples=1000000000000"], "eval.fid_samples: must be in [2, 10000000]"),
    (["train", "gan", "data.name='imagefolder'", "data.root='/proc/self'"],
     "data.root='/proc/self' is on a pseudo file system (proc)"),
    (["train", "gan", "data.name='imagefolder'", "data.root='/sys'"], "is on a pseudo file system (sysfs)"),
])
def test_bad_input_is_one_line_and_starts_nothing(tmp_path, args, msg):
    t = time.monotonic()
    r = run("multinet", [*args, *([] if "--out" in args else ["--out", str(tmp_path / "r")]), "--no-progress"],
            cwd=tmp_path)
    _one_line(r, msg)
    assert time.monotonic() - t < 60  # refused, not attempted
    assert not (tmp_path / "r").exists() and not (tmp_path / "checkpoints").exists()


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
