"""GAN losses on logits, and the gradient penalties (WGAN-GP, R1)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .. import distributed

__all__ = ["d_loss", "g_loss", "gradient_penalty", "r1_penalty", "LOSSES"]

LOSSES = ("bce", "hinge", "wgan-gp", "lsgan")


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss on its logits for real and fake samples, for loss ``kind`` (``LOSSES``)."""
    if kind == "bce":  # -log σ(real) - log(1 - σ(fake))
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    if kind == "lsgan":
        return 0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake ** 2).mean()
    raise ValueError(f"gan.loss {kind!r} unknown (valid: {', '.join(LOSSES)})")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss on D's logits for its samples, for loss ``kind`` (non-saturating for bce)."""
    if kind == "bce":  # non-saturating: -log σ(fake)
        return F.softplus(-fake).mean()
    if kind in ("hinge", "wgan-gp"):
        return -fake.mean()
    if kind == "lsgan":
        return 0.5 * ((fake - 1) ** 2).mean()
    raise ValueError(f"gan.loss {kind!r} unknown (valid: {', '.join(LOSSES)})")


def gradient_penalty(d: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP: (‖∇D(x̂)‖ − 1)² on random interpolates x̂."""
    shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    eps = distributed.rand(*shape, device=real.device, generator=generator, dtype=real.dtype)
    x = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(d: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """R1 (Mescheder et al. 2018): ‖∇D(real)‖², returned with D(real)."""
    x = real.detach().requires_grad_(True)
    out = d(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean(), out
