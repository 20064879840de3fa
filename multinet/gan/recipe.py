"""The GAN recipe: typed config, then setup in dependency order, then the two phases.

Setup order: data (its shape sizes the networks) → networks → Net (device → init → pretrained →
freeze → groups → optimizer → schedule) → phases → engine → handlers (samples, evaluation).
"""
from __future__ import annotations

import contextlib

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from .. import distributed
from ..cli import Run
from ..config import TrainConfig as BaseTrainConfig
from ..config import to_dict
from ..data import DataConfig, DataSource, load_data, mixture_means
from ..engine import Engine, Phase
from ..netconfig import NetConfig, to_spec
from ..nets import Net
from .losses import d_loss, g_loss, gradient_penalty, r1_penalty
from .metrics import image_scores, mixture_coverage, train_classifier
from .networks import build_pair

__all__ = ["GanRecipe", "build"]


@dataclass
class ModelConfig:
    arch: Literal["mlp", "dcgan"] = "mlp"
    latent_dim: int = 100
    hidden: int = 256
    layers: int = 2
    width: int = 64
    pack: int = 1
    spectral_norm: bool = False
    # MLP only: a discriminator of its own size (0 = the generator's), batch norm in the
    # generator's hidden layers, maxout units of that many pieces in the discriminator.
    d_hidden: int = 0
    d_layers: int = 0
    g_batch_norm: bool = False
    d_maxout: int = 0


@dataclass
class GanConfig:
    loss: Literal["bce", "hinge", "wgan-gp", "lsgan"] = "bce"
    d_steps: int = 1
    g_steps: int = 1
    gp_weight: float = 10.0
    r1: float = 0.0
    ema: float = 0.0
    reuse_fake: bool = False
    # One D forward over [real; fake] instead of two: the same per-sample math and loss, fewer
    # kernels and no gradient accumulation. "auto" uses it when D has no batch-norm layer
    # (batch statistics would then mix real and fake samples).
    d_concat: Literal["auto", "on", "off"] = "auto"


@dataclass
class TrainConfig(BaseTrainConfig):
    sample_every: int = 500
    eval_every: int = 0


@dataclass
class EvalConfig:
    samples: int = 2500
    classifier_epochs: int = 8


@dataclass
class Networks:
    generator: NetConfig = field(default_factory=NetConfig)
    discriminator: NetConfig = field(default_factory=NetConfig)


@dataclass
class GanRecipe:
    task: Literal["gan"] = "gan"
    description: str = ""
    seed: int = 0
    device: str = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    networks: Networks = field(default_factory=Networks)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


class GanSystem:
    """The two phases of a GAN over an engine's networks and a data source."""

    def __init__(self, cfg: GanRecipe, data: DataSource, device: torch.device) -> None:
        self.cfg, self.data, self.device = cfg, data, device
        self.noise = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        self.fixed_z = torch.randn(64, cfg.model.latent_dim, generator=torch.Generator().manual_seed(cfg.seed + 2)).to(device)
        self._fake: torch.Tensor | None = None
        self._classifier: torch.nn.Module | None = None
        self.d_concat = cfg.gan.d_concat == "on"

    def setup(self, discriminator: torch.nn.Module) -> None:
        if self.cfg.gan.d_concat == "auto":
            bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in discriminator.modules())
            self.d_concat = not bn and self.cfg.gan.r1 == 0

    def z(self, n: int) -> torch.Tensor:
        return distributed.randn(n, self.cfg.model.latent_dim, generator=self.noise, device=self.device)

    def d_step(self, e: Engine) -> dict[str, torch.Tensor]:
        D, g = e.model("discriminator"), self.cfg.gan
        real, _ = self.data.sampler.next()
        reuse = g.reuse_fake and e.phase_steps["discriminator"] % g.d_steps == g.d_steps - 1
        with e.grad_through("generator") if reuse else contextlib.nullcontext():
            fake = e.model("generator")(self.z(real.shape[0]))
        self._fake = fake if reuse else None
        terms = {}
        if g.r1 > 0:
            r1, d_real = r1_penalty(D, real)
            terms["r1"] = r1
            d_fake = D(fake.detach())
        elif self.d_concat:
            d_real, d_fake = D(torch.cat([real, fake.detach()])).chunk(2)  # equal halves (packs stay whole)
        else:
            d_real, d_fake = D(real), D(fake.detach())
        loss = d_loss(g.loss, d_real, d_fake)
        terms["adv"] = loss
        if g.loss == "wgan-gp":
            terms["gp"] = gradient_penalty(D, real, fake.detach(), self.noise)
            loss = loss + g.gp_weight * terms["gp"]
        if g.r1 > 0:
            loss = loss + 0.5 * g.r1 * terms["r1"]
        terms.update(loss=loss, real_logit=d_real.detach().mean(), fake_logit=d_fake.detach().mean())
        return terms

    def g_step(self, e: Engine) -> dict[str, torch.Tensor]:
        G, D = e.model("generator"), e.model("discriminator")
        fake, self._fake = (self._fake, None) if self._fake is not None else (G(self.z(self.cfg.data.batch_size)), None)
        return {"loss": g_loss(self.cfg.gan.loss, D(fake))}

    @torch.no_grad()
    def sample(self, e: Engine, n: int | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        """Samples in eval mode under no_grad (the EMA generator when there is one)."""
        G = e.ema["generator"].module if "generator" in e.ema else e.nets["generator"].module
        was = G.training
        G.eval()
        out = []
        z = z if z is not None else torch.randn(n, self.cfg.model.latent_dim, generator=torch.Generator().manual_seed(self.cfg.seed + 3)).to(self.device)
        for i in range(0, len(z), 1000):
            out.append(G(z[i:i + 1000]).float())
        G.train(was)
        return torch.cat(out)

    def evaluate(self, e: Engine) -> dict[str, float]:
        cfg = self.cfg
        if self.data.kind == "points":
            means, sigma = mixture_means(cfg.data.name)
            return mixture_coverage(self.sample(e, cfg.eval.samples), means, sigma)
        if cfg.data.name not in ("digits", "mnist", "fashion-mnist", "idx"):
            return {}
        if self._classifier is None:  # trained (or read from the cache) once per run
            self._classifier = train_classifier(self.data.train, self.data.train_labels, self.data.num_classes,
                                                Path(cfg.data.root) / "classifiers", cfg.data.name,
                                                cfg.eval.classifier_epochs)
        clf = self._classifier
        gen = self.sample(e, max(cfg.eval.samples, len(self.data.held_out) if self.data.held_out is not None else 0))
        return image_scores(clf, gen.cpu(), self.data.train.cpu(), None if self.data.held_out is None else self.data.held_out.cpu())


def build(cfg: GanRecipe, out: Path, device: torch.device) -> Run:
    data = load_data(cfg.data, device, cfg.seed)
    m = cfg.model
    gen, disc = build_pair(m.arch, data.shape, m.latent_dim, m.hidden, m.layers, m.width, m.pack, m.spectral_norm,
                           m.d_hidden, m.d_layers, m.g_batch_norm, m.d_maxout)
    if cfg.data.batch_size % m.pack:
        raise ValueError(f"data.batch_size {cfg.data.batch_size} must be a multiple of model.pack {m.pack}")
    steps = cfg.train.steps
    nets = {
        "discriminator": Net("discriminator", to_spec(cfg.networks.discriminator, disc), device, steps * cfg.gan.d_steps),
        "generator": Net("generator", to_spec(cfg.networks.generator, gen), device, steps * cfg.gan.g_steps),
    }
    system = GanSystem(cfg, data, device)
    system.setup(disc)
    phases = [Phase("discriminator", ("discriminator",), system.d_step, repeat=cfg.gan.d_steps),
              Phase("generator", ("generator",), system.g_step, repeat=cfg.gan.g_steps)]
    engine = Engine(nets, phases, steps, amp=cfg.train.amp, ema={"generator": cfg.gan.ema},
                    steps_per_epoch=data.sampler.steps_per_epoch, generators={"noise": system.noise},
                    stateful={"data": data.sampler}, config=to_dict(cfg), log_every=cfg.train.log_every)
    engine.system = system

    def preview(e: Engine) -> None:
        if data.kind == "image":
            e.tracker.images("samples/generator", system.sample(e, z=system.fixed_z), e.iteration)
        else:
            _scatter(e, system.sample(e, 1000), out / "samples" / f"points_{e.iteration:08d}.png")

    def evaluate(e: Engine) -> None:
        e.tracker.scalars(e.iteration, {f"eval/{k}": v for k, v in system.evaluate(e).items()})

    def finish() -> dict[str, Any]:
        preview(engine)
        summary = {"recipe": cfg.description, "dataset": cfg.data.name, **system.evaluate(engine)}
        return summary

    run = Run(engine, finish, [n.report() for n in nets.values()])
    run.handlers = [("iteration", preview, cfg.train.sample_every)]
    if cfg.train.eval_every:
        run.handlers.append(("iteration", evaluate, cfg.train.eval_every))
    return run


def _scatter(e: Engine, pts: torch.Tensor, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4, 4))
    p = pts.cpu().numpy()
    ax.scatter(p[:, 0], p[:, 1], s=2, alpha=0.5)
    ax.set_aspect("equal")
    ax.set_title(f"step {e.iteration}")
    fig.savefig(path, dpi=80)
    e.tracker.figure("samples/points", fig, e.iteration)
    plt.close(fig)
