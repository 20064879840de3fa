"""The GAN recipe: typed config, then setup in dependency order, then the two phases.

Setup order: data (its shape sizes the networks) → networks → Net (device → init → pretrained →
freeze → groups → optimizer → schedule) → phases → engine → handlers (samples, evaluation).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from .. import distributed
from ..cli import Run
from ..config import FieldError, at_least, to_dict, within
from ..config import TrainConfig as BaseTrainConfig
from ..data import DataConfig, DataSource, load_data, mixture_means
from ..engine import Engine, Phase
from ..freeze import eval_mode
from ..netconfig import NetConfig, to_spec
from ..nets import Net
from .losses import d_loss, g_loss, gradient_penalty, r1_penalty
from .metrics import image_scores, mixture_coverage, train_classifier
from .networks import MLPDiscriminator, build_pair

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
    # MLP only: the discriminator first maps each sample to d_fourier random Fourier features
    # (sin and cos each), frequencies drawn at these scales in cycles per data unit (0 = off).
    d_fourier: int = 0
    d_fourier_scales: list[float] = field(default_factory=lambda: [0.5, 2.0, 8.0])

    def __post_init__(self) -> None:
        at_least(self, 1, "latent_dim", "hidden", "layers", "width", "pack")
        at_least(self, 0, "d_hidden", "d_layers", "d_maxout", "d_fourier")
        if self.d_fourier and self.arch != "mlp":
            raise FieldError("d_fourier", f"applies to arch = 'mlp' only, got arch = {self.arch!r}")
        if self.d_fourier and (not self.d_fourier_scales or not all(s > 0 for s in self.d_fourier_scales)):
            raise FieldError("d_fourier_scales", f"must be one or more positive numbers, got {self.d_fourier_scales}")


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
    # Top-k generator updates (Sinha et al. 2020): the G loss keeps only the fake samples (packs
    # under PacGAN) that D scores as most realistic, a fraction max(topk, topk_decay ** (it / every))
    # of the batch, where every = topk_every iterations (0: one data epoch, or 1,000 iterations
    # for the endless mixture samplers). Under torch.distributed each rank keeps its own top k.
    # topk = 1 is off.
    topk: float = 1.0
    topk_decay: float = 0.99
    topk_every: int = 0

    def __post_init__(self) -> None:
        at_least(self, 1, "d_steps", "g_steps")
        at_least(self, 0, "gp_weight", "r1", "topk_every")
        within(self, "ema", low=0, high=1, open_high=True, note=" (0 turns it off)")
        within(self, "topk", "topk_decay", low=0, high=1, open_low=True)


@dataclass
class TrainConfig(BaseTrainConfig):
    sample_every: int = 500
    eval_every: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, 0, "sample_every", "eval_every", note=" (0 turns it off)")


@dataclass
class EvalConfig:
    samples: int = 2500
    classifier_epochs: int = 8
    # "drs": also score samples drawn by discriminator rejection sampling (Azadi et al. 2019),
    # reported as drs_* beside the plain generator's figures (mixture coverage, or classifier
    # IS / FD). DRS reads D's logit as log p_data / p_g, which holds for the BCE loss.
    # drs_shift (γ, in logits) trades exactness for acceptance: > 0 accepts fewer, < 0 more.
    rejection: Literal["none", "drs"] = "none"
    drs_shift: float = 0.0
    # drs_refit > 0: DRS reads a fresh critic fitted for that many steps to the final generator
    # alone (G fixed, batches of drs_refit_batch real + as many generated samples; an MLP 256 × 2
    # over drs_refit_fourier Fourier features at model.d_fourier_scales, Adam 1e-3 with cosine
    # decay) instead of the trained discriminator, which was fitted to a moving generator.
    drs_refit: int = 0
    drs_refit_batch: int = 4096
    drs_refit_fourier: int = 128
    # D* (the logit of the best candidate, which sets the acceptance scale): the largest logit seen
    # (1.0, exact under an optimal D) or this quantile of the first candidates' logits; candidates
    # above it are always kept. A critic that finds a few candidates far more real than the rest
    # otherwise accepts almost nothing (the quantile is the bound M of Azadi et al., relaxed).
    drs_quantile: float = 1.0

    def __post_init__(self) -> None:
        at_least(self, 1, "samples", "classifier_epochs", "drs_refit_batch")
        at_least(self, 0, "drs_refit", "drs_refit_fourier")
        within(self, "drs_quantile", low=0, high=1, open_low=True)


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
        self._critic: tuple[int, torch.nn.Module] | None = None  # (iteration, refitted DRS critic)
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
        logits = D(fake)
        k = self.topk(e.iteration, logits.shape[0])
        if k < logits.shape[0]:
            logits = logits.flatten().topk(k).values
        return {"loss": g_loss(self.cfg.gan.loss, logits)}

    def topk(self, iteration: int, n: int) -> int:
        """How many of ``n`` fake logits the G loss keeps at ``iteration`` (top-k updates)."""
        g = self.cfg.gan
        if g.topk >= 1:
            return n
        every = g.topk_every or self.data.sampler.steps_per_epoch or 1000
        return max(1, math.ceil(n * max(g.topk, g.topk_decay ** (iteration // every))))

    def _generator(self, e: Engine) -> torch.nn.Module:
        return e.ema["generator"].module if "generator" in e.ema else e.nets["generator"].module

    @torch.no_grad()
    def sample(self, e: Engine, n: int | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        """Samples in eval mode under no_grad (the EMA generator when there is one)."""
        z = z if z is not None else torch.randn(n, self.cfg.model.latent_dim, generator=torch.Generator().manual_seed(self.cfg.seed + 3)).to(self.device)
        with eval_mode(self._generator(e)) as G:
            return torch.cat([G(z[i:i + 1000]).float() for i in range(0, len(z), 1000)])

    @torch.no_grad()
    def sample_rejection(self, e: Engine, n: int, shift: float = 0.0, burn_in: int = 10000,
                         max_candidates: int = 0) -> tuple[torch.Tensor, float]:
        """``n`` samples by discriminator rejection sampling (Azadi et al. 2019), and the share of
        candidates accepted.

        A candidate x is kept with probability σ(F), F = D(x) − D* − log(1 − exp(D(x) − D* − ε)) − γ,
        where D* is the largest logit seen so far (first over ``burn_in`` candidates; or, with
        ``eval.drs_quantile`` < 1, that quantile of the first candidates' logits, D(x) above it
        counting as D*) and γ = ``shift``: under an optimal D this accepts with probability
        p_data(x) / (M p_g(x)). With ``eval.drs_refit`` a refitted critic replaces D. Under
        PacGAN the discriminator judges packs, so whole packs are kept or dropped (the pack's
        density ratio is the product of its members'). Seeded: the same call gives the same samples.
        """
        critic = self.refit_critic(e) if self.cfg.eval.drs_refit else None
        pack = 1 if critic is not None else self.cfg.model.pack
        chunk = max(pack, 4096 // pack * pack)
        max_candidates = max_candidates or 1000 * n
        gen = torch.Generator().manual_seed(self.cfg.seed + 4)
        dim = self.cfg.model.latent_dim
        judge = critic if critic is not None else e.nets["discriminator"].module
        with eval_mode(self._generator(e)) as G, eval_mode(judge) as D:
            def draw(m: int) -> tuple[torch.Tensor, torch.Tensor]:
                x = G(torch.randn(m, dim, generator=gen).to(self.device)).float()
                return x, D(x).flatten().double()

            q = self.cfg.eval.drs_quantile
            if q < 1:
                burn_in = max(burn_in, math.ceil(50 / (1 - q)))
            first = torch.cat([draw(chunk)[1] for _ in range(max(1, burn_in // chunk))])
            d_max = float(first.max() if q >= 1 else torch.quantile(first, q))
            kept: list[torch.Tensor] = []
            have = seen = 0
            while have < n:
                if seen >= max_candidates:
                    raise RuntimeError(f"rejection sampling kept {have} of {n} samples after {seen} candidates "
                                       f"(acceptance {have / seen:.2e}); lower eval.drs_shift or eval.drs_quantile")
                x, logit = draw(chunk)
                if q >= 1:
                    d_max = max(d_max, float(logit.max()))
                r = (logit - d_max).clamp(max=0.0)
                f = r - torch.log1p(-torch.exp(r - 1e-6)) - shift
                accept = torch.rand(len(f), generator=gen, dtype=torch.float64).to(f.device) < torch.sigmoid(f)
                x = x.view(-1, pack, *x.shape[1:])[accept].flatten(0, 1)
                kept.append(x)
                have += len(x)
                seen += chunk
        return torch.cat(kept)[:n], have / seen

    def _real_batch(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` real examples drawn with ``gen``: the training streams are left untouched."""
        if self.data.kind == "points":  # the mixture sampler's own means and σ, on the device
            s = self.data.sampler
            k = torch.randint(len(s.means), (n,), generator=gen)
            return s.means[k.to(s.means.device)] + s.sigma * torch.randn(n, 2, generator=gen).to(s.means.device)
        if self.data.train is None:
            raise ValueError(f"eval.drs_refit needs the dataset in memory; data.name={self.cfg.data.name!r} streams")
        return self.data.train[torch.randint(len(self.data.train), (n,), generator=gen).to(self.data.train.device)]

    def refit_critic(self, e: Engine) -> torch.nn.Module:
        """A fresh critic fitted to the generator as it is now (see ``EvalConfig.drs_refit``).

        Seeded and free of side effects on training: private random streams, the global RNG
        state restored, the generator in eval mode. Kept until the generator moves on.
        """
        if self._critic is not None and self._critic[0] == e.iteration:
            return self._critic[1]
        cfg = self.cfg.eval
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.cfg.seed + 5)
            critic = MLPDiscriminator(self.data.shape, 256, 2, fourier=cfg.drs_refit_fourier,
                                      fourier_scales=tuple(self.cfg.model.d_fourier_scales)).to(self.device)
        opt = torch.optim.Adam(critic.parameters(), 1e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.drs_refit)
        gen, b = torch.Generator().manual_seed(self.cfg.seed + 6), cfg.drs_refit_batch
        with eval_mode(self._generator(e)) as G, torch.enable_grad():
            for _ in range(cfg.drs_refit):
                with torch.no_grad():
                    fake = G(torch.randn(b, self.cfg.model.latent_dim, generator=gen).to(self.device)).float()
                logits = critic(torch.cat([self._real_batch(b, gen).float(), fake]))
                loss = d_loss("bce", logits[:b], logits[b:])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        critic.eval().requires_grad_(False)
        self._critic = (e.iteration, critic)
        return critic

    def evaluate(self, e: Engine) -> dict[str, float]:
        cfg = self.cfg
        if self.data.kind == "points":
            means, sigma = mixture_means(cfg.data.name)
            scores = mixture_coverage(self.sample(e, cfg.eval.samples), means, sigma)
            if cfg.eval.rejection == "drs":
                x, accepted = self.sample_rejection(e, cfg.eval.samples, cfg.eval.drs_shift)
                scores.update({f"drs_{k}": v for k, v in mixture_coverage(x, means, sigma).items()},
                              drs_acceptance=accepted)
            return scores
        if cfg.data.name not in ("digits", "mnist", "fashion-mnist", "idx"):
            return {}
        if self._classifier is None:  # trained (or read from the cache) once per run
            self._classifier = train_classifier(self.data.train, self.data.train_labels, self.data.num_classes,
                                                Path(cfg.data.root) / "classifiers", cfg.data.name,
                                                cfg.eval.classifier_epochs)
        clf = self._classifier
        n = max(cfg.eval.samples, len(self.data.held_out) if self.data.held_out is not None else 0)
        held_out = None if self.data.held_out is None else self.data.held_out.cpu()
        scores = image_scores(clf, self.sample(e, n).cpu(), self.data.train.cpu(), held_out)
        if cfg.eval.rejection == "drs":
            x, accepted = self.sample_rejection(e, n, cfg.eval.drs_shift)
            drs = image_scores(clf, x.cpu(), self.data.train.cpu(), None)
            scores.update({f"drs_{k}": drs[k] for k in ("classifier_is", "classifier_fd")}, drs_acceptance=accepted)
        return scores


def build(cfg: GanRecipe, out: Path, device: torch.device) -> Run:
    data = load_data(cfg.data, device, cfg.seed)
    m = cfg.model
    gen, disc = build_pair(m.arch, data.shape, m.latent_dim, m.hidden, m.layers, m.width, m.pack, m.spectral_norm,
                           m.d_hidden, m.d_layers, m.g_batch_norm, m.d_maxout, m.d_fourier, m.d_fourier_scales)
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
