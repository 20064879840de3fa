"""Learned communications beyond the gradient-trained message autoencoder: Sionna's channels and
codes (skipped only where the extra is absent), model-free training, the bit system."""
import json
import math
import subprocess
import sys

import pytest
import torch

from multinet import Runner, load_checkpoint
from multinet.autoencoder import AeRecipe, AeSystem, ChannelConfig
from multinet.autoencoder.bler import hamming74_codebook, ml_decoder, monte_carlo, wilson_interval
from multinet.autoencoder.channels import make_channel, quantize
from multinet.autoencoder.model_free import perturb, policy_loss
from multinet.autoencoder.networks import bit_labels, gray_qam
from multinet.config import ConfigError, from_dict, load_recipe

from ..cli_run import ENV, run, spawn

try:
    import sionna.phy as sp
except ImportError:
    sp = None
needs_sionna = pytest.mark.skipif(sp is None, reason='Sionna not installed (pip install "multinet[sionna]")')
CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")  # runs are compared bit for bit


def _cfg(recipe, *items):
    return load_recipe(AeRecipe, recipe, ["device='cpu'", "train.tensorboard=false", "train.log_every=5",
                                          "train.checkpoint_every=10", *items])


def _fit(cfg, out, **kw):
    r = Runner(AeSystem, cfg, out, progress=False, echo=False, **kw).fit()
    assert r.code == 0, r.stop_reason
    return r


def _weights(path):
    ck = load_checkpoint(path)
    return {f"{n}.{k}": v for n, s in ck["networks"].items() for k, v in s["module"].items()}


# -- Sionna channels ----------------------------------------------------------------------------
@needs_sionna
@pytest.mark.parametrize("symbols,n,k", [("real", 7, 4), ("complex", 8, 8), ("complex", 2, 4)])
def test_sionna_awgn_noise_is_the_built_in_convention_and_ebnodb2no(symbols, n, k):
    """The noise per real value through Sionna's AWGN equals σ² = 1/(2·R·Eb/N0) of the built-in
    channel, and its ``no`` is ``ebnodb2no`` with the bits a complex use carries."""
    db = 3.0
    sion = make_channel(ChannelConfig(model="sionna.AWGN", symbols=symbols, db=db), n, torch.Generator().manual_seed(0),
                        CPU, k=k)
    own = make_channel(ChannelConfig(db=db), n, torch.Generator().manual_seed(0), CPU, k=k)
    bits = (1 if symbols == "real" else 2) * k / n  # bits per complex use
    no = sp.utils.ebnodb2no(db, math.ceil(bits), bits / math.ceil(bits))
    assert float(sion.noise_power(db)) == pytest.approx(float(no), rel=1e-6)
    x = own.normalize(torch.randn(100_000, n))
    noise = sion(x) - x
    assert sion.out_dim == n and noise.shape == x.shape
    assert float(noise.var()) == pytest.approx(own.sigma(db) ** 2, rel=0.02)
    assert float((own(x) - x).var()) == pytest.approx(own.sigma(db) ** 2, rel=0.02)


@needs_sionna
def test_sionna_draws_come_from_the_channels_own_stream():
    """Sionna's global generator is loaded from the channel's stream and read back: the same
    stream state gives the same noise, the stream moves, and Sionna's own seed plays no part."""
    cfg = ChannelConfig(model="sionna.RayleighBlockFading", symbols="complex", db=5.0)
    a = make_channel(cfg, 8, torch.Generator().manual_seed(4), CPU, k=4)
    b = make_channel(cfg, 8, torch.Generator().manual_seed(4), CPU, k=4)
    x = a.normalize(torch.randn(64, 8))
    y1 = a(x)
    sp.config.seed = 123  # reseeding Sionna changes nothing here
    assert torch.equal(y1, b(x))
    assert not torch.equal(a(x), y1)  # the stream moved on
    ev = torch.Generator().manual_seed(9)
    state = ev.get_state()
    a(x, 5.0, ev)
    assert not torch.equal(ev.get_state(), state)  # an evaluation generator is the one drawn from


@needs_sionna
@pytest.mark.parametrize("model,args", [("sionna.FlatFadingChannel", {}), ("sionna.RayleighBlockFading", {}),
                                        ("sionna.TDL", {"model": "A", "delay_spread": 300e-9,
                                                        "carrier_frequency": 3.5e9})])
def test_sionna_fading_channels_fade_with_unit_average_gain(model, args):
    ch = make_channel(ChannelConfig(model=model, sionna_args=args, symbols="complex", db=40.0), 8,
                      torch.Generator().manual_seed(0), CPU, k=4)
    x = ch.normalize(torch.randn(20_000, 8))
    y = ch(x)
    assert y.shape == (20_000, 8) and ch.out_dim == 8
    assert float(y.pow(2).sum(1).mean()) == pytest.approx(8.0, rel=0.05)  # E|h|² = 1
    assert float((y - x).abs().mean()) > 0.3  # not AWGN at 40 dB: the symbols are faded
    real = make_channel(ChannelConfig(model=model, sionna_args=args, db=10.0), 7, torch.Generator(), CPU, k=4)
    assert real.out_dim == 14  # real symbols over fading: the receiver gets both parts


@needs_sionna
def test_a_run_over_a_sionna_channel_resumes_bit_exactly(tmp_path):
    cfg = _cfg("ae_7_4", "train.steps=24", "channel.model='sionna.FlatFadingChannel'", "channel.db=8.0",
               "channel.eval_db=[10.0]", "eval.max_blocks=4000", "eval.batch=2000", "eval.baselines=false")
    _fit(cfg, tmp_path / "full")
    _fit(cfg, tmp_path / "part", stop_at=14)
    _fit(None, tmp_path / "part", resume=True)
    a, b = _weights(tmp_path / "full/checkpoints/last.pt"), _weights(tmp_path / "part/checkpoints/last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "full/bler.csv").read_text() == (tmp_path / "part/bler.csv").read_text()


@needs_sionna
def test_evaluate_a_saved_run_under_a_sionna_channel_and_a_wrong_shape_is_one_line(tmp_path, capsys):
    from multinet.cli import main
    _fit(_cfg("ae_7_4", "train.steps=20", "eval.baselines=false", "eval.max_blocks=4000", "eval.batch=2000",
              "channel.eval_db=[2.0]"), tmp_path / "r")
    ckpt = str(tmp_path / "r/checkpoints/last.pt")
    assert main(["evaluate", ckpt, "channel.model='sionna.AWGN'", "channel.eval_db=[1.0,5.0]",
                 "eval.max_blocks=30000", "eval.min_errors=50"]) == 0
    scored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    curve = scored["curves"]["autoencoder after 1_decoder"]
    assert set(curve) == {"1", "5"} and curve["5"] < curve["1"]
    assert main(["evaluate", ckpt, "channel.model='sionna.FlatFadingChannel'"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not fit this system" in err[0]


@needs_sionna
def test_sionna_osd_and_the_own_ml_monte_carlo_agree_on_hamming74():
    """Sionna's OSD (t = k: maximum likelihood) and the project's exhaustive ML search give the
    same BLER within their 95 % Monte Carlo intervals (different noise draws)."""
    pcm, k, n, _ = sp.fec.utils.load_parity_check_examples(0)
    enc = sp.fec.linear.LinearEncoder(pcm, is_pcm=True, device="cpu")
    dec = sp.fec.linear.OSDecoder(encoder=enc, t=k, device="cpu")
    g = torch.Generator().manual_seed(5)
    for db in (1.0, 4.0):
        no = sp.utils.ebnodb2no(torch.tensor(db), 1, k / n)
        c = enc(torch.randint(0, 2, (60_000, k), generator=g).float())
        y = (1 - 2 * c) + (no / 2).sqrt() * torch.randn(c.shape, generator=g)
        errors = int((dec(-4 * y / no) != c).any(1).sum())
        lo, hi = wilson_interval(errors, 60_000)
        cb = hamming74_codebook()
        r = monte_carlo(cb, ml_decoder(cb), 4, db, 10 ** 9, 60_000, 60_000, torch.Generator().manual_seed(6))
        rlo, rhi = wilson_interval(r.errors, r.blocks)
        assert errors > 300 and max(lo, rlo) <= min(hi, rhi), (db, errors, r.errors)


def test_a_sionna_channel_without_sionna_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sionna", None)  # "not installed"
    monkeypatch.setitem(sys.modules, "sionna.phy", None)
    r = run("multinet", ["train", "autoencoder", "ae_7_4", "--device", "cpu", "channel.model='sionna.AWGN'",
                         "--out", str(tmp_path / "r"), "--no-progress"])
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == ("error: channel.model='sionna.AWGN' needs Sionna, which is not "
                                                 'installed: pip install "multinet[sionna]"')


def test_channel_config_mistakes_are_named():
    for bad, key in [({"model": "sionna.Nope"}, "channel.model"), ({"model": "awgn", "sionna_args": {"a": 1}},
                                                                  "channel.sionna_args"),
                     ({"model": "sionna.AWGN", "fading": "rayleigh"}, "channel.fading"),
                     ({"quantize_bits": 13}, "channel.quantize_bits")]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            from_dict(AeRecipe, {"channel": bad})
    with pytest.raises(ConfigError, match="link.code_n"):
        from_dict(AeRecipe, {"link": {"kind": "bits", "bits_per_symbol": 3, "code_n": 512}})


# -- model-free training -----------------------------------------------------------------------
def test_policy_gradient_estimates_the_true_gradient():
    """For l(x_p) = ‖x_p − t‖², E[l] = ‖√(1−σ²)x − t‖² + σ²·d: the surrogate's gradient, averaged
    over many perturbations, matches the analytic gradient (and has the right sign)."""
    sigma, d = 0.3, 4
    x = torch.tensor([[0.5, -1.0, 2.0, 0.0]], requires_grad=True)
    t = torch.tensor([1.0, 1.0, 1.0, 1.0])
    xs = x.expand(400_000, d)
    xp = perturb(xs, sigma, torch.Generator().manual_seed(0))
    policy_loss(xs, xp, (xp - t).pow(2).sum(1), sigma).backward()
    a = (1 - sigma ** 2) ** 0.5
    true = 2 * a * (a * x.detach() - t)  # every row is the same x: its gradient sums the batch mean's
    torch.testing.assert_close(x.grad, true, rtol=0.05, atol=0.05)
    assert float((x.grad * true).sum()) > 0.95 * float(true.pow(2).sum())


def test_quantised_receiver_blocks_gradients_and_only_model_free_trains_the_transmitter(tmp_path):
    assert torch.equal(quantize(torch.tensor([-9.0, -0.1, 0.1, 9.0]), 1, 2.0), torch.tensor([-1.0, -1.0, 1.0, 1.0]))
    items = ["train.steps=40", "channel.quantize_bits=1", "eval.baselines=false", "eval.max_blocks=2000",
             "eval.batch=2000", "channel.eval_db=[6.0]"]
    _fit(_cfg("ae_7_4", *items, "train.steps=2"), tmp_path / "short")  # same seed: the same initial networks
    start = _weights(tmp_path / "short/checkpoints/last.pt")
    for how in ("gradient", "model_free"):
        _fit(_cfg("ae_7_4", *items, f"link.training='{how}'"), tmp_path / how)
        w = _weights(tmp_path / how / "checkpoints/last.pt")
        moved = any(not torch.equal(w[k], start[k]) for k in w if k.startswith("encoder."))
        assert moved == (how == "model_free"), how
        assert any(not torch.equal(w[k], start[k]) for k in w if k.startswith("decoder."))


def test_model_free_phases_alternate_and_resume_exactly(tmp_path):
    cfg = _cfg("ae_7_4_model_free", "train.steps=30", "eval.baselines=false", "eval.max_blocks=4000",
               "eval.batch=2000", "channel.eval_db=[4.0]")
    _fit(cfg, tmp_path / "full")
    rows = [json.loads(x) for x in (tmp_path / "full/metrics.jsonl").read_text().splitlines()]
    keys = set().union(*rows)
    assert {"loss/0_joint.receiver", "loss/0_joint.transmitter", "loss/1_decoder"} <= keys
    _fit(cfg, tmp_path / "part", stop_at=11)
    _fit(None, tmp_path / "part", resume=True)
    a, b = _weights(tmp_path / "full/checkpoints/last.pt"), _weights(tmp_path / "part/checkpoints/last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


# -- the bit system -------------------------------------------------------------------------------
def test_gray_qam_is_gray_labelled_with_unit_energy():
    for m in (2, 4, 6):
        p, lab = gray_qam(m), bit_labels(m)
        assert float(p.pow(2).sum(1).mean()) == pytest.approx(1.0, rel=1e-5)
        d = torch.cdist(p, p) + 10 * torch.eye(2 ** m)
        nearest = d <= d.min(1, keepdim=True).values + 1e-6
        assert all(int((lab[i] != lab[j]).sum()) == 1 for i, j in nearest.nonzero().tolist())


@needs_sionna
@pytest.mark.parametrize("training", ["gradient", "model_free"])
def test_bit_system_trains_and_is_scored_inside_ldpc_against_qam(tmp_path, training):
    cfg = _cfg("ae_bits_ldpc", "train.steps=30", f"link.training='{training}'", "link.code_k=64",
               "link.code_n=128", "channel.eval_db=[3.0, 9.0]", "eval.min_errors=20", "eval.max_blocks=400",
               "eval.code_batch=200")
    r = _fit(cfg, tmp_path / "run")
    curves = r.summary["curves"]
    learned = [c for c in curves if c.startswith("autoencoder after")]
    assert learned and all("5G LDPC (128,64)" in c for c in learned)
    assert {"16-QAM, 5G LDPC (128,64)", "16-QAM, 5G Polar SCL-8 (128,64)"} <= set(curves)
    for c in curves.values():
        assert c["9"] <= c["3"]  # more Eb/N0, fewer errors
    assert curves["16-QAM, 5G LDPC (128,64)"]["9"] < 0.05
    assert (tmp_path / "run/constellation.png").stat().st_size > 1000
    import numpy as np
    pts = np.load(tmp_path / "run/codebook.npy")
    assert pts.shape == (16, 2) and abs((pts ** 2).sum(1).mean() - 2.0) < 1e-4
    head, *rows = (tmp_path / "run/bler.csv").read_text().splitlines()
    assert head == "curve,ebn0_db,bler,bler_low,bler_high,ber,ber_low,ber_high,blocks,errors"
    for line in rows:
        _, _, bler, lo, hi, ber, blo, bhi, blocks, errors = line.rsplit(",", 9)
        assert float(lo) <= float(bler) <= float(hi) and float(blo) <= float(ber) <= float(bhi)


def test_importing_sionna_leaves_the_runs_random_state_alone():
    """Sionna seeds torch's global generator when imported; a run imports it after seeding, so two
    runs with a Sionna channel differed. Checked in a fresh interpreter, where the import happens."""
    pytest.importorskip("sionna")
    code = ("import random, numpy, torch\n"
            "from multinet.state.streams import seed_everything\n"
            "from multinet.autoencoder.channels import require_sionna\n"
            "seed_everything(3); before = (torch.get_rng_state(), random.getstate(), numpy.random.get_state()[1].copy())\n"
            "require_sionna('test')\n"
            "after = (torch.get_rng_state(), random.getstate(), numpy.random.get_state()[1])\n"
            "print(torch.equal(before[0], after[0]), before[1] == after[1], bool((before[2] == after[2]).all()))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.stdout.split() == ["True", "True", "True"], r.stdout + r.stderr


def test_two_runs_over_a_sionna_channel_train_the_same_weights(tmp_path):
    pytest.importorskip("sionna")
    args = ["ae_2_2", "channel.model='sionna.RayleighBlockFading'", "--steps", "6", "eval.max_blocks=500",
            "eval.batch=500", "channel.eval_db=[4.0]", "--no-progress", "train.tensorboard=false"]
    # One in a fresh interpreter, which imports Sionna after seeding; one in this process, where
    # Sionna may have been imported long before: the same weights either way.
    for name, how in (("a", spawn), ("b", run)):
        r = how("multinet.autoencoder", [*args, "--out", str(tmp_path / name)])
        assert r.returncode == 0, r.stderr
    a, b = (load_checkpoint(tmp_path / n / "checkpoints" / "last.pt") for n in ("a", "b"))
    for net in a["networks"]:
        for k, v in a["networks"][net]["module"].items():
            assert torch.equal(v, b["networks"][net]["module"][k]), (net, k)
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
