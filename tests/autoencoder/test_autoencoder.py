import math

import pytest
import torch

from multinet.autoencoder import (AeRecipe, AeSystem, Channel, ChannelConfig, hamming74_codebook,
                                  hamming74_hard_bler, ml_decoder, monte_carlo, uncoded_bpsk_bler)
from multinet.autoencoder.bler import result_row, wilson_interval
from multinet.autoencoder.evaluation import plot
from multinet.autoencoder.recipe import PhaseConfig, phase_bounds
from multinet.run import engine_for
from multinet.config import ConfigError, from_dict, load_recipe

# TARGETS.md §1, Eb/N0 0/2/4/6/7/8 dB
UNCODED_K4 = [2.794e-1, 1.418e-1, 4.907e-2, 9.519e-3, 3.087e-3, 7.634e-4]
HAMMING_HARD = [2.626e-1, 1.235e-1, 3.672e-2, 5.386e-3, 1.424e-3, 2.723e-4]
DB = [0, 2, 4, 6, 7, 8]


def test_exact_baselines_match_targets():
    for db, u, h in zip(DB, UNCODED_K4, HAMMING_HARD):
        assert uncoded_bpsk_bler(db, 4) == pytest.approx(u, rel=2e-3)
        assert hamming74_hard_bler(db) == pytest.approx(h, rel=2e-3)
    assert uncoded_bpsk_bler(0, 2) == pytest.approx(1.511e-1, rel=2e-3)
    assert uncoded_bpsk_bler(8, 8) == pytest.approx(1.526e-3, rel=2e-3)


@pytest.mark.parametrize("blocks", [1, 6, 11, 21, 60, 100, 1000, 60_000])
def test_wilson_interval_contains_the_estimate(blocks):
    """Rounding put the upper bound at 1 − 2⁻⁵³ when every block was wrong (and the lower bound
    a hair above 0 with none wrong); the interval must hold the estimate, inside [0, 1]."""
    for errors in range(blocks + 1) if blocks <= 1000 else (0, 1, blocks - 1, blocks):
        lo, hi = wilson_interval(errors, blocks)
        assert 0.0 <= lo <= errors / blocks <= hi <= 1.0, (errors, blocks, lo, hi)
    assert wilson_interval(0, blocks)[0] == 0.0 and wilson_interval(blocks, blocks)[1] == 1.0


def test_bler_plot_with_every_block_wrong(tmp_path):
    """All 100 blocks wrong, and a row read from an older ``bler.csv`` whose upper bound sits a
    rounding error below its BLER: the error bars stay non-negative and the plot is written."""
    rows = [result_row("autoencoder after joint", 0.0, 100, 100, 400, 4),
            {**result_row("autoencoder after joint", 1.0, 60, 60, 240, 4), "bler_high": 0.9999999999999999}]
    plot(tmp_path, rows, "every block wrong")
    assert (tmp_path / "bler.png").stat().st_size > 0


def test_hamming_codebook_is_a_code():
    cb = hamming74_codebook()
    assert cb.shape == (16, 7) and torch.all(cb.pow(2).sum(1) == 7)
    d = (cb[:, None] != cb[None]).sum(-1) + 7 * torch.eye(16, dtype=torch.long)
    assert int(d.min()) == 3  # minimum distance of Hamming(7,4)


def test_hamming_soft_ml_monte_carlo_matches_target():
    cb = hamming74_codebook()
    g = torch.Generator().manual_seed(0)
    r = monte_carlo(cb, ml_decoder(cb), 4, 0.0, min_errors=4000, max_blocks=10 ** 6, batch=50_000, generator=g)
    assert r.errors >= 4000
    assert r.bler == pytest.approx(1.794e-1, rel=0.05)


@pytest.mark.parametrize("which", ["network", "ml"])
def test_bler_fast_path_counts_the_same_errors(which):
    """The CPU fast path (bias folded into the matmul, row max + gather instead of argmax) must
    count exactly what the plain decode-then-argmax path counts on the same noise."""
    from multinet.autoencoder.networks import MessageDecoder
    torch.manual_seed(3)
    cb = hamming74_codebook()
    dec = MessageDecoder(16, 7, 32).eval() if which == "network" else ml_decoder(cb)
    y = torch.randn(100, 8)
    y[:, -1] = 1.0
    with torch.no_grad():
        assert torch.allclose(dec.augmented(128)(y), dec(y[:, :7]), atol=1e-5)
    rates = []
    for fn in (dec, lambda v: dec(v)):  # the lambda hides ``augmented``: the plain path
        g = torch.Generator().manual_seed(1)
        r = monte_carlo(cb, fn, 4, 2.0, min_errors=10 ** 9, max_blocks=60_000, batch=30_000, generator=g)
        rates.append((r.errors, r.ber))
    assert rates[0] == rates[1] and rates[0][0] > 100


def test_channel_energy_and_noise_convention():
    cfg = ChannelConfig(db=4.0)
    ch = Channel(cfg, n=7, k=4, gen=torch.Generator().manual_seed(0))
    x = ch.normalize(torch.randn(1000, 7) * 5)
    torch.testing.assert_close(x.pow(2).sum(1), torch.full((1000,), 7.0))
    sigma2 = 1 / (2 * (4 / 7) * 10 ** 0.4)
    assert ch.sigma(4.0) ** 2 == pytest.approx(sigma2)
    y = ch(torch.zeros(200_000, 7))
    assert float(y.var()) == pytest.approx(sigma2, rel=0.01)
    batch = Channel(ChannelConfig(normalization="batch"), 7, 4, torch.Generator()).normalize(torch.randn(64, 7))
    assert float(batch.pow(2).sum(1).mean()) == pytest.approx(7.0, rel=1e-5)


def test_phase_lengths_scale_to_total():
    phases = [PhaseConfig("joint", 3000), PhaseConfig("decoder", 1000)]
    assert phase_bounds(phases, 4000) == [(0, 3000), (3000, 4000)]
    assert phase_bounds(phases, 40) == [(0, 30), (30, 40)]
    assert phase_bounds(phases, 2) == [(0, 1), (1, 2)]  # rounding never leaves a later phase empty
    with pytest.raises(ConfigError, match="train.steps: must be at least the number of phases"):
        from_dict(AeRecipe, {"train": {"steps": 1}, "phases": [{"name": "joint"}, {"name": "decoder"}]})
    with pytest.raises(ConfigError, match="finetune_channel"):
        from_dict(AeRecipe, {"phases": [{"name": "decoder", "channel": "finetune"}]})


def _engine(tmp_path, recipe="ae_7_4", extra=()):
    cfg = load_recipe(AeRecipe, recipe, ["device='cpu'", "train.steps=20", "eval.max_blocks=20000",
                                         "eval.batch=10000", *extra])
    torch.manual_seed(0)
    return engine_for(AeSystem(cfg, torch.device("cpu")))


def test_decoder_phase_leaves_encoder_untouched(tmp_path):
    e = _engine(tmp_path)
    enc0 = [p.clone() for p in e.nets["encoder"].module.parameters()]
    e.run(stop_at=15)  # the joint phase: both networks move
    enc1 = [p.clone() for p in e.nets["encoder"].module.parameters()]
    assert all(not torch.equal(a, b) for a, b in zip(enc0, enc1))
    dec1 = [p.clone() for p in e.nets["decoder"].module.parameters()]
    e.run()  # the decoder-only phase
    assert all(torch.equal(a, b) for a, b in zip(enc1, e.nets["encoder"].module.parameters()))
    assert all(p.grad is None for p in e.nets["encoder"].module.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(dec1, e.nets["decoder"].module.parameters()))
    assert e.phase_steps == {"0_joint": 15, "1_decoder": 5}


def test_evaluation_after_each_phase_under_each_channel(tmp_path):
    e = _engine(tmp_path, "ae_7_4_rx_finetune")
    rows = e.stateful["system"].rows("x")
    curves = {r["curve"] for r in rows}
    assert curves == {"autoencoder after x", "autoencoder after x [finetune channel]"}
    assert all(0 <= r["bler"] <= 1 and r["blocks"] > 0 for r in rows)


def test_learned_ml_bound_is_a_ceiling(tmp_path):
    """ML decoding of the learned code is never worse than the network receiver (same noise)."""
    e = _engine(tmp_path)
    e.run()
    cb = e.stateful["system"].codebook()
    dec = e.nets["decoder"].module
    a = monte_carlo(cb, dec, 4, 2.0, 10 ** 9, 50_000, 50_000, torch.Generator().manual_seed(1))
    b = monte_carlo(cb, ml_decoder(cb), 4, 2.0, 10 ** 9, 50_000, 50_000, torch.Generator().manual_seed(1))
    assert b.errors <= a.errors


def test_image_recipe_reports_psnr(tmp_path):
    e = _engine(tmp_path, "ae_images_awgn")
    e.run()
    rows = e.stateful["system"].rows("joint")
    assert {r["snr_db"] for r in rows} == {0.0, 5.0, 10.0, 15.0, 20.0}
    assert all(math.isfinite(r["psnr"]) for r in rows)


def test_scheduled_channel_level():
    ch = Channel(ChannelConfig(db=0.0, db_end=10.0), 7, 4, torch.Generator().manual_seed(0))
    ch.progress = 1.0
    assert ch.level() == (10.0, None)
    y = ch(torch.zeros(100_000, 7))
    assert float(y.var()) == pytest.approx(ch.sigma(10.0) ** 2, rel=0.02)
    ch = Channel(ChannelConfig(db=0.0, db_max=4.0, db_end=6.0), 7, 4, torch.Generator().manual_seed(0))
    ch.progress = 0.5
    assert ch.level() == (3.0, 7.0)


def test_each_kind_is_its_own_class_and_the_recipe_picks_it():
    """AeSystem(cfg) builds the class link.kind names; a kind class refuses another kind's recipe."""
    from multinet.autoencoder import BitAutoencoder, ImageAutoencoder, MessageAutoencoder
    cpu = torch.device("cpu")
    for recipe, cls in (("ae_7_4", MessageAutoencoder), ("ae_images_awgn", ImageAutoencoder)):
        cfg = load_recipe(AeRecipe, recipe, ["device='cpu'", "train.steps=2", "train.tensorboard=false"])
        assert type(AeSystem(cfg, cpu)) is cls and type(cls(cfg, cpu)) is cls
    cfg = load_recipe(AeRecipe, "ae_7_4", ["device='cpu'"])
    with pytest.raises(ValueError, match="link.kind = 'messages', but BitAutoencoder is the 'bits' system"):
        BitAutoencoder(cfg, cpu)
