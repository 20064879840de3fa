import subprocess
import sys
from pathlib import Path

import pytest

from multinet.config import (ConfigError, find_recipe, from_dict, list_recipes, load_recipe, parse_overrides, to_dict,
                             to_toml)
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


def test_a_network_table_and_python_write_the_same_netconfig():
    """One dataclass for a network: a recipe table parses into exactly what Python code writes
    (rules included), saves back to the same table, and each value is checked in one place."""
    import tomllib

    from torch import nn

    from multinet import GroupRule, InitRule, NetConfig
    from multinet.config import to_dict, to_toml
    table = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "init": "dcgan", "freeze": ["0"],
             "init_rules": [{"method": "normal", "types": ["Linear"], "std": 0.02}],
             "groups": [{"pattern": "head", "lr_mult": 10.0, "momentum": 0.5}],
             "schedule": {"name": "linear", "total": 9}, "ema": 0.9}
    from_recipe = from_dict(NetConfig, table)
    from_python = NetConfig(optimizer="sgd", lr=0.1, momentum=0.9, init="dcgan", freeze=["0"],
                            init_rules=[InitRule("normal", [nn.Linear], std=0.02)],
                            groups=[GroupRule(pattern="head", lr_mult=10.0, momentum=0.5)],
                            schedule=from_recipe.schedule, ema=0.9)
    assert from_recipe == from_python
    assert from_dict(NetConfig, tomllib.loads(to_toml(to_dict(from_python)))) == from_python  # saved as written
    assert from_python.optimizer_options() == {"momentum": 0.9}
    assert from_python.group_rules()[0].options == {"momentum": 0.5}
    assert [r.name for r in from_python.init_rule_list()][:1] == ["normal[Linear]"]  # then the preset's
    with pytest.raises(ConfigError, match=r"networks.discriminator.ema: must be in \[0, 1\)"):
        from_dict(GanRecipe, {"networks": {"discriminator": {"ema": 1.0}}})
    with pytest.raises(ValueError, match=r"ema: must be in \[0, 1\)"):
        NetConfig(ema=1.0)
    with pytest.raises(ValueError, match="unfreeze_at: must be >= 1 when unfreeze is set"):
        NetConfig(unfreeze=["0"])
    with pytest.raises(ConfigError, match=r"networks.generator.groups\[0\]: module type 'Lineer'"):
        from_dict(GanRecipe, {"networks": {"generator": {"groups": [{"types": ["Lineer"]}]}}})


def test_a_binary_recipe_is_named(tmp_path):
    (tmp_path / "r.toml").write_bytes(b"\x00\xff\xfe binary")
    with pytest.raises(ConfigError, match=f"recipe file {tmp_path / 'r.toml'}: not a text"):
        load_recipe(GanRecipe, str(tmp_path / "r.toml"))


def test_a_folder_named_like_a_recipe_does_not_hide_it(tmp_path, monkeypatch):
    """Only a file (or a name ending in .toml) is read as a recipe file: a folder ``gan_digits`` in
    the working directory leaves the shipped recipe reachable, and a folder that names no recipe
    is one line saying so."""
    monkeypatch.chdir(tmp_path)
    for name in ("gan_digits", "notes", "mine.toml"):
        (tmp_path / name).mkdir()
    shipped = Path(__file__).resolve().parents[2] / "recipes/gan_digits.toml"
    assert find_recipe("gan_digits") == ("gan_digits", shipped.read_text())
    with pytest.raises(ConfigError, match=r"^recipe 'notes' is a folder, not a recipe file \(named recipes: .*gan_digits"):
        find_recipe("notes")
    with pytest.raises(ConfigError, match=r"^recipe file mine.toml is a folder, not a file$"):
        find_recipe("mine.toml")
    (tmp_path / "gan_digits_mine").write_text('[train]\nsteps = 7\n')  # a file is a recipe file, .toml or not
    assert load_recipe(GanRecipe, "gan_digits_mine").train.steps == 7


def test_drs_through_a_discriminator_not_trained_with_bce_warns():
    import warnings
    with pytest.warns(UserWarning, match=r"only gan.loss='bce' trains it to be \(gan.loss='hinge'\)"):
        load_recipe(GanRecipe, "gan_ring8", ["gan.loss='hinge'"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_recipe(GanRecipe, "gan_ring8")  # bce
        load_recipe(GanRecipe, "gan_ring8", ["gan.loss='hinge'", "eval.drs_refit=100"])  # its own critic


def test_the_flat_module_paths_from_before_the_layered_packages_are_gone():
    """``multinet.runner`` and the other flat paths were removed before 1.0 (CHANGELOG's migration
    table gives each new home); the package paths users import stay as they are."""
    import importlib
    for old in ("multinet.runner", "multinet.checkpoint", "multinet.moved", "multinet.optimizers"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(old)
    import multinet
    from multinet.data import load_data  # kept paths: the same objects
    from multinet.engine import Engine, Phase
    from multinet.handlers import Checkpointer
    from multinet.nets import Net, resolve_device
    assert (load_data, Engine, Phase, Net, resolve_device) == (
        multinet.data.sources.load_data, multinet.Engine, multinet.Phase, multinet.Net, multinet.resolve_device)
    assert Checkpointer.__module__ == "multinet.handlers.checkpointer"


def test_a_typo_inside_an_optional_table_names_the_key():
    from multinet.autoencoder import AeRecipe
    with pytest.raises(ConfigError, match=r"unknown key 'finetune_channel.dbb' \(valid: level, db"):
        from_dict(AeRecipe, {"finetune_channel": {"dbb": 3}})
    with pytest.raises(ConfigError, match=r"finetune_channel.db: expected a number, got 'x'"):
        from_dict(AeRecipe, {"finetune_channel": {"db": "x"}})
    assert from_dict(AeRecipe, {"finetune_channel": None}).finetune_channel is None
    assert from_dict(AeRecipe, {"finetune_channel": {"db": 3.0}}).finetune_channel.db == 3.0
