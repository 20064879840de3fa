"""Drawing from a trained generator: plain samples, discriminator rejection sampling (DRS), and the
fresh critic that DRS can read instead of the trained discriminator.

All of it runs the networks in eval mode under ``no_grad`` with private, seeded random streams,
so it never moves a training stream or a batch-norm statistic.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..nets.freeze import eval_mode
from .losses import d_loss
from .networks import MLPDiscriminator

__all__ = ["generate", "rejection_sample", "fit_critic"]


@torch.no_grad()
def generate(G: nn.Module, z: torch.Tensor, chunk: int = 1000, labels: torch.Tensor | None = None) -> torch.Tensor:
    """``G(z)`` (``G(z, labels)`` for a class-conditional G) in eval mode, in chunks, as float32."""
    with eval_mode(G):
        if labels is None:
            return torch.cat([G(z[i:i + chunk]).float() for i in range(0, len(z), chunk)])
        return torch.cat([G(z[i:i + chunk], labels[i:i + chunk]).float() for i in range(0, len(z), chunk)])


@torch.no_grad()
def rejection_sample(G: nn.Module, D: nn.Module, latent_dim: int, n: int, gen: torch.Generator,
                     device: torch.device, pack: int = 1, shift: float = 0.0, quantile: float = 1.0,
                     burn_in: int = 10000, max_candidates: int = 0) -> tuple[torch.Tensor, float]:
    """``n`` samples by discriminator rejection sampling (Azadi et al. 2019), and the share of
    candidates accepted.

    A candidate x is kept with probability σ(F), F = D(x) − D* − log(1 − exp(D(x) − D* − ε)) − γ,
    where D* is the largest logit seen so far (first over ``burn_in`` candidates; or, with
    ``quantile`` < 1, that quantile of the first candidates' logits, D(x) above it counting as
    D*) and γ = ``shift``: under an optimal D this accepts with probability p_data(x) / (M p_g(x)).
    Under PacGAN (``pack`` > 1) the discriminator judges packs, so whole packs are kept or dropped
    (the pack's density ratio is the product of its members'). Seeded by ``gen``.
    """
    chunk = max(pack, 4096 // pack * pack)
    max_candidates = max_candidates or 1000 * n
    with eval_mode(G), eval_mode(D):
        def draw(m: int) -> tuple[torch.Tensor, torch.Tensor]:
            x = G(torch.randn(m, latent_dim, generator=gen).to(device)).float()
            return x, D(x).flatten().double()

        if quantile < 1:
            burn_in = max(burn_in, math.ceil(50 / (1 - quantile)))
        first = torch.cat([draw(chunk)[1] for _ in range(max(1, burn_in // chunk))])
        d_max = float(first.max() if quantile >= 1 else torch.quantile(first, quantile))
        kept: list[torch.Tensor] = []
        have = seen = 0
        while have < n:
            if seen >= max_candidates:
                raise RuntimeError(f"rejection sampling kept {have} of {n} samples after {seen} candidates "
                                   f"(acceptance {have / seen:.2e}); lower eval.drs_shift or eval.drs_quantile")
            x, logit = draw(chunk)
            if quantile >= 1:
                d_max = max(d_max, float(logit.max()))
            r = (logit - d_max).clamp(max=0.0)
            f = r - torch.log1p(-torch.exp(r - 1e-6)) - shift
            accept = torch.rand(len(f), generator=gen, dtype=torch.float64).to(f.device) < torch.sigmoid(f)
            x = x.view(-1, pack, *x.shape[1:])[accept].flatten(0, 1)
            kept.append(x)
            have += len(x)
            seen += chunk
    return torch.cat(kept)[:n], have / seen


def fit_critic(G: nn.Module, real_batch: Callable[[int, torch.Generator], torch.Tensor], shape: tuple[int, ...],
               latent_dim: int, steps: int, batch: int, fourier: int, scales: tuple[float, ...],
               init_seed: int, gen: torch.Generator, device: torch.device) -> nn.Module:
    """A fresh critic fitted to ``G`` as it is (``G`` fixed): an MLP 256 × 2 over ``fourier``
    random Fourier features at ``scales``, Adam 1e-3 with cosine decay, BCE on batches of
    ``batch`` real (``real_batch(n, gen)``) and as many generated samples.

    Seeded and free of side effects on training: its own streams, the global RNG restored.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(init_seed)
        critic = MLPDiscriminator(shape, 256, 2, fourier=fourier, fourier_scales=scales).to(device)
    opt = torch.optim.Adam(critic.parameters(), 1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    with eval_mode(G), torch.enable_grad():
        for _ in range(steps):
            with torch.no_grad():
                fake = G(torch.randn(batch, latent_dim, generator=gen).to(device)).float()
            logits = critic(torch.cat([real_batch(batch, gen).float(), fake]))
            loss = d_loss("bce", logits[:batch], logits[batch:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return critic.eval().requires_grad_(False)
