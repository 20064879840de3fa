"""A class-conditional GAN on scikit-learn's 8×8 digits: G(z, y) and D(x, y) with label embeddings.

    python -m multinet train examples.cond_gan_digits:CondGan --steps 3000 --out runs/cgan
    python -m multinet sample runs/cgan/checkpoints/last.pt --n 100 --out digits.npy   # rows 0..9

Everything else (checkpoints, --resume, Ctrl-C, NaN stop, TensorBoard, evaluate) comes with the runner.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from multinet import EngineOptions, NetConfig, Phase, RunConfig, System, eval_mode
from multinet.data import DataConfig, load_data
from multinet.handlers import SampleEvery


class Generator(nn.Module):
    def __init__(self, latent: int = 32, classes: int = 10, hidden: int = 256) -> None:
        super().__init__()
        self.emb = nn.Embedding(classes, 16)
        self.net = nn.Sequential(nn.Linear(latent + 16, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 64), nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.emb(y)], 1)).view(-1, 1, 8, 8)


class Discriminator(nn.Module):
    def __init__(self, classes: int = 10, hidden: int = 256) -> None:
        super().__init__()
        self.emb = nn.Embedding(classes, 16)
        self.net = nn.Sequential(nn.Linear(64 + 16, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x.flatten(1), self.emb(y)], 1)).squeeze(1)


def _adam() -> NetConfig:
    return NetConfig(optimizer="adam", lr=2e-4, betas=[0.5, 0.999])


@dataclass
class Nets:
    generator: NetConfig = field(default_factory=_adam)
    discriminator: NetConfig = field(default_factory=_adam)


@dataclass
class CondGanConfig(RunConfig):
    latent_dim: int = 32
    data: DataConfig = field(default_factory=DataConfig)
    networks: Nets = field(default_factory=Nets)


class CondGan(System):
    Config = CondGanConfig
    resume_may_change = ("data.root",)

    def __init__(self, cfg: CondGanConfig, device: torch.device, **build) -> None:
        super().__init__(cfg, device, **build)
        self.data = load_data(cfg.data, device, cfg.seed)
        self.net("discriminator", Discriminator(self.data.num_classes))
        self.net("generator", Generator(cfg.latent_dim, self.data.num_classes), ema=0.99)
        self.noise = self.streams.get("noise", device)  # checkpointed with the run

    def phases(self) -> list[Phase]:
        return [Phase("discriminator", "discriminator", self.d_step), Phase("generator", "generator", self.g_step)]

    def engine_options(self) -> EngineOptions:
        return EngineOptions(stateful={"data": self.data.sampler})

    def fake(self, e, y: torch.Tensor) -> torch.Tensor:
        z = torch.randn(len(y), self.cfg.latent_dim, generator=self.noise, device=self.device)
        return e.model("generator")(z, y)

    def d_step(self, e) -> dict[str, torch.Tensor]:
        D = e.model("discriminator")
        x, y = self.data.sampler.next()
        real, fake = D(x, y), D(self.fake(e, y), y)  # G is frozen here: no graph through it
        return {"loss": F.softplus(-real).mean() + F.softplus(fake).mean(), "real": real.mean().detach()}

    def g_step(self, e) -> dict[str, torch.Tensor]:
        y = torch.randint(self.data.num_classes, (self.cfg.data.batch_size,), generator=self.noise, device=self.device)
        return {"loss": F.softplus(-e.model("discriminator")(self.fake(e, y), y)).mean()}  # D frozen, grads flow

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """``n`` digits, labels 0, 1, ..., 9, 0, ... in order (the EMA generator, eval mode)."""
        gen = self.streams.fresh("sample")
        y = torch.arange(n, device=self.device) % self.data.num_classes
        with eval_mode(self.inference_module("generator")) as G:
            return G(torch.randn(n, self.cfg.latent_dim, generator=gen).to(self.device), y)

    def evaluate(self) -> dict[str, float]:
        """How often a nearest-class-mean rule reads the label G was asked for (a quick sanity figure)."""
        means = torch.stack([self.data.train[self.data.train_labels == c].mean(0)
                             for c in range(self.data.num_classes)]).flatten(1)
        x = self.sample(1000).flatten(1)
        asked = torch.arange(1000, device=self.device) % self.data.num_classes
        return {"label_match": float((torch.cdist(x, means).argmin(1) == asked).float().mean())}

    def handlers(self, ctx) -> list:
        return [SampleEvery(lambda step: ctx.tracker.images("samples/generator", self.sample(100), step, nrow=10),
                            every=500)]
