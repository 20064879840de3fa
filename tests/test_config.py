import subprocess
import sys

import pytest

from multinet.config import ConfigError, from_dict, list_recipes, load_recipe, parse_overrides, to_dict, to_toml
from multinet.gan import GanRecipe


def test_unknown_key_names_key_and_valid_choices():
    with pytest.raises(ConfigError, match=r"unknown key 'train.stepz' \(valid: steps, amp, "):
        from_dict(GanRecipe, {"train": {"stepz": 3}})
    with pytest.raises(ConfigError, match=r"unknown key 'networks.critic' \(valid: generator, discriminator\)"):
        from_dict(GanRecipe, {"networks": {"critic": {}}})


def test_wrong_types_and_choices():
    with pytest.raises(ConfigError, match=r"train.steps: expected an integer, got 'many'"):
        from_dict(GanRecipe, {"train": {"steps": "many"}})
    with pytest.raises(ConfigError, match=r"gan.loss: 'wgan' is not valid \(valid: bce, hinge, wgan-gp, lsgan\)"):
        from_dict(GanRecipe, {"gan": {"loss": "wgan"}})
    with pytest.raises(ConfigError, match=r"networks.generator.lr: expected a number"):
        from_dict(GanRecipe, {"networks": {"generator": {"lr": True}}})


def test_overrides_parse_toml_values():
    o = parse_overrides(["train.steps=10", "data.name=mnist", "networks.generator.betas=[0.5,0.9]", "networks.generator.ema=0.99"])
    assert o == {"train": {"steps": 10}, "data": {"name": "mnist"},
                 "networks": {"generator": {"betas": [0.5, 0.9], "ema": 0.99}}}
    cfg = load_recipe(GanRecipe, "gan_digits", ["train.steps=10", "networks.generator.lr=1e-3"])
    assert cfg.train.steps == 10 and cfg.networks.generator.lr == 1e-3
    with pytest.raises(ConfigError, match="train.steps: expected an integer, got 'ten'"):
        load_recipe(GanRecipe, "gan_digits", ["train.steps=ten"])


def test_every_shipped_recipe_validates_and_round_trips_through_toml():
    import tomllib
    from multinet.autoencoder import AeRecipe
    names = list_recipes()
    assert "gan_digits" in names and set(list_recipes("gan")) | set(list_recipes("autoencoder")) == set(names)
    assert "sngan_cifar10" in list_recipes("gan") and "ae_7_4" in list_recipes("autoencoder")
    for name in names:
        cls = GanRecipe if name in list_recipes("gan") else AeRecipe
        cfg = load_recipe(cls, name)
        again = from_dict(cls, tomllib.loads(to_toml(to_dict(cfg))))
        assert to_dict(again) == to_dict(cfg), name


def test_recipe_not_found_lists_named_recipes():
    with pytest.raises(ConfigError, match=r"recipe 'nope' not found \(named recipes: .*gan_digits"):
        load_recipe(GanRecipe, "nope")


def test_cli_unknown_key_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "multinet.gan", "gan_digits", "train.stepz=3", "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "unknown key 'train.stepz'" in r.stderr


def test_named_recipes_from_installed_package(tmp_path):
    """From outside the source tree, the installed package must still find its named recipes."""
    code = "import multinet, multinet.config as c; print(multinet.__file__); print(c.list_recipes())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    if r.returncode != 0 and "No module named 'multinet'" in r.stderr:
        pytest.skip("multinet is not installed (run `pip install .`)")
    assert "gan_digits" in r.stdout, r.stdout + r.stderr


def test_recipe_table_and_api_spec_share_one_set_of_training_fields():
    """NetConfig (recipes) and NetSpec (Python) differ only in how they write optimizer options,
    init and group rules; every other field is TrainSetup's and passes through unchanged."""
    from dataclasses import fields

    import torch
    from multinet.netconfig import NetConfig, to_spec
    from multinet.nets import NetSpec, TrainSetup
    shared = {f.name for f in fields(TrainSetup)}
    assert shared <= {f.name for f in fields(NetConfig)} and shared <= {f.name for f in fields(NetSpec)}
    cfg = from_dict(NetConfig, {"weight_decay": 0.1, "init_strict": True, "freeze": ["0"], "freeze_first_n": 1,
                                "frozen_norm": "train", "unfreeze": ["0"], "unfreeze_at": 5, "clip_grad_norm": 1.0,
                                "channels_last": True, "ema": 0.9, "schedule": {"name": "linear", "total": 9},
                                "pretrained": {"path": "x.pt"}, "optimizer": "sgd", "momentum": 0.9})
    spec = to_spec(cfg, torch.nn.Linear(2, 2))
    for name in shared - {"compile", "sync_batchnorm"}:
        assert getattr(spec, name) == getattr(cfg, name), name
    assert spec.options == {"momentum": 0.9} and spec.optimizer == "sgd"
    assert to_spec(cfg, torch.nn.Linear(2, 2), compile=True).compile  # the run's train.compile
    with pytest.raises(ConfigError, match=r"networks.discriminator.ema: must be in \[0, 1\)"):
        from_dict(GanRecipe, {"networks": {"discriminator": {"ema": 1.0}}})
    with pytest.raises(ValueError, match="unfreeze_at: must be >= 1 when unfreeze is set"):
        NetSpec(torch.nn.Linear(2, 2), unfreeze=["0"])


def test_a_binary_recipe_is_named(tmp_path):
    (tmp_path / "r.toml").write_bytes(b"\x00\xff\xfe binary")
    with pytest.raises(ConfigError, match=f"recipe file {tmp_path / 'r.toml'}: not a text"):
        load_recipe(GanRecipe, str(tmp_path / "r.toml"))


def test_drs_through_a_discriminator_not_trained_with_bce_warns():
    import warnings
    with pytest.warns(UserWarning, match=r"only gan.loss='bce' trains it to be \(gan.loss='hinge'\)"):
        load_recipe(GanRecipe, "gan_ring8", ["gan.loss='hinge'"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_recipe(GanRecipe, "gan_ring8")  # bce
        load_recipe(GanRecipe, "gan_ring8", ["gan.loss='hinge'", "eval.drs_refit=100"])  # its own critic
