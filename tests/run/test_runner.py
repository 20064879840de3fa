"""The runner and the System contract from Python: the three example systems train, checkpoint and
resume bit-exactly; extra trackers, best checkpoints, networks named by class path, the trust boundary."""
import copy
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from multinet import Runner, System, load_checkpoint
from multinet.state.imports import import_class

EXAMPLES = ["examples.cond_gan_digits:CondGan", "examples.bigan_digits:BiGan",
            "examples.ae_clipping_channel:ClippedAutoencoder"]


# Bit-for-bit comparisons: one thread fixes the CPU summation order (README, "Known limits").
pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(system, steps=12, **train):
    cfg = system.Config()
    cfg.device = "cpu"
    cfg.train.steps, cfg.train.log_every, cfg.train.checkpoint_every, cfg.train.tensorboard = steps, 2, 4, False
    for k, v in train.items():
        setattr(cfg.train, k, v)
    if hasattr(cfg, "eval") and hasattr(cfg.eval, "max_blocks"):
        cfg.eval.max_blocks = 20_000
    return cfg


def _weights(path):
    ck = load_checkpoint(path)
    return {f"{n}.{k}": v for n, s in ck["networks"].items() for k, v in s["module"].items()}


def _rows(out):
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("path", [*EXAMPLES, pytest.param(
    "examples.ae_sionna_channel:SionnaAutoencoder", marks=pytest.mark.skipif(
        importlib.util.find_spec("sionna") is None, reason="the Sionna example needs pip install multinet[sionna]"))])
def test_example_system_trains_checkpoints_and_resumes_exactly(tmp_path, path):
    system = import_class(path, System)
    full = Runner(system, _cfg(system), tmp_path / "full", progress=False, echo=False).fit()
    assert full.code == 0 and full.step == 12 and full.summary["steps"] == 12
    assert (tmp_path / "full" / "summary.json").exists() and (tmp_path / "full" / "recipe.toml").exists()
    part = Runner(system, _cfg(system), tmp_path / "part", stop_at=6, progress=False, echo=False).fit()
    assert part.stop_reason == "step limit" and part.code == 0
    again = Runner(system, out=tmp_path / "part", resume=True, progress=False, echo=False).fit()
    assert again.code == 0 and again.summary["resumed"] is True
    a, b = _weights(tmp_path / "full/checkpoints/last.pt"), _weights(tmp_path / "part/checkpoints/last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _rows(tmp_path / "full") == _rows(tmp_path / "part")  # every step logged once, the same values
    assert {k: v for k, v in full.summary.items() if k != "resumed"} == \
        {k: v for k, v in again.summary.items() if k != "resumed"}


def test_a_resumed_run_counts_its_training_time_across_processes(tmp_path):
    from multinet.handlers import Timer
    system = import_class(EXAMPLES[2], System)
    part = Runner(system, _cfg(system), tmp_path, stop_at=6, progress=False, echo=False).fit()
    saved = load_checkpoint(tmp_path / "checkpoints/last.pt")["stateful"]["timer"]["seconds"]
    assert 0 < saved <= part.seconds
    again = Runner(system, out=tmp_path, resume=True, progress=False, echo=False).fit()
    assert again.code == 0 and again.seconds >= saved
    assert load_checkpoint(tmp_path / "checkpoints/last.pt")["stateful"]["timer"]["seconds"] >= saved
    timer = Timer()  # what it carries over: the checkpointed time, plus this process's since the start
    timer.load_state_dict({"seconds": 100.0})
    assert timer.seconds == 100.0
    timer.attach(type("E", (), {"on": lambda self, event, fn: fn(self)})())
    assert 100.0 < timer.seconds < 160.0 and timer.state_dict()["seconds"] >= 100.0


def test_extra_tracker_and_best_checkpoint(tmp_path):
    system = import_class(EXAMPLES[1], System)

    class Seen:
        def __init__(self):
            self.rows = []

        def scalars(self, step, values):
            self.rows.append((step, values))

    seen = Seen()
    cfg = _cfg(system, eval_every=4, best_metric="reconstruction_mse", best_mode="min")
    r = Runner(system, cfg, tmp_path / "r", trackers=(seen,), progress=False, echo=False).fit()
    assert r.code == 0 and [s for s, _ in seen.rows] == [2, 4, 6, 8, 10, 12]
    assert "loss/discriminator" in seen.rows[0][1] and "loss/encoder_generator" in seen.rows[0][1]
    evals = [row for row in _rows(tmp_path / "r") if "eval/reconstruction_mse" in row]
    assert [row["step"] for row in evals] == [4, 8, 12]
    best = load_checkpoint(tmp_path / "r/checkpoints/best.pt")
    mses = [row["eval/reconstruction_mse"] for row in evals]
    assert best["engine"]["iteration"] == [4, 8, 12][mses.index(min(mses))]
    assert best["stateful"]["checkpointer"]["best_value"] == pytest.approx(min(mses))


def test_best_metric_needs_eval_every():
    from multinet.config import ConfigError, from_dict
    from multinet.gan import GanRecipe
    with pytest.raises(ConfigError, match="train.best_metric: needs train.eval_every > 0"):
        from_dict(GanRecipe, {"train": {"best_metric": "classifier_fd"}})


def test_a_recipe_names_its_own_network_and_the_trust_boundary_holds(tmp_path):
    from multinet.config import load_recipe
    from multinet.gan import GanRecipe, GanSystem
    cfg = load_recipe(GanRecipe, "gan_digits", ["device='cpu'", "train.steps=4", "train.tensorboard=false",
                                                "networks.generator.class_path='tests.nets_zoo:TinyGenerator'",
                                                "networks.generator.init_args={latent=32, hidden=16}", "eval.samples=100",
                                                "eval.classifier_epochs=1", "networks.generator.ema=0"])
    r = Runner(GanSystem, cfg, tmp_path / "r", progress=False, echo=False).fit()
    assert r.code == 0
    gen = load_checkpoint(tmp_path / "r/checkpoints/last.pt")["networks"]["generator"]["module"]
    assert gen["net.0.weight"].shape == (16, 32)  # the user's network, with its arguments
    for bad, msg in [("subprocess:run", "'subprocess:run' is refused"),
                     ("multinet.config:RunConfig", "is not a subclass of torch.nn.modules.module.Module"),
                     ("no_such_pkg.nets:G", "cannot import 'no_such_pkg.nets'"),
                     ("tests.nets_zoo:Nope", "has no 'Nope'")]:
        c = copy.deepcopy(cfg)
        c.networks.generator.class_path = bad
        with pytest.raises(ValueError, match=msg):
            GanSystem(c, torch.device("cpu"))


def test_schedule_function_by_import_path_is_refused_unless_python(tmp_path):
    from multinet.nets.schedules import ScheduleSpec, factor_fn
    with pytest.raises(ValueError, match="'math:sqrt' is not a Python function"):
        factor_fn(ScheduleSpec("lambda", fn="math:sqrt"), 10)


def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    import errno

    import multinet.state.checkpoint as ck
    from multinet.cli import main
    real, calls = ck.save_checkpoint, []

    def full_disk(payload, path):
        calls.append(path)
        if len(calls) > 1:  # step 4 went through (last.pt is a hard link to it); the disk is full at step 8
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(payload, path)
    monkeypatch.setattr(ck, "save_checkpoint", full_disk)
    out = tmp_path / "r"
    code = main(["train", "examples.bigan_digits:BiGan", "--device", "cpu", "--no-progress", "--out", str(out),
                 "--steps", "12", "train.checkpoint_every=4", "train.tensorboard=false"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "No space left on device" in err, err
    assert load_checkpoint(out / "checkpoints/last.pt")["engine"]["iteration"] == 4
    assert not list((out / "checkpoints").glob(".*.tmp")) and not (out / ".lock").exists()


def test_non_finite_weights_with_a_finite_loss_stop_before_any_checkpoint(tmp_path):
    """A step that breaks the weights while its loss is still finite: no checkpoint is written from
    such a state, and the message names the network."""
    from multinet.config import load_recipe
    from multinet.gan import GanRecipe, GanSystem

    class Breaking(GanSystem):
        def g_step(self, e):
            out = super().g_step(e)
            with torch.no_grad():  # after the loss: the loss stays finite, the weights do not
                next(e.model("generator").parameters()).fill_(float("inf"))
            return out
    cfg = load_recipe(GanRecipe, "gan_digits", ["device='cpu'", "train.steps=20", "train.checkpoint_every=1",
                                                "train.log_every=1", "train.tensorboard=false", "networks.generator.ema=0"])
    r = Runner(Breaking, cfg, tmp_path / "r", progress=False, echo=False).fit()
    assert r.code == 1 and "non-finite weights in network 'generator'" in r.error
    assert not (tmp_path / "r/checkpoints/last.pt").exists()


def _failing_at_step_7(message):
    """The BiGAN example whose discriminator step raises ``RuntimeError(message)`` at step 7."""
    class Failing(import_class(EXAMPLES[1], System)):
        def d_step(self, e):
            if e.iteration == 6:
                raise RuntimeError(message)
            return super().d_step(e)
    return Failing, Failing.d_step.__code__.co_firstlineno + 2  # the raise: the user's line, named in errors


def test_a_torch_error_mid_run_is_one_line_and_keeps_the_last_checkpoint(tmp_path):
    Overflowing, line = _failing_at_step_7("value cannot be converted to type float without overflow\nmore detail")
    r = Runner(Overflowing, _cfg(Overflowing), tmp_path / "r", progress=False, echo=False).fit()
    assert r.code == 1 and r.error == ("phase 'discriminator', step 7: RuntimeError: value cannot be converted to "
                                       f"type float without overflow [tests/run/test_runner.py:{line}]"), r.error
    assert load_checkpoint(tmp_path / "r/checkpoints/last.pt")["engine"]["iteration"] == 4


def test_an_error_line_starts_a_line_of_its_own_after_the_progress_bar(tmp_path, capsys):
    Failing, _ = _failing_at_step_7("boom")
    assert Runner(Failing, _cfg(Failing), tmp_path / "r", progress=True).fit().code == 1
    err = capsys.readouterr().err
    assert "\nerror: phase 'discriminator', step 7: RuntimeError: boom" in err, err


def test_a_saved_gan_samples_without_its_data_or_optimizers(tmp_path):
    """load_system builds networks only: no optimizer, and the data is read only when an
    evaluation asks for it (here the IDX folder is gone after training)."""
    import shutil

    import numpy as np
    from multinet import load_system
    from multinet.config import load_recipe
    from multinet.gan import GanRecipe, GanSystem
    from tests.data.test_data import _idx
    root = tmp_path / "idx"
    root.mkdir()
    _idx(root / "t-images-idx3-ubyte", np.random.RandomState(0).randint(0, 255, (64, 12, 12)))
    _idx(root / "t-labels-idx1-ubyte", np.arange(64) % 4)
    cfg = load_recipe(GanRecipe, "gan_digits", ["device='cpu'", "train.steps=3", "train.tensorboard=false",
                                                "data.name=idx", f"data.root={str(root)!r}", "eval.samples=64",
                                                "eval.classifier_epochs=1", "networks.generator.ema=0.5", "data.batch_size=16"])
    assert Runner(GanSystem, cfg, tmp_path / "r", progress=False, echo=False).fit().code == 0
    shutil.rmtree(root)
    gan, _ = load_system(tmp_path / "r/checkpoints/last.pt")
    assert all(net.optimizer is None for net in gan.nets.values()) and not gan.dataset.loaded
    x = gan.sample(8)
    assert x.shape == (8, 1, 12, 12) and not gan.dataset.loaded
    with pytest.raises(FileNotFoundError, match="no \\*images-idx3-ubyte"):
        gan.evaluate()


class _Saves(System):
    """A system with state of its own, for the inference build below."""

    def __init__(self, cfg, device, **build):
        super().__init__(cfg, device, **build)
        self.net("generator", torch.nn.Linear(2, 2))
        self.built_with = dict(self.saved)

    def phases(self):
        from multinet import Phase
        return [Phase("generator", ["generator"], lambda e: {"loss": self.nets["generator"].module.weight.sum() ** 2})]

    def state_dict(self):
        return {"note": "kept"}


class _TrainsOnly(_Saves):
    def __init__(self, cfg, device):  # takes no saved=: a saved run could not be rebuilt for inference
        super().__init__(cfg, device)


def test_load_system_builds_for_inference_through_an_explicit_argument(tmp_path):
    """``saved=`` is how a system learns it is rebuilt from a checkpoint (no optimizers, its own
    state given); a system whose __init__ takes only (cfg, device) is refused in one line naming the
    fix, when it would train and when it would be rebuilt (there is no second way to build one)."""
    from dataclasses import dataclass, field

    from multinet import NetConfig, RunConfig, load_system
    from multinet.config import ConfigError

    @dataclass
    class Nets:
        generator: NetConfig = field(default_factory=NetConfig)

    @dataclass
    class Cfg(RunConfig):
        networks: Nets = field(default_factory=Nets)

    _Saves.Config = Cfg
    assert Runner(_Saves, _cfg(_Saves, steps=4), tmp_path / "r", progress=False, echo=False).fit().code == 0
    built, _ = load_system(tmp_path / "r/checkpoints/last.pt", _Saves)
    assert built.inference and built.built_with == {"note": "kept"} and built.nets["generator"].optimizer is None
    built = _Saves(_cfg(_Saves), torch.device("cpu"))
    assert not built.inference and built.nets["generator"].optimizer is not None
    fix = r"_TrainsOnly.__init__ takes no saved=: write `def __init__\(self, cfg, device, \*\*build\)`"
    with pytest.raises(ConfigError, match=fix):
        load_system(tmp_path / "r/checkpoints/last.pt", _TrainsOnly)
    with pytest.raises(ConfigError, match=fix):
        Runner(_TrainsOnly, _cfg(_TrainsOnly, steps=4), tmp_path / "t", progress=False, echo=False).fit()
    assert not (tmp_path / "t").exists()  # refused before anything is written


@pytest.mark.parametrize("check_every,stops_after", [(None, 20), (1, 13), (5, 15)])
def test_train_check_every_sets_how_soon_a_diverged_run_stops(check_every, stops_after):
    """``train.check_every``: the engine a run builds checks the losses that often (default: each
    log step, here off, so every 50 and at the end); learning rates that jump to 1e30 after 12
    steps give NaN at step 13 of 20."""
    from multinet import NonFiniteLoss, load_recipe
    from multinet.run import engine_for
    from multinet.gan import GanRecipe, GanSystem
    blow_up = [f"networks.{n}.{k}" for n in ("generator", "discriminator")
               for k in ("lr=1e-30", "schedule.name='step'", "schedule.step_size=12", "schedule.gamma=1e60")]
    over = ["device='cpu'", "train.steps=20", "train.log_every=0", *blow_up]
    if check_every is not None:
        over.append(f"train.check_every={check_every}")
    cfg = load_recipe(GanRecipe, "gan_digits", over)
    assert cfg.train.check_every == check_every
    if check_every is not None:  # "none" (TOML has no null) sets it back to the default
        assert load_recipe(GanRecipe, "gan_digits", [*over, "train.check_every=none"]).train.check_every is None
    engine = engine_for(GanSystem(cfg, torch.device("cpu")))
    with pytest.raises(NonFiniteLoss, match="at step 13"):
        engine.run()
    assert engine.iteration == stops_after


def _bigan():
    return import_class(EXAMPLES[1], System)


class _Misspelt:
    """A user's handler with a typo in a network's name."""

    def attach(self, engine):
        engine.on("iteration", self.unfreeze_late, every=6)

    def unfreeze_late(self, engine):
        engine.nets["generatr"].unfreeze("0")


def test_an_error_in_a_handler_is_one_line_naming_it_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    class WithHandler(_bigan()):
        def handlers(self, ctx):
            return [_Misspelt()]
    r = Runner(WithHandler, _cfg(WithHandler), tmp_path, progress=False).fit()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert r.code == 1 and r.stop_reason == "failed", err
    assert err.startswith("error: handler _Misspelt.unfreeze_late on ITERATION_COMPLETED, step 6: KeyError: "
                          "'generatr' [tests/run/test_runner.py:"), err
    assert err.endswith(f"last good checkpoint kept: {tmp_path / 'checkpoints' / 'last.pt'} (MULTINET_TRACEBACK=1 "
                        "shows where)")
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["engine"]["iteration"] == 4


class _FailsToAttach:
    def attach(self, engine):
        raise KeyError("no such event source")


def test_a_handler_that_fails_to_attach_and_a_handlers_method_naming_a_01_name_are_one_line(tmp_path, capsys):
    import multinet.handlers as H

    class Attaching(_bigan()):
        def handlers(self, ctx):
            return [_FailsToAttach()]

    class Old(_bigan()):
        def handlers(self, ctx):
            return [H.NanGuard(every=10)]  # 0.1's API
    r = Runner(Attaching, _cfg(Attaching), tmp_path / "a", progress=False).fit()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert r.code == 1 and err.startswith("error: handler _FailsToAttach.attach on STARTED, step 0: KeyError: 'no "
                                          "such event source' [tests/run/test_runner.py:"), err
    r = Runner(Old, _cfg(Old), tmp_path / "o", progress=False).fit()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert r.code == 1 and err.startswith("error: AttributeError: module 'multinet.handlers' has no attribute "
                                          "'NanGuard' [tests/run/test_runner.py:"), err
    assert "(at step 0); a name 1.0 moved or removed: CHANGELOG.md, \"Migrating from 0.1\", says what replaces " \
           "it" in err
