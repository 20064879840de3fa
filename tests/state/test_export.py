"""export: safetensors + JSON, a one-call loader, sampling from an export without the run."""
import json
import shutil

import numpy as np
import pytest
import torch

from multinet import Runner
from multinet.autoencoder import AeRecipe, AeSystem
from multinet.config import load_recipe
from multinet.state.export import export_module, load_exported, read_export
from multinet.gan import GanRecipe, GanSystem
from multinet.run.saved import load_system

from ..cli_run import run

GAN = ["device='cpu'", "train.steps=6", "train.tensorboard=false", "eval.samples=100", "eval.classifier_epochs=1",
       "train.sample_every=0"]


def _cli(*args):
    r = run("multinet", list(args))
    return r.returncode, r.stdout, r.stderr


def test_gan_export_loads_as_the_ema_generator_and_samples_without_the_run(tmp_path, one_thread):
    cfg = load_recipe(GanRecipe, "gan_digits", [*GAN, "networks.generator.ema=0.5"])
    assert Runner(GanSystem, cfg, tmp_path / "run", progress=False, echo=False).fit().code == 0
    ckpt = tmp_path / "run/checkpoints/last.pt"
    code, out, err = _cli("export", str(ckpt), "--out", str(tmp_path / "export"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["generator.json", "generator.safetensors"]
    info = read_export(tmp_path / "export/generator.json")
    assert info["meta"]["ema"] is True and info["meta"]["latent_dim"] == cfg.model.latent_dim
    G = load_exported(tmp_path / "export/generator.json")
    assert not G.training
    system, _ = load_system(ckpt)
    z = torch.randn(16, cfg.model.latent_dim)
    with torch.no_grad():
        assert torch.equal(G(z), system.generator(z))  # the EMA copy, not the raw weights
        assert not torch.equal(G(z), system.nets["generator"].module.eval()(z))
    shutil.rmtree(tmp_path / "run")  # sampling reads the export alone
    code, out, err = _cli("sample", str(tmp_path / "export"), "--n", "9", "--out", str(tmp_path / "s.npy"),
                          "--seed", "3")
    assert code == 0, err
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (9, 1, 8, 8) and np.abs(x).max() <= 1 and (tmp_path / "s.png").exists()
    # run() samples on one thread, as this test does (one_thread): bit-for-bit comparable.
    z = torch.randn(9, cfg.model.latent_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        np.testing.assert_array_equal(x, G(z).numpy())


def test_a_broken_or_foreign_export_is_one_line(tmp_path):
    G = torch.nn.Sequential(torch.nn.Linear(4, 4))
    with pytest.raises(ValueError, match="does not say how it was built"):
        export_module(G, tmp_path, "g")
    paths = export_module(torch.nn.Linear(4, 3), tmp_path, "lin", {"kind": "x"}, "torch.nn:Linear",
                          {"in_features": 4, "out_features": 3})
    assert isinstance(load_exported(paths[1], trust_code=True), torch.nn.Linear)
    spec = json.loads(paths[1].read_text())
    for change, msg in [({"class_path": "subprocess:run"}, "'subprocess:run' is refused"),
                        ({"class_path": "multinet.config:RunConfig"}, "is not a subclass of torch.nn.modules.module.Module"),
                        ({"init_args": {"in_features": 5, "out_features": 3}}, "do not fit torch.nn:Linear"),
                        ({"format": "other"}, "not a multinet export")]:
        (tmp_path / "bad.json").write_text(json.dumps({**spec, **change}))
        with pytest.raises(ValueError, match=msg):
            load_exported(tmp_path / "bad.json", trust_code=True)
    data = bytearray(paths[0].read_bytes())
    data[-1] ^= 1
    paths[0].write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match its export's checksum"):
        load_exported(paths[1], trust_code=True)
    code, _, err = _cli("sample", str(paths[1]), "--n", "2", "--out", str(tmp_path / "x.npy"))
    assert code == 2 and err.count("\n") == 1 and "not an exported generator" in err


def test_autoencoder_and_class_path_networks_export(tmp_path):
    cfg = load_recipe(AeRecipe, "ae_7_4", ["device='cpu'", "train.steps=20", "train.tensorboard=false",
                                           "eval.baselines=false", "eval.max_blocks=2000", "eval.batch=2000",
                                           "channel.eval_db=[4.0]"])
    assert Runner(AeSystem, cfg, tmp_path / "ae", progress=False, echo=False).fit().code == 0
    code, _, err = _cli("export", str(tmp_path / "ae/checkpoints/last.pt"), "--out", str(tmp_path / "ae_x"))
    assert code == 0, err
    enc, dec = load_exported(tmp_path / "ae_x/encoder.json"), load_exported(tmp_path / "ae_x/decoder.json")
    system, _ = load_system(tmp_path / "ae/checkpoints/last.pt")
    torch.testing.assert_close(system.channels["train"].normalize(enc.codebook()), system.codebook())
    assert read_export(tmp_path / "ae_x/decoder.json")["meta"]["receiver_inputs"] == 7
    assert dec(system.codebook()).argmax(1).tolist() == list(range(16))  # noiseless: every message decodes
    gcfg = load_recipe(GanRecipe, "gan_digits", [*GAN, "networks.generator.ema=0", "model.latent_dim=32",
                                                 "networks.generator.class_path='tests.nets_zoo:TinyGenerator'",
                                                 "networks.generator.init_args={latent=32, hidden=16}"])
    assert Runner(GanSystem, gcfg, tmp_path / "g", progress=False, echo=False).fit().code == 0
    # The user's own network class: a saved file names it, so the user says they trust the file.
    assert _cli("export", str(tmp_path / "g/checkpoints/last.pt"), "--out", str(tmp_path / "g_x"), "--trust-code")[0] == 0
    assert type(load_exported(tmp_path / "g_x", trust_code=True)).__name__ == "TinyGenerator"
