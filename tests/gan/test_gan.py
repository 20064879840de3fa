import math
from pathlib import Path

import pytest
import torch

from multinet.config import ConfigError, load_recipe
from multinet.data import mixture_means
from multinet.gan import GanRecipe, GanSystem, d_loss, g_loss, gradient_penalty, mixture_coverage, r1_penalty
from multinet.run import engine_for
from multinet.gan.networks import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator

MNIST_RAW = Path(__file__).resolve().parents[3] / "shared" / "data" / "MNIST" / "raw"


def test_mixture_means_match_targets():
    ring, s = mixture_means("ring8")
    assert s == 0.01 and ring.shape == (8, 2)
    torch.testing.assert_close(ring[1], torch.tensor([math.cos(math.pi / 4), math.sin(math.pi / 4)]))
    assert not torch.allclose(ring[0], ring[-1])  # endpoint excluded
    grid, s = mixture_means("grid25")
    assert s == 0.05 and grid.shape == (25, 2) and set(grid[:, 0].tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}


def test_mixture_coverage_definitions():
    means, sigma = mixture_means("ring8")
    exact = means.repeat(10, 1)
    assert mixture_coverage(exact, means, sigma) == {"modes": 8, "high_quality": 100.0, "reverse_kl": 0.0}
    half = torch.cat([means[:4].repeat(5, 1), torch.zeros(20, 2)])  # 4 modes; origin is far from all
    r = mixture_coverage(half, means, sigma)
    assert r["modes"] == 4 and r["high_quality"] == 50.0 and r["reverse_kl"] == pytest.approx(math.log(2))
    near = means[:1] + torch.tensor([[2.9 * sigma, 0.0], [3.1 * sigma, 0.0]])
    assert mixture_coverage(near, means, sigma)["high_quality"] == 50.0


def test_losses_on_logits():
    real, fake = torch.tensor([2.0, 3.0]), torch.tensor([-1.0, 0.5])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    assert d_loss("bce", real, fake) == pytest.approx(float(bce(real, torch.ones(2)) + bce(fake, torch.zeros(2))))
    assert g_loss("bce", fake) == pytest.approx(float(bce(fake, torch.ones(2))))
    assert d_loss("hinge", real, fake) == pytest.approx(float(torch.relu(1 - real).mean() + torch.relu(1 + fake).mean()))
    with pytest.raises(ValueError, match="gan.loss 'wgan' unknown"):
        d_loss("wgan", real, fake)


def test_penalties():
    d = lambda x: (3.0 * x).sum(1)  # gradient norm 3*sqrt(2) everywhere
    x = torch.randn(8, 2)
    assert float(gradient_penalty(d, x, x + 1)) == pytest.approx((3 * math.sqrt(2) - 1) ** 2, rel=1e-5)
    r1, out = r1_penalty(d, x)
    assert float(r1) == pytest.approx(18.0) and out.shape == (8,)


def test_packed_and_conv_networks_shapes():
    d = MLPDiscriminator((2,), 16, 2, pack=4)
    assert d(torch.randn(32, 2)).shape == (8,)
    for size in (28, 32):
        g = DCGANGenerator(16, (1, size, size), width=8)
        x = g(torch.randn(4, 16))
        assert x.shape == (4, 1, size, size)
        assert DCGANDiscriminator((1, size, size), width=8, pack=2, spectral_norm=True)(x).shape == (2,)


def test_pacgan_2d_networks_maxout_and_generator_batch_norm():
    from multinet.gan.networks import Maxout, build_pair
    x = torch.tensor([[1.0, 5.0, 2.0, 0.0, -1.0, -3.0]])
    assert Maxout(3)(x).tolist() == [[5.0, 0.0]]
    from multinet.gan.recipe import ModelConfig
    g, d = build_pair(ModelConfig(arch="mlp", latent_dim=2, hidden=40, layers=4, width=1, pack=2, d_hidden=20,
                                  d_layers=3, g_batch_norm=True, d_maxout=5), (2,))
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in g.modules()) == 4
    assert d.net.fc1.out_features == 100 and d.net.fc2.in_features == 20 and d.net.out.in_features == 20
    assert d(g(torch.randn(8, 2))).shape == (4,)


def test_fourier_features_discriminator():
    from multinet.gan.networks import FourierFeatures
    torch.manual_seed(0)
    f = FourierFeatures(2, 4000, (1.0, 10.0))
    assert f.B.shape == (2, 4000)
    assert abs(f.B[:, 0::2].std().item() - 1.0) < 0.05 and abs(f.B[:, 1::2].std().item() - 10.0) < 0.5
    x = torch.randn(5, 2)
    y = f(x)
    assert y.shape == (5, 2 + 8000) and torch.equal(y[:, :2], x)
    torch.testing.assert_close(y[:, 2:4002], torch.sin((2 * math.pi) * (x @ f.B)))
    torch.testing.assert_close(y[:, 4002:], torch.cos((2 * math.pi) * (x @ f.B)))
    d = MLPDiscriminator((2,), 16, 2, pack=2, fourier=8, fourier_scales=(1.0,))
    assert d.net.fc1.in_features == 2 * (2 + 16) and d(torch.randn(6, 2)).shape == (3,)
    # each sample of a pack gets its own features: the pack's input is the two maps side by side
    a, b = torch.randn(1, 2), torch.randn(1, 2)
    feats = d.fourier(torch.cat([a, b]))
    h = d.net.fc1(torch.cat([feats[0], feats[1]]).unsqueeze(0))
    torch.testing.assert_close(d.net.fc1(d.fourier(torch.cat([a, b])).reshape(1, -1)), h)
    assert "fourier.B" in d.state_dict()  # the frequencies travel with checkpoints
    with pytest.raises(ConfigError, match="model.d_fourier: applies to arch = 'mlp' only"):
        load_recipe(GanRecipe, "gan_grid25", ["model.arch='dcgan'", "model.d_fourier=4"])
    with pytest.raises(ConfigError, match="model.d_fourier_scales: must be one or more positive numbers"):
        load_recipe(GanRecipe, "gan_grid25", ["model.d_fourier=4", "model.d_fourier_scales=[1.0, -2.0]"])


def _build(cfg):
    torch.manual_seed(0)
    s = GanSystem(cfg, torch.device("cpu"))
    return s, engine_for(s)


def _engine(overrides, tmp_path):
    cfg = load_recipe(GanRecipe, "gan_digits", ["device='cpu'", "train.steps=5", *overrides])
    return _build(cfg)[1]


def test_concatenated_d_forward_matches_two_forwards(tmp_path):
    """d_concat changes the kernels, not the update: same losses, same weights up to rounding
    (without DiffAugment, whose draws are made per D call)."""
    engines = [_engine([f"gan.d_concat={v!r}", "model.pack=2", "gan.diffaugment=''"], tmp_path) for v in ("on", "off")]
    for e in engines:
        e.run()
    a, b = (dict(e.nets["discriminator"].module.named_parameters()) for e in engines)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_reuse_fake_uses_the_d_step_batch_and_trains_g(tmp_path):
    e = _engine(["gan.reuse_fake=true", "gan.d_steps=2"], tmp_path)
    s = e.stateful["system"]
    before = [p.clone() for p in e.nets["generator"].module.parameters()]
    e.run()
    assert e.phase_steps == {"discriminator": 10, "generator": 5}
    assert all(not torch.equal(a, b) for a, b in zip(before, e.nets["generator"].module.parameters()))
    assert s._fake is None


def test_topk_schedule_and_generator_loss_on_the_best_scored_fakes(tmp_path):
    e = _engine(["gan.topk=0.5", "gan.topk_decay=0.5", "gan.topk_every=2", "gan.diffaugment=''"], tmp_path)
    s = e.stateful["system"]
    assert [s.topk(i, 64) for i in (0, 1, 2, 3, 4, 100)] == [64, 64, 32, 32, 32, 32]
    e.iteration = 4
    state = s.noise.get_state()
    loss = s.g_step(e)["loss"]
    s.noise.set_state(state)
    logits = e.nets["discriminator"].module(e.nets["generator"].module(s.z(64))).flatten()
    best = torch.nn.functional.softplus(-logits.topk(32).values).mean()
    everything = torch.nn.functional.softplus(-logits).mean()
    torch.testing.assert_close(loss, best)
    assert float(loss.detach()) < float(everything.detach())
    with pytest.raises(ConfigError, match=r"gan.topk: must be in \(0, 1\]"):
        load_recipe(GanRecipe, "gan_digits", ["gan.topk=0"])


def test_rejection_sampling_keeps_what_d_scores_real(tmp_path):
    """DRS with a fixed D that scores x > 0 as real: kept samples are (nearly) all positive, whole
    packs are kept, the draw is seeded, and the acceptance share is reported."""
    cfg = load_recipe(GanRecipe, "gan_ring8", ["device='cpu'", "train.steps=1", "model.pack=2",
                                               "eval.rejection='drs'", "eval.samples=200"])
    s, e = _build(cfg)

    class Half(torch.nn.Module):  # logit +8 for a pack whose first coordinates are both > 0
        def forward(self, x):
            return torch.where((x.view(-1, 2, 2)[:, :, 0] > 0).all(1), 8.0, -8.0)

    class Line(torch.nn.Module):  # G: z → (z0, z0), so a pack's members are known from z
        def forward(self, z):
            return torch.stack([z[:, 0], z[:, 0]], 1)

    e.nets["discriminator"].module, e.nets["generator"].module = Half(), Line()
    s.nets["generator"].ema = None
    x, accepted = s.sample_rejection(200)
    assert x.shape == (200, 2) and (x[:, 0] > 0).float().mean() > 0.99
    assert 0.2 < accepted < 0.3  # both members positive: a quarter of the packs
    torch.testing.assert_close(s.sample_rejection(200)[0], x)
    r = s.evaluate()
    assert {"drs_modes", "drs_high_quality", "drs_reverse_kl", "drs_acceptance"} <= set(r)
    with pytest.raises(RuntimeError, match="rejection sampling kept"):
        s.sample_rejection(200, shift=40.0, max_candidates=20000)


def test_rejection_quantile_keeps_candidates_above_it(tmp_path):
    """eval.drs_quantile < 1: D* is that quantile of the first logits and candidates above it are
    always kept, so acceptance rises from the exact method's; 0 and > 1 are refused."""
    cfg = load_recipe(GanRecipe, "gan_ring8", ["device='cpu'", "train.steps=1", "model.pack=1", "eval.samples=200"])
    s, e = _build(cfg)

    class Slope(torch.nn.Module):  # logit 2·x0: the exact method's acceptance is about e^(2 − D*)
        def forward(self, x):
            return 2 * x[:, 0]

    class Line(torch.nn.Module):
        def forward(self, z):
            return torch.stack([z[:, 0], z[:, 0]], 1)

    e.nets["discriminator"].module, e.nets["generator"].module = Slope(), Line()
    s.nets["generator"].ema = None
    _, exact = s.sample_rejection(200)
    cfg.eval.drs_quantile = 0.5
    x, relaxed = s.sample_rejection(200)
    assert exact < 0.02 and 0.5 < relaxed < 0.75 and (x[:, 0] > 0).float().mean() > 0.65  # 0.75 expected
    for bad in ("0", "1.5"):
        with pytest.raises(ConfigError, match=r"eval.drs_quantile: must be in \(0, 1\]"):
            load_recipe(GanRecipe, "gan_ring8", [f"eval.drs_quantile={bad}"])


def test_rejection_sampling_through_a_refitted_critic(tmp_path):
    """eval.drs_refit: a fresh critic fitted to the final G finds what G gets wrong (here half its
    samples far off the grid), DRS through it keeps the rest, and training streams are untouched."""
    cfg = load_recipe(GanRecipe, "gan_grid25", ["device='cpu'", "train.steps=1", "model.latent_dim=4",
                                                "eval.samples=500", "eval.drs_refit=200", "eval.drs_refit_batch=512",
                                                "eval.drs_refit_fourier=16", "networks.generator.ema=0"])
    s, e = _build(cfg)
    means, sigma = mixture_means("grid25")

    class HalfOff(torch.nn.Module):  # z0 > 0: a point of the mixture; z0 <= 0: a point near (10, 10)
        def forward(self, z):
            on = means[(z[:, 1].abs() * 1000).long() % 25] + sigma * z[:, 2:4]
            return torch.where(z[:, :1] > 0, on, 10 + z[:, 2:4])

    e.nets["generator"].module = HalfOff()
    s.nets["generator"].ema = None
    rng, stream = torch.get_rng_state(), s.data.sampler.gen.get_state()
    x, accepted = s.sample_rejection(500)
    assert torch.equal(torch.get_rng_state(), rng) and torch.equal(s.data.sampler.gen.get_state(), stream)
    plain = mixture_coverage(s.sample(500), means, sigma)
    kept = mixture_coverage(x, means, sigma)
    assert 40 < plain["high_quality"] < 60 and kept["high_quality"] > 95 and kept["modes"] == 25
    assert 0.3 < accepted < 0.6
    assert s.refit_critic() is s.refit_critic()  # fitted once per generator state
    torch.testing.assert_close(s.sample_rejection(500)[0], x)


@pytest.mark.parametrize("loss,extra", [("hinge", []), ("wgan-gp", []), ("lsgan", []), ("bce", ["gan.r1=1.0"])])
def test_every_loss_trains(tmp_path, loss, extra):
    e = _engine([f"gan.loss={loss!r}", *extra], tmp_path)
    e.run()
    e.check_finite()
    assert "loss/discriminator" in e.scalars()


@pytest.mark.parametrize("recipe", ["gan_ring8", "gan_grid25"])
def test_mixture_recipes_run_a_few_steps(tmp_path, recipe):
    cfg = load_recipe(GanRecipe, recipe, ["device='cpu'", "train.steps=3", "eval.samples=100", "model.d_fourier=8",
                                          "eval.drs_refit_batch=64"])
    if cfg.eval.drs_refit:  # the grid's critic refit, shortened
        cfg.eval.drs_refit = 5
    s, e = _build(cfg)
    e.run()
    r = s.evaluate()
    assert set(r) == {"modes", "high_quality", "reverse_kl", "drs_modes", "drs_high_quality", "drs_reverse_kl",
                      "drs_acceptance"}  # both recipes score rejection sampling beside the plain generator


@pytest.mark.skipif(not MNIST_RAW.is_dir(), reason="../shared/data/MNIST/raw not present")
@pytest.mark.parametrize("recipe", ["gan_mnist_mlp", "dcgan_mnist", "dcgan_mnist_cond"])
def test_mnist_recipes_run_on_the_idx_test_files(tmp_path, recipe):
    cfg = load_recipe(GanRecipe, recipe, ["device='cpu'", "train.steps=2", "data.name=idx", f"data.root={MNIST_RAW}",
                                          "data.limit=512"])
    s, e = _build(cfg)
    e.run()
    assert s.data.shape == (1, 28, 28)


def test_transfer_recipe_partial_load_freezed_and_layer_lrs(tmp_path):
    src = _engine(["train.steps=2", "model.d_hidden=512", "model.d_layers=2"], tmp_path)  # as the recipe says
    src.run()
    from multinet.state.checkpoint import save_checkpoint
    ck = save_checkpoint(src.state_dict(), tmp_path / "pre.pt")
    cfg = load_recipe(GanRecipe, "gan_transfer", [
        "device='cpu'", "train.steps=3", "data.name=digits", "data.image_size=0",
        f"networks.generator.pretrained.path={str(ck)!r}", f"networks.discriminator.pretrained.path={str(ck)!r}"])
    s, e = _build(cfg)
    D = e.nets["discriminator"]
    assert D.load_report.coverage == 1.0 and e.nets["generator"].load_report.coverage == 1.0
    frozen_before = D.module.net.fc1.weight.clone()
    e.run()
    assert torch.equal(frozen_before, D.module.net.fc1.weight)
    lrs = {g["name"]: g["lr"] for g in D.optimizer.param_groups}
    assert lrs["middle"] == pytest.approx(0.5e-4) and lrs["head"] == pytest.approx(2e-4)
    assert all("net.fc1" not in n for g in D.optimizer.param_groups for n in g["names"])
    assert "net.fc1.weight" in D.report()


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_steps(tmp_path, amp):
    """Both phases run their matmuls in the low precision on the CPU too; weights stay float32."""
    e = _engine([f"train.amp={amp!r}", "train.steps=3"], tmp_path)
    seen: dict[str, set] = {"generator": set(), "discriminator": set()}
    for name, net in e.nets.items():
        first = next(m for m in net.module.modules() if isinstance(m, torch.nn.Linear))
        first.register_forward_hook(lambda m, i, out, name=name: seen[name].add(out.dtype))
    e.run()
    e.check_finite()
    low = torch.bfloat16 if amp == "bf16" else torch.float16
    assert seen == {"generator": {low}, "discriminator": {low}}
    assert all(p.dtype == torch.float32 for net in e.nets.values() for p in net.module.parameters())
    assert e.scalers["discriminator"].is_enabled() == (amp == "fp16")


def test_imagefolder_streams_through_a_dataloader(tmp_path):
    from PIL import Image
    import numpy as np
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(np.random.randint(0, 255, (40, 36, 3), dtype=np.uint8)).save(tmp_path / "imgs" / cls / f"{i}.png")
    cfg = load_recipe(GanRecipe, "dcgan_mnist", ["device='cpu'", "train.steps=5", "data.name=imagefolder",
                                                  f"data.root={str(tmp_path / 'imgs')!r}", "data.image_size=32",
                                                  "data.batch_size=4", "data.workers=0", "model.width=8"])
    s, e = _build(cfg)
    e.run()
    assert s.data.shape == (3, 32, 32)
    assert s.data.sampler.state_dict() == {"epoch": 1, "pos": 1, "rows": 4}  # 16 images / 4 = 4 batches an epoch


def test_an_image_folder_lists_what_torchvisions_does_less_hidden_entries(tmp_path):
    import torchvision
    from PIL import Image
    from multinet.data.files import image_folder
    for rel in ("b/1.png", "a/2.jpg", "a/deep/er/0.png", "a/1.PNG", "c/x.bmp"):
        (tmp_path / "imgs" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "imgs" / rel)
    (tmp_path / "imgs/a/notes.txt").write_text("not an image")
    ours = image_folder(str(tmp_path / "imgs"), lambda x: x)
    theirs = torchvision.datasets.ImageFolder(str(tmp_path / "imgs"))
    assert ours.samples == theirs.samples and ours.classes == theirs.classes == ["a", "b", "c"]
    # a notebook's checkpoint folder and hidden files are neither classes nor images
    (tmp_path / "imgs/.ipynb_checkpoints").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "imgs/a/.hidden.png")
    (tmp_path / "imgs/b/.cache").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "imgs/b/.cache/t.png")
    again = image_folder(str(tmp_path / "imgs"), lambda x: x)
    assert again.samples == ours.samples and again.classes == ["a", "b", "c"]
    assert again[2][1] == 0 and again[3][1] == 1  # (image, label)
    # an earlier version cached reference features in the folder itself: named, not just "no images"
    (tmp_path / "imgs/fidelity").mkdir()
    (tmp_path / "imgs/fidelity/imagefolder-0-inception-50000.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"in class folder\(s\) fidelity \(fidelity/ there is an earlier "
                                                r"version's feature cache: remove it\)"):
        image_folder(str(tmp_path / "imgs"), lambda x: x)


def test_classifier_cache_is_reused_and_an_unwritable_cache_only_warns(tmp_path):
    from multinet.gan.metrics import train_classifier
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 1, 8, 8, generator=g) * 2 - 1, torch.arange(64) % 4
    first = train_classifier(x, y, 4, tmp_path / "cache", "t", epochs=1)
    assert len(list((tmp_path / "cache").glob("t-*.pt"))) == 1
    again = train_classifier(x, y, 4, tmp_path / "cache", "t", epochs=1)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    (tmp_path / "file").write_text("")  # a cache folder that cannot be created (read-only dataset roots)
    with pytest.warns(UserWarning, match="classifier not cached"):
        model = train_classifier(x, y, 4, tmp_path / "file" / "classifiers", "t", epochs=1)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), model.state_dict().values()))
