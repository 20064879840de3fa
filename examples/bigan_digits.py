"""BiGAN / ALI on the 8×8 digits: an encoder E(x) and a generator G(z) against one discriminator
D(x, z) that sees joint pairs; E and G train together in one phase, with one optimizer each.

    python -m multinet train examples.bigan_digits:BiGan --steps 5000 --out runs/bigan
    python -m multinet evaluate runs/bigan/checkpoints/last.pt     # reconstruction error G(E(x))
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from multinet import EngineOptions, NetConfig, Phase, RunConfig, System, eval_mode
from multinet.data import DataConfig, load_data


def mlp(n_in: int, n_out: int, hidden: int, out: nn.Module | None = None) -> nn.Sequential:
    layers = [nn.Linear(n_in, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
              nn.Linear(hidden, n_out)]
    return nn.Sequential(*layers, *([out] if out is not None else []))


class JointDiscriminator(nn.Module):
    """Scores a (image, code) pair: real pairs are (x, E(x)), fake pairs (G(z), z)."""

    def __init__(self, latent: int, hidden: int) -> None:
        super().__init__()
        self.net = mlp(64 + latent, 1, hidden)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x.flatten(1), z], 1)).squeeze(1)


def _adam() -> NetConfig:
    return NetConfig(optimizer="adam", lr=2e-4, betas=[0.5, 0.999])


@dataclass
class Nets:
    encoder: NetConfig = field(default_factory=_adam)
    generator: NetConfig = field(default_factory=_adam)
    discriminator: NetConfig = field(default_factory=_adam)


@dataclass
class BiGanConfig(RunConfig):
    latent_dim: int = 16
    hidden: int = 256
    data: DataConfig = field(default_factory=DataConfig)
    networks: Nets = field(default_factory=Nets)


class BiGan(System):
    Config = BiGanConfig

    def __init__(self, cfg: BiGanConfig, device: torch.device, **build) -> None:
        super().__init__(cfg, device, **build)
        self.data = load_data(cfg.data, device, cfg.seed)
        k, h = cfg.latent_dim, cfg.hidden
        self.net("encoder", mlp(64, k, h))
        self.net("generator", nn.Sequential(mlp(k, 64, h, nn.Tanh()), nn.Unflatten(1, (1, 8, 8))))
        self.net("discriminator", JointDiscriminator(k, h))
        self.noise = self.streams.get("noise", device)

    def phases(self) -> list[Phase]:
        return [Phase("discriminator", "discriminator", self.d_step),
                Phase("encoder_generator", ("encoder", "generator"), self.eg_step)]

    def engine_options(self) -> EngineOptions:
        return EngineOptions(stateful={"data": self.data.sampler})

    def pairs(self, e) -> tuple[torch.Tensor, torch.Tensor]:
        """D's logits on a real pair (x, E(x)) and a fake pair (G(z), z)."""
        x, _ = self.data.sampler.next()
        z = torch.randn(len(x), self.cfg.latent_dim, generator=self.noise, device=self.device)
        D = e.model("discriminator")
        return D(x, e.model("encoder")(x.flatten(1))), D(e.model("generator")(z), z)

    def d_step(self, e) -> dict[str, torch.Tensor]:
        real, fake = self.pairs(e)  # E and G frozen: no graph through them
        return {"loss": F.softplus(-real).mean() + F.softplus(fake).mean()}

    def eg_step(self, e) -> dict[str, torch.Tensor]:
        real, fake = self.pairs(e)  # D frozen; E and G learn to swap the labels
        return {"loss": F.softplus(real).mean() + F.softplus(-fake).mean()}

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.cfg.latent_dim, generator=self.streams.fresh("sample")).to(self.device)
        with eval_mode(self.nets["generator"].module) as G:
            return G(z)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean squared error of G(E(x)) on the training digits (pixels in [-1, 1])."""
        with eval_mode(self.nets["encoder"].module) as E, eval_mode(self.nets["generator"].module) as G:
            x = self.data.train
            return {"reconstruction_mse": float(F.mse_loss(G(E(x.flatten(1))), x))}
