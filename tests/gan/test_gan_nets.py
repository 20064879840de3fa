"""The SNGAN / BigGAN ResNet pair, the class-conditional variants (ResNet, DCGAN, MLP), and DiffAugment."""
import json

import pytest
import torch

from multinet import Runner, load_checkpoint
from multinet.config import ConfigError, from_dict, load_recipe
from multinet.gan import GanRecipe, GanSystem
from multinet.gan.diffaugment import augment
from multinet.gan.resnet import ResNetDiscriminator, ResNetGenerator

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 64, 64), (1, 28, 28), (1, 8, 8)])
def test_resnet_pair_shapes_spectral_norm_and_labels(shape):
    G, D = ResNetGenerator(16, shape, 16, classes=5), ResNetDiscriminator(shape, 16, classes=5)
    z, y = torch.randn(6, 16), torch.arange(6) % 5
    x = G(z, y)
    assert x.shape == (6, *shape) and float(x.detach().abs().max()) <= 1
    assert D(x, y).shape == (6,)
    layers = [m for m in D.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.Embedding))]
    assert layers and all(hasattr(m, "parametrizations") for m in layers)  # spectral norm on every layer
    G.eval()
    with torch.no_grad():
        for m in G.modules():  # per-class gains start at 1 and biases at 0: move them off the start
            if isinstance(m, torch.nn.Embedding):
                m.weight.normal_()
        assert not torch.allclose(G(z, y), G(z, (y + 1) % 5))  # conditional BN: the label matters
        assert not torch.allclose(D(x, y), D(x, (y + 1) % 5))  # projection: the label matters
    with pytest.raises(ValueError, match="needs labels"):
        G(z)
    plain = ResNetGenerator(16, shape, 16)
    assert plain(z).shape == (6, *shape)


def test_resnet_channels_follow_sngans_cifar_networks_and_studiogans_64_table():
    """32×32 at width 64 is SNGAN's CIFAR-10 pair (Miyato et al. 2018, table 4; Mimicry's SNGAN32,
    StudioGAN's resnet): G 4×4×256 then three up-blocks of 256; D four blocks of 128, the first two
    pooling, so it ends at 8×8. 64×64: G 1024 → 512 → 256 → 128 → 64, D 64 → ... → 1024, pooling
    in all but the last block."""
    def g_chans(G):
        return [G.ch] + [b.conv2.out_channels for b in G.blocks]

    def d_shapes(D, size):
        h, out = torch.zeros(1, 3, size, size), []
        for block in D.blocks:
            h = block(h)
            out.append(tuple(h.shape[1:]))
        return out

    G, D = ResNetGenerator(128, (3, 32, 32), 64), ResNetDiscriminator((3, 32, 32), 64)
    assert g_chans(G) == [256] * 4 and G.start == 4
    assert d_shapes(D, 32) == [(128, 16, 16), (128, 8, 8), (128, 8, 8), (128, 8, 8)]
    # pinned: any change to the layout shows here (4.28 M and 1.05 M weights)
    assert sum(p.numel() for p in G.parameters()) == 4_276_739
    assert sum(p.numel() for p in D.parameters()) == 1_053_825
    G, D = ResNetGenerator(128, (3, 64, 64), 64), ResNetDiscriminator((3, 64, 64), 64)
    assert g_chans(G) == [1024, 512, 256, 128, 64]
    assert d_shapes(D, 64) == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (1024, 4, 4)]


@pytest.mark.parametrize("spectral", [False, True])
def test_conditional_dcgan_pair_uses_labels_and_keeps_the_plain_pair(spectral):
    from multinet.gan.networks import DCGANDiscriminator, DCGANGenerator
    from multinet.nets.weights import init_preset, init_weights
    shape = (1, 28, 28)
    G, D = DCGANGenerator(16, shape, 8, classes=10), DCGANDiscriminator(shape, 8, spectral_norm=spectral, classes=10)
    stored = D.embed.parametrizations.weight.original if spectral else D.embed.weight
    assert 0.01 < float(stored.std()) < 0.03  # the projection starts small, also under spectral norm
    for net in (G, D):  # the dcgan preset covers the class embeddings under init_strict
        init_weights(net, init_preset("dcgan"), strict=True)
    z, y = torch.randn(6, 16), torch.arange(6)
    G.eval(), D.eval()
    with torch.no_grad():
        x = G(z, y)
        assert x.shape == (6, *shape)
        assert not torch.allclose(x, G(z, (y + 1) % 10))  # embedding in z and conditional BN
        assert not torch.allclose(D(x, y), D(x, (y + 1) % 10))  # projection
    with pytest.raises(ValueError, match="needs labels"):
        G(z)
    plain = DCGANGenerator(16, shape, 8)  # unconditional: the same parameter names as before
    assert [k for k in plain.state_dict() if "embed" in k] == [] and plain(z).shape == (6, *shape)


@pytest.mark.parametrize("spectral", [False, True])
def test_conditional_mlp_pair_uses_labels_and_keeps_the_plain_pair(spectral):
    from multinet.gan.recipe import ModelConfig
    from multinet.gan.networks import build_pair
    shape = (1, 8, 8)
    model = ModelConfig(arch="mlp", latent_dim=16, hidden=32, layers=2, width=8, pack=1, spectral_norm=spectral)
    G, D = build_pair(model, shape, classes=10)
    z, y = torch.randn(6, 16), torch.arange(6)
    G.eval(), D.eval()
    with torch.no_grad():
        x = G(z, y)
        assert x.shape == (6, *shape)
        assert not torch.allclose(x, G(z, (y + 1) % 10))  # the label's embedding joins z
        assert not torch.allclose(D(x, y), D(x, (y + 1) % 10))  # projection
        # the projection adds <embed(y), features> to the unconditional head's logit
        plain_logit = D.net(x.flatten(1)).squeeze(1)
        assert not torch.allclose(D(x, y), plain_logit)
    with pytest.raises(ValueError, match="needs labels"):
        G(z)
    with pytest.raises(ValueError, match="needs labels"):
        D(x)
    plain_G, plain_D = build_pair(model, shape)  # unconditional: names as before
    assert [k for k in [*plain_G.state_dict(), *plain_D.state_dict()] if "embed" in k] == []
    assert plain_G(z).shape == (6, *shape) and plain_D(x).shape == (6,)


def test_conditional_mlp_digits_run_trains_on_labels_and_exports(tmp_path):
    from multinet.cli import main
    from multinet.state.export import load_exported
    items = ["device='cpu'", "train.steps=6", "train.log_every=2", "train.checkpoint_every=3", "train.sample_every=0",
             "train.tensorboard=false", "model.hidden=32", "model.d_hidden=32", "model.conditional=true", "eval.samples=100",
             "eval.classifier_epochs=1", "eval.standard_metrics=false"]
    assert Runner(GanSystem, load_recipe(GanRecipe, "gan_digits", items), tmp_path / "run", progress=False,
                  echo=False).fit().code == 0
    saved = load_checkpoint(tmp_path / "run/checkpoints/last.pt")["networks"]
    assert saved["generator"]["module"]["embed.weight"].shape == (10, 32)  # the digits' ten classes
    assert saved["discriminator"]["module"]["embed.weight"].shape == (10, 32)
    assert main(["export", str(tmp_path / "run/checkpoints/last.pt"), "--out", str(tmp_path / "x")]) == 0
    G = load_exported(tmp_path / "x/generator.json")
    assert not G.training and G.embed is not None
    with torch.no_grad():
        assert G(torch.randn(10, G.init_args["latent_dim"]), torch.arange(10)).shape == (10, 1, 8, 8)
    assert main(["sample", str(tmp_path / "x"), "--n", "20", "--out", str(tmp_path / "s.npy")]) == 0


def test_diffaugment_is_seeded_differentiable_and_does_what_it_says():
    x = torch.rand(8, 1, 8, 8, requires_grad=True)
    a = augment(x, ("color", "translation", "cutout"), torch.Generator().manual_seed(0))
    b = augment(x, ("color", "translation", "cutout"), torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and not torch.equal(a, x)
    a.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    dot = torch.zeros(64, 1, 8, 8)
    dot[:, :, 4, 4] = 1
    moved = augment(dot, ("translation",), torch.Generator().manual_seed(1))
    assert torch.all(moved.sum((1, 2, 3)) <= 1) and (moved[:, 0, 4, 4] == 0).any()  # shifted by at most 1
    ones = augment(torch.ones(16, 1, 8, 8), ("cutout",), torch.Generator().manual_seed(2))
    assert torch.all((ones == 0).sum((1, 2, 3)) <= 16) and (ones == 0).sum() > 0  # a 4x4 square at most


def test_conditional_resnet_with_diffaugment_trains_resumes_exactly_and_exports(tmp_path):
    from multinet.cli import main
    items = ["device='cpu'", "train.steps=8", "train.log_every=2", "train.checkpoint_every=4", "train.sample_every=0",
             "train.tensorboard=false", "model.arch='resnet'", "model.width=8", "model.conditional=true",
             "gan.loss='hinge'", "gan.diffaugment='color,translation,cutout'", "networks.generator.ema=0.5", "eval.samples=100",
             "eval.classifier_epochs=1", "eval.standard_metrics=false"]
    cfg = load_recipe(GanRecipe, "gan_digits", items)
    assert Runner(GanSystem, cfg, tmp_path / "full", progress=False, echo=False).fit().code == 0
    assert Runner(GanSystem, cfg, tmp_path / "part", progress=False, echo=False, stop_at=4).fit().code == 0
    assert Runner(GanSystem, out=tmp_path / "part", resume=True, progress=False, echo=False).fit().code == 0
    a, b = (load_checkpoint(tmp_path / p / "checkpoints/last.pt")["networks"] for p in ("full", "part"))
    assert all(torch.equal(a[n]["module"][k], b[n]["module"][k]) for n in a for k in a[n]["module"])
    assert main(["export", str(tmp_path / "full/checkpoints/last.pt"), "--out", str(tmp_path / "x")]) == 0
    assert main(["sample", str(tmp_path / "x"), "--n", "20", "--out", str(tmp_path / "s.npy")]) == 0


def test_r1_penalty_reads_the_real_labels_of_a_projection_discriminator(tmp_path):
    from multinet.gan import r1_penalty
    D = ResNetDiscriminator((1, 8, 8), 8, classes=5)
    x, y = torch.rand(6, 1, 8, 8) * 2 - 1, torch.arange(6) % 5
    with torch.no_grad():  # a projection embedding of the scale training gives it, so the label term shows
        D.embed.parametrizations.weight.original.normal_(0, 1)
    own, _ = r1_penalty(lambda v: D(v, y), x)
    other, _ = r1_penalty(lambda v: D(v, (y + 1) % 5), x)
    assert float(own) > 0 and not torch.isclose(own, other)
    items = ["device='cpu'", "train.steps=3", "train.log_every=1", "train.sample_every=0", "train.checkpoint_every=0",
             "train.tensorboard=false", "model.arch='resnet'", "model.width=8", "model.conditional=true",
             "gan.r1=1.0", "eval.samples=100", "eval.classifier_epochs=1", "eval.standard_metrics=false"]
    assert Runner(GanSystem, load_recipe(GanRecipe, "gan_digits", items), tmp_path, progress=False,
                  echo=False).fit().code == 0
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["discriminator/r1"] > 0 for r in logged if "discriminator/r1" in r] == [True] * 3


def test_conditional_and_augmentation_mistakes_are_named():
    for data, key in [({"gan": {"diffaugment": "translation,flip"}}, "gan.diffaugment: unknown policy flip"),
                      ({"gan": {"diffaugment": "cutout"}, "data": {"name": "ring8"}}, "gan.diffaugment: augments images"),
                      ({"model": {"arch": "resnet", "conditional": True}, "eval": {"rejection": "drs"}},
                       "eval.rejection: rejection sampling is for unconditional")]:
        with pytest.raises(ConfigError, match=key):
            from_dict(GanRecipe, data)


def test_the_sngan_cifar10_recipe_is_sngans_schedule_on_its_pair():
    """Five D steps per G step, hinge, Adam (0, 0.9) decaying linearly to 0 over each network's own
    steps; run offline on the digits at 32×32 with narrow networks."""
    from multinet.run import engine_for
    cfg = load_recipe(GanRecipe, "sngan_cifar10", ["device='cpu'", "train.steps=4", "train.tensorboard=false",
                                                    "data.name='digits'", "data.image_size=32", "data.workers=0",
                                                    "model.width=4", "train.sample_every=0"])
    assert (cfg.model.arch, cfg.gan.loss, cfg.gan.d_steps, cfg.data.name) == ("resnet", "hinge", 5, "digits")
    assert tuple(cfg.networks.generator.betas) == (0.0, 0.9) and cfg.networks.generator.schedule.name == "linear"
    torch.manual_seed(0)
    e = engine_for(GanSystem(cfg, torch.device("cpu")))
    d, g = e.nets["discriminator"].optimizer, e.nets["generator"].optimizer
    e.run(stop_at=2)
    assert e.phase_steps == {"discriminator": 10, "generator": 2}
    assert d.param_groups[0]["lr"] == pytest.approx(2e-4 * 10 / 20) and g.param_groups[0]["lr"] == pytest.approx(1e-4)
    e.run()
    assert d.param_groups[0]["lr"] == 0 and g.param_groups[0]["lr"] == 0
    G = e.nets["generator"].module
    assert [G.ch] + [b.conv2.out_channels for b in G.blocks] == [16] * 4  # 4w, as SNGAN's 256 at w = 64
