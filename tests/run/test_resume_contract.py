"""Resume is a contract: evaluation never touches the training's random state."""
import json
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from multinet import NetConfig, Phase, RunConfig, Runner, System, eval_mode, load_checkpoint


@dataclass
class Nets:
    net: NetConfig = field(default_factory=lambda: NetConfig(lr=1e-2))


@dataclass
class DropoutConfig(RunConfig):
    networks: Nets = field(default_factory=Nets)


class DropoutSystem(System):
    """Training draws from torch's global generator (dropout); ``evaluate`` builds a probe module
    on its first call, which draws from it too (its initial weights)."""

    Config = DropoutConfig

    def __init__(self, cfg, device, **build):
        super().__init__(cfg, device, **build)
        self.net("net", torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 1)))
        self.data = self.streams.get("data", device)
        self.probe = None

    def phases(self):
        return [Phase("fit", "net", self.step)]

    def step(self, e):
        x = torch.randn(32, 4, generator=self.data)
        return {"loss": F.mse_loss(e.model("net")(x), x.sum(1, keepdim=True))}

    def evaluate(self):
        if self.probe is None:
            self.probe = torch.nn.Linear(4, 1)
        x = torch.randn(8, 4, generator=self.streams.fresh("eval"))
        with eval_mode(self.nets["net"].module) as net:
            return {"probe": float(self.probe(x).sum()), "out": float(net(x).sum())}


def _cfg(steps=12):
    cfg = DropoutConfig(device="cpu")
    cfg.train.steps, cfg.train.eval_every, cfg.train.checkpoint_every, cfg.train.tensorboard = steps, 4, 2, False
    return cfg


def _weights(out):
    return load_checkpoint(out / "checkpoints/last.pt")["networks"]["net"]["module"]


def test_evaluation_never_moves_the_training_random_state(tmp_path, one_thread):
    whole = Runner(DropoutSystem, _cfg(), tmp_path / "whole", progress=False, echo=False).fit()
    assert whole.code == 0
    # Stopped at 6 and resumed: the first evaluation of the new process (step 8) builds the probe,
    # at another moment than in the whole run (step 4).
    assert Runner(DropoutSystem, _cfg(), tmp_path / "part", progress=False, echo=False, stop_at=6).fit().code == 0
    resumed = Runner(DropoutSystem, out=tmp_path / "part", resume=True, progress=False, echo=False).fit()
    assert resumed.code == 0
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "part")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert whole.summary["out"] == resumed.summary["out"]


def test_a_best_metric_the_evaluation_does_not_return_stops_the_run_in_one_line(tmp_path, capsys):
    from multinet.cli import main
    code = main(["train", f"{__name__}:DropoutSystem", "--no-progress", "--out", str(tmp_path / "r"), "--steps", "12",
                 "train.eval_every=4", "train.best_metric='prob'", "train.tensorboard=false", "device='cpu'"])
    err = capsys.readouterr().err.strip()  # after torch's once-per-process warning, when this process shows it
    assert code == 2 and err.splitlines()[-1] == ("error: train.best_metric: 'prob' is not a figure the evaluation "
                                                  "returns (it returns: probe, out)") and err.count("error") == 1, err


class NumbersAndMistakes(DropoutSystem):
    """A step that logs a Python number (``.item()``), and at step 5 a mistake in the user's code."""

    def step(self, e):
        terms = super().step(e)
        if e.iteration == 4:
            {}["missing"]
        return {**terms, "loss_value": terms["loss"].item()}


def test_user_step_code_may_log_numbers_and_its_mistakes_are_one_line_naming_its_line(tmp_path, capsys):
    from multinet.cli import main
    line = NumbersAndMistakes.step.__code__.co_firstlineno + 3
    with warnings.catch_warnings():  # the filter anew: once per process, and an earlier test may have shown it
        warnings.filterwarnings("default", message=".*is a Python number")
        code = main(["train", f"{__name__}:NumbersAndMistakes", "--no-progress", "--out", str(tmp_path / "r"),
                     "--steps", "8", "train.log_every=1", "train.checkpoint_every=2", "train.tensorboard=false",
                     "device='cpu'"])
    note, err = capsys.readouterr().err.strip().split("\n")  # a number read back each step is noted once
    assert code == 1 and "term 'loss_value' is a Python number" in note, note
    assert err.startswith("error: phase 'fit', step 5: KeyError: 'missing' [tests/run/test_resume_contract.py:"
                          f"{line}]; last good checkpoint kept:"), err
    assert "MULTINET_TRACEBACK=1" in err
    rows = [json.loads(r) for r in (tmp_path / "r/metrics.jsonl").read_text().splitlines()]
    assert [r["fit/loss_value"] for r in rows] == [r["loss/fit"] for r in rows] and len(rows) == 4


def _groups(out):
    return load_checkpoint(out / "checkpoints/last.pt")["networks"]["net"]["optimizer"]


def test_a_learning_rate_changed_on_resume_takes_effect(tmp_path, one_thread):
    from multinet.cli import main
    base = ["train", f"{__name__}:DropoutSystem", "--no-progress", "--out", str(tmp_path / "r"),
            "train.tensorboard=false", "device='cpu'", "train.checkpoint_every=2"]
    assert main([*base, "--steps", "6", "networks.net.groups=[{pattern='0.bias', lr_mult=0.5}]"]) == 0
    before = _groups(tmp_path / "r")
    assert sorted(g["lr"] for g in before["groups"]) == [5e-3, 1e-2]
    assert main([*base, "--steps", "8", "--resume", "networks.net.lr=1e-3"]) == 0
    after = _groups(tmp_path / "r")
    assert sorted(g["lr"] for g in after["groups"]) == [5e-4, 1e-3]  # every group, multipliers kept
    steps = [s["step"] for s in after["state"].values() if "step" in s]
    assert steps and all(float(s) == 8 for s in steps)  # Adam's state carried on (6 + 2 steps)
    assert "lr = 0.001" in (tmp_path / "r/recipe.toml").read_text()


def test_extending_a_run_never_replans_what_has_run(tmp_path, one_thread):
    """The example's decoder-only stage starts at 80 % of train.steps; extended from 10 to 20 steps,
    it stays on from step 8 (no return to joint training), and an auto-length linear decay that
    has finished stays finished."""
    from multinet.cli import main
    base = ["train", "examples.ae_clipping_channel:ClippedAutoencoder", "--no-progress", "--out", str(tmp_path / "r"),
            "train.tensorboard=false", "device='cpu'", "eval.max_blocks=2000", "train.checkpoint_every=5",
            "networks.encoder.schedule={name='linear', min_factor=0.0}"]
    assert main([*base, "--steps", "10"]) == 0
    assert main([*base, "--steps", "20", "--resume"]) == 0
    ck = load_checkpoint(tmp_path / "r/checkpoints/last.pt")
    assert ck["engine"]["phase_steps"] == {"joint": 8, "decoder": 12}
    assert ck["engine"]["plan"] == {"joint": [0, 8], "decoder": [8, None]}
    lrs = {g["lr"] for g in ck["networks"]["encoder"]["optimizer"]["groups"]}
    assert lrs == {0.0}  # the decay reached 0 at the end of joint training and stays there


def test_a_folder_left_by_a_run_that_died_before_any_result_does_not_block_a_rerun(tmp_path, capsys):
    from multinet.cli import main
    args = ["--no-progress", "--out", str(tmp_path / "r"), "--steps", "8", "train.tensorboard=false", "device='cpu'"]
    assert main(["train", f"{__name__}:NumbersAndMistakes", *args]) == 1  # dies at step 5, before any checkpoint
    left = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert left == ["metrics.jsonl", "parameter_groups.txt", "recipe.toml"] and \
        (tmp_path / "r/metrics.jsonl").read_text() == ""
    assert main(["train", f"{__name__}:DropoutSystem", *args]) == 0, capsys.readouterr().err
    fresh = [a if a != str(tmp_path / "r") else str(tmp_path / "fresh") for a in args]
    assert main(["train", f"{__name__}:DropoutSystem", *fresh]) == 0
    for name in ("parameter_groups.txt", "metrics.jsonl", "recipe.toml"):  # the dead run's leftovers are gone
        assert (tmp_path / "r" / name).read_text() == (tmp_path / "fresh" / name).read_text(), name


def test_the_generators_ema_has_one_home(tmp_path):
    import pytest

    from multinet.config import ConfigError, from_dict, load_recipe
    from multinet.gan import GanRecipe, GanSystem
    cfg = load_recipe(GanRecipe, "gan_digits", ["networks.generator.ema=0.9", "device='cpu'"])
    assert cfg.networks.generator.ema == 0.9 and not hasattr(cfg.gan, "ema")
    system = GanSystem(cfg, torch.device("cpu"))
    assert system.nets["generator"].ema is not None  # the recipe's value is the one used
    with pytest.raises(ConfigError, match="gan.ema"):  # the old home is gone: an unknown key, in one line
        from_dict(GanRecipe, {"gan": {"ema": 0.5}})

    class Overriding(DropoutSystem):  # a system that sets a value the recipe also sets
        def __init__(self, cfg, device, **build):
            System.__init__(self, cfg, device, **build)
            self.net("net", torch.nn.Linear(4, 1), ema=0.5)
    cfg = DropoutConfig(device="cpu")
    cfg.networks.net.ema = 0.9
    with pytest.raises(ValueError, match="networks.net.ema: the recipe sets 0.9 and Overriding sets 0.5"):
        Overriding(cfg, torch.device("cpu"))


def test_rules_name_module_types_either_way_and_an_init_rule_that_fits_nothing_warns():
    import pytest

    from multinet import Net, NetConfig
    from multinet.nets.patterns import resolve_types
    from multinet.nets.weights import InitRule
    assert resolve_types(["Linear", "nn.Linear", "torch.nn.Linear"]) == (torch.nn.Linear,) * 3
    with pytest.raises(ValueError, match="'torch.nn.Nope' is not a torch.nn module class"):
        resolve_types(["torch.nn.Nope"])
    module = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.warns(UserWarning, match=r"g: init rule\(s\) 'zeros\[Conv2d\]' match no module"):
        Net("g", module, NetConfig(optimizer="sgd", lr=0.1, init_rules=[InitRule("zeros", ("torch.nn.Conv2d",)), InitRule("zeros")]), "cpu")


def test_engine_options_are_typed_and_a_dict_is_one_line():
    import pytest

    from multinet import EngineOptions
    from multinet.config import ConfigError
    from multinet.run import engine_for

    class Sampler:
        def state_dict(self):
            return {"pos": 3}

        def load_state_dict(self, state):
            pass

    class Typed(DropoutSystem):
        def engine_options(self):
            return EngineOptions(steps_per_epoch=5, stateful={"data": Sampler()})

    class Old(DropoutSystem):
        def engine_options(self):
            return {"steps_per_epoch": 5, "stateful": {"data": Sampler()}}
    e = engine_for(Typed(_cfg(), torch.device("cpu")))
    assert e.steps_per_epoch == 5 and e.state_dict()["stateful"]["data"] == {"pos": 3}
    with pytest.raises(ConfigError, match="engine_options\\(\\) returned dict; return multinet.EngineOptions"):
        engine_for(Old(_cfg(), torch.device("cpu")))


def test_a_systems_notes_go_through_the_runner(tmp_path, capfd):
    from multinet.autoencoder import AeRecipe, AeSystem
    from multinet.config import load_recipe
    cfg = load_recipe(AeRecipe, "ae_7_4", ["device='cpu'", "train.steps=8", "train.tensorboard=false",
                                           "eval.max_blocks=2000", "eval.batch=2000", "eval.baselines=false",
                                           "link.batch_size=64", "train.checkpoint_every=4"])
    assert Runner(AeSystem, cfg, tmp_path / "r", progress=False, echo=False).fit().code == 0
    capfd.readouterr()
    cfg.train.steps = 10  # extended: the system notes that its last phase now ends later
    assert Runner(AeSystem, cfg, tmp_path / "r", resume=True, progress=False, echo=False).fit().code == 0
    assert capfd.readouterr().err == ""  # echo=False: nothing printed
    cfg.train.steps = 12
    assert Runner(AeSystem, cfg, tmp_path / "r", resume=True, progress=False).fit().code == 0
    assert "note: 10 -> 12 steps: phase '1_decoder' now ends at step 12" in capfd.readouterr().err


class Sampling(DropoutSystem):
    def sample(self, n):
        return torch.randn(n, 4, generator=self.streams.fresh("sample"))


def test_sample_options_go_to_the_system_and_a_system_without_them_says_so(tmp_path, capsys):
    from multinet.cli import main
    out = tmp_path / "r"
    assert main(["train", f"{__name__}:Sampling", "--no-progress", "--out", str(out), "--steps", "2",
                 "train.tensorboard=false", "device='cpu'"]) == 0
    ckpt = str(out / "checkpoints/last.pt")
    capsys.readouterr()
    args = ["sample", ckpt, "--system", f"{__name__}:Sampling", "--n", "3", "--out", str(tmp_path / "s.npy")]
    assert main(args) == 0
    assert main([*args, "--rejection", "drs"]) == 2
    assert capsys.readouterr().err.strip() == "error: Sampling offers no rejection sampling"
