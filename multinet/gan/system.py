"""The GAN as a system: data → networks (discriminator, generator with its EMA) → two phases.

Setup order: data (its shape sizes the networks) → networks (each through ``Net``'s build order)
→ random streams. The discriminator phase trains D on real and generated batches (G frozen, no
graph through it); the generator phase trains G through the frozen D. ``gan.d_steps`` /
``gan.g_steps`` set the k:1 ratio.
"""
from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import torch

from .. import distributed
from ..data import DataSource, LazyData
from ..engine import Engine, Phase
from ..handlers import SampleEvery
from ..run.system import EngineOptions, RunContext, System, note
from . import evaluation, fidelity, sampling
from .recipe import GanRecipe
from .diffaugment import augment
from .losses import d_loss, g_loss, gradient_penalty, r1_penalty
from .networks import build_pair

__all__ = ["GanSystem"]


class GanSystem(System):
    """The GAN: a generator and a discriminator from ``[model]`` (or a recipe's ``class_path``),
    trained in two phases (``gan.d_steps`` D steps with G frozen, then ``gan.g_steps`` G steps through
    the frozen D) on ``[data]``; evaluated by mixture coverage or classifier IS / FD (and FID / KID /
    IS / PR with ``eval.standard_metrics``); samples and exports its (EMA) generator."""
    Config = GanRecipe
    default_recipe = "gan_digits"
    stream_seeds = {"gan.noise": 1, "gan.fixed_z": 2, "gan.sample": 3, "gan.drs": 4, "gan.critic_init": 5,
                    "gan.critic": 6}
    # The per-rank batch may change on resume (to keep the global batch under another world size).
    resume_may_change = ("data.root", "data.workers", "data.download", "data.batch_size")
    # Scoring a saved run may read its data from where it lives now (a moved folder).
    evaluate_may_change = ("eval.", "data.root", "data.workers", "data.download")

    def __init__(self, cfg: GanRecipe, device: torch.device, **build: Any) -> None:
        super().__init__(cfg, device, **build)
        m = cfg.model
        if cfg.data.batch_size % m.pack:
            raise ValueError(f"data.batch_size {cfg.data.batch_size} must be a multiple of model.pack {m.pack}")
        # Training loads the data now; a saved run being sampled never needs it (evaluation loads it).
        self.dataset = LazyData(cfg.data, device, cfg.seed, now=not self.inference, shape=self.saved.get("shape"))
        self.shape = self.dataset.shape
        # Class-conditional networks: as many classes as the data has (kept with a saved run).
        self.classes = (int(self.saved.get("classes") or self.data.num_classes)) if m.conditional else 0
        gen, disc = build_pair(m, self.shape, self.classes)
        self.net("discriminator", disc)
        self.net("generator", gen)
        self.noise = self.streams.get("gan.noise", device)
        self.policy = cfg.gan.policy  # DiffAugment, on real and fake alike, from its own stream
        self.augment_gen = self.streams.get("gan.augment", device) if self.policy else None
        self.label_gen = self.streams.get("gan.labels", device) if self.classes else None
        self.fixed_z = torch.randn(64, m.latent_dim, generator=self.streams.fresh("gan.fixed_z")).to(device)
        # One D forward over [real; fake] unless D has batch norm (its batch statistics would mix them).
        bn = any(isinstance(x, torch.nn.modules.batchnorm._BatchNorm) for x in disc.modules())
        self.d_concat = cfg.gan.d_concat == "on" or (cfg.gan.d_concat == "auto" and not bn and cfg.gan.r1 == 0)
        # A user's feature network: imported now (inside the trust boundary when rebuilt from a saved
        # run), so a typo stops the run at once instead of after training.
        feature_cls = fidelity.feature_class(cfg.eval.features, self.shape) if cfg.eval.standard_metrics else None
        self.evaluator = evaluation.GanEvaluator(cfg, feature_cls)
        self._fake: torch.Tensor | None = None
        self._critic: tuple[Any, torch.nn.Module] | None = None  # (generator version, refitted DRS critic)

    @property
    def data(self) -> DataSource:
        return self.dataset.get()

    def phases(self) -> list[Phase]:
        g, k = self.cfg.gan, self.cfg.train.accumulate
        return [Phase("discriminator", "discriminator", self.d_step, repeat=g.d_steps, accumulate=k),
                Phase("generator", "generator", self.g_step, repeat=g.g_steps, accumulate=k)]

    def engine_options(self) -> EngineOptions:
        return EngineOptions(self.epoch_length, {"data": self.data.sampler})

    @property
    def epoch_length(self) -> int:
        """Batches per pass over the data / ``accumulate`` (0: no epochs): an epoch in iterations, counting
        one real batch per micro-batch of one discriminator step (``gan.d_steps`` repeats are not counted)."""
        batches = self.data.sampler.steps_per_epoch
        return batches and max(1, batches // self.cfg.train.accumulate)

    # -- the two phase steps -----------------------------------------------------------------
    def z(self, n: int) -> torch.Tensor:
        return distributed.randn(n, self.cfg.model.latent_dim, generator=self.noise, device=self.device)

    def labels(self, n: int) -> torch.Tensor | None:
        """Uniform class labels for generated samples (None for an unconditional pair)."""
        if not self.classes:
            return None
        return distributed.randint(self.classes, n, generator=self.label_gen, device=self.device)

    def judge(self, D: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """D's logits for ``x`` (augmented first under DiffAugment; labels for a projection D)."""
        if self.policy:
            x = augment(x, self.policy, self.augment_gen)
        return D(x) if y is None else D(x, y)

    def d_step(self, e: Engine) -> dict[str, torch.Tensor]:
        D, g = e.model("discriminator"), self.cfg.gan
        real, y_real = self.data.sampler.next()
        y_real = y_real if self.classes else None
        # reuse_fake: the last D step's fake batch (with its graph through G) feeds the G step.
        reuse = g.reuse_fake and e.phase_steps["discriminator"] % g.d_steps == g.d_steps - 1
        y_fake = self.labels(real.shape[0])
        with e.grad_through("generator") if reuse else contextlib.nullcontext():
            z = self.z(real.shape[0])
            fake = e.model("generator")(z) if y_fake is None else e.model("generator")(z, y_fake)
        self._fake = (fake, y_fake) if reuse else None
        terms = {}
        if g.r1 > 0:
            r1, d_real = r1_penalty(lambda x: self.judge(D, x, y_real), real)
            terms["r1"] = r1
            d_fake = self.judge(D, fake.detach(), y_fake)
        elif self.d_concat:  # equal halves (packs stay whole)
            both = None if y_fake is None else torch.cat([y_real, y_fake])
            d_real, d_fake = self.judge(D, torch.cat([real, fake.detach()]), both).chunk(2)
        else:
            d_real, d_fake = self.judge(D, real, y_real), self.judge(D, fake.detach(), y_fake)
        loss = d_loss(g.loss, d_real, d_fake)
        terms["adv"] = loss
        if g.loss == "wgan-gp":
            terms["gp"] = gradient_penalty(lambda x: self.judge(D, x, y_real), real, fake.detach(), self.noise)
            loss = loss + g.gp_weight * terms["gp"]
        if g.r1 > 0:
            loss = loss + 0.5 * g.r1 * terms["r1"]
        terms.update(loss=loss, real_logit=d_real.detach().mean(), fake_logit=d_fake.detach().mean())
        return terms

    def g_step(self, e: Engine) -> dict[str, torch.Tensor]:
        G, D = e.model("generator"), e.model("discriminator")
        if self._fake is not None:
            (fake, y), self._fake = self._fake, None
        else:
            y = self.labels(self.cfg.data.batch_size)
            z = self.z(self.cfg.data.batch_size)
            fake = G(z) if y is None else G(z, y)
        logits = self.judge(D, fake, y)
        k = self.topk(e.iteration, logits.shape[0])
        if k < logits.shape[0]:
            logits = logits.flatten().topk(k).values
        return {"loss": g_loss(self.cfg.gan.loss, logits)}

    def topk(self, iteration: int, n: int) -> int:
        """How many of ``n`` fake logits the G loss keeps at ``iteration`` (Sinha et al. 2020)."""
        g = self.cfg.gan
        if g.topk >= 1:
            return n
        every = g.topk_every or self.epoch_length or 1000
        return max(1, math.ceil(n * max(g.topk, g.topk_decay ** (iteration // every))))

    # -- sampling and evaluation (the EMA generator when there is one) ------------------------
    @property
    def generator(self) -> torch.nn.Module:
        return self.inference_module("generator")

    def sample(self, n: int | None = None, z: torch.Tensor | None = None, rejection: str = "none") -> torch.Tensor:
        """Samples in eval mode under no_grad; the same ``n`` gives the same samples every call.
        ``rejection="drs"``: ``n`` samples by discriminator rejection sampling (``sample_rejection``;
        the acceptance is reported as a note)."""
        if rejection not in ("none", "drs"):
            raise ValueError(f"rejection {rejection!r} unknown (valid: none, drs)")
        if rejection == "drs":
            if n is None:
                raise ValueError("rejection sampling draws n samples: give n")
            if self.cfg.eval.drs_refit:
                note(f"fitting the rejection critic to the generator ({self.cfg.eval.drs_refit} steps)")
            x, accepted = self.sample_rejection(n)
            note(f"rejection sampling accepted {accepted:.1%} of the candidates")
            return x
        if z is None:
            z = torch.randn(n, self.cfg.model.latent_dim, generator=self.streams.fresh("gan.sample")).to(self.device)
        if not self.classes:
            return sampling.generate(self.generator, z)
        # Class-conditional: every class in turn (sample i has label i mod classes).
        y = torch.arange(len(z), device=self.device) % self.classes
        return sampling.generate(self.generator, z, labels=y)

    def sample_rejection(self, n: int, shift: float | None = None,
                         max_candidates: int = 0) -> tuple[torch.Tensor, float]:
        """``n`` samples by DRS through the trained discriminator, or with ``eval.drs_refit`` a
        critic fitted to the final generator; and the acceptance. See ``sampling.rejection_sample``."""
        ev = self.cfg.eval
        critic = self.refit_critic() if ev.drs_refit else None
        judge = critic if critic is not None else self.nets["discriminator"].module
        return sampling.rejection_sample(self.generator, judge, self.cfg.model.latent_dim, n,
                                         self.streams.fresh("gan.drs"), self.device,
                                         pack=1 if critic is not None else self.cfg.model.pack,
                                         shift=ev.drs_shift if shift is None else shift,
                                         quantile=ev.drs_quantile, max_candidates=max_candidates)

    def refit_critic(self) -> torch.nn.Module:
        """The critic of ``eval.drs_refit``, fitted once per generator state."""
        G = self.generator
        version = tuple(p._version for p in G.parameters())
        if self._critic is not None and self._critic[0] == version:
            return self._critic[1]
        ev = self.cfg.eval
        critic = sampling.fit_critic(G, self._real_batch, self.shape, self.cfg.model.latent_dim, ev.drs_refit,
                                     ev.drs_refit_batch, ev.drs_refit_fourier, tuple(self.cfg.model.d_fourier_scales),
                                     self.streams.seed_of("gan.critic_init"), self.streams.fresh("gan.critic"), self.device)
        self._critic = (version, critic)
        return critic

    def _real_batch(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` real examples drawn with ``gen``: the training streams are left untouched."""
        if self.data.kind == "points":  # the mixture sampler's own means and σ, on the device
            s = self.data.sampler
            k = torch.randint(len(s.means), (n,), generator=gen)
            return s.means[k.to(s.means.device)] + s.sigma * torch.randn(n, 2, generator=gen).to(s.means.device)
        if self.data.train is None:
            raise ValueError(f"eval.drs_refit needs the dataset in memory; data.name={self.cfg.data.name!r} streams")
        return self.data.train[torch.randint(len(self.data.train), (n,), generator=gen).to(self.data.train.device)]

    def evaluate(self) -> dict[str, float]:
        return self.evaluator(self.data, self.sample, self.sample_rejection)

    def export(self, folder: Path) -> list[Path]:
        """The generator (the EMA copy when there is one): ``load_exported`` gives it back, and
        ``python -m multinet sample FOLDER/generator.json`` samples from it without the run."""
        image = self.dataset.shape != (2,)
        return self.export_networks(folder, {"generator": {
            "kind": "generator", "system": "gan", "latent_dim": self.cfg.model.latent_dim, "shape": list(self.shape),
            "value_range": [-1.0, 1.0] if image else None, "ema": self.nets["generator"].ema is not None,
            "classes": self.classes,
            "dataset": self.cfg.data.name, "recipe": self.cfg.description}})

    def state_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "classes": self.classes}

    # -- in a training run ---------------------------------------------------------------------
    def preview(self, ctx: RunContext, step: int) -> None:
        if self.data.kind == "image":
            ctx.tracker.images("samples/generator", self.sample(z=self.fixed_z), step)
        else:
            evaluation.scatter(self.sample(1000), ctx.out / "samples" / f"points_{step:08d}.png", step, ctx.tracker)

    def handlers(self, ctx: RunContext) -> list[Any]:
        return [SampleEvery(lambda step: self.preview(ctx, step), self.cfg.train.sample_every)]

    def finish(self, ctx: RunContext) -> dict[str, Any]:
        self.preview(ctx, ctx.step)
        return {"recipe": self.cfg.description, "dataset": self.cfg.data.name, **self.evaluate()}
