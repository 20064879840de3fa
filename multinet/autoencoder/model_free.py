"""Model-free training of the transmitter (Aoudia & Hoydis 2018, TARGETS.md §6).

The channel need not be differentiable, or even known: the receiver trains supervised on what
arrives, and the transmitter learns by policy gradient. Its output x is perturbed,

    x_p = √(1 − σ²) · x + σ · w,   w ~ N(0, I)     (the energy stays E‖x‖² on average),

x_p goes through the channel and the receiver, and the receiver's per-example loss l rates it.
Since x_p ~ π(· | x) = N(√(1 − σ²) x, σ² I), the gradient of E[l] with respect to the
transmitter's weights is E[l · ∇ log π(x_p | x)]; the surrogate below has that gradient, with the
batch's mean loss subtracted as a baseline (it lowers the variance and leaves the mean alone up to
O(1/B)). Nothing differentiates through the channel or the receiver.
"""
from __future__ import annotations

import torch

__all__ = ["perturb", "log_policy", "policy_loss"]


def perturb(x: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    """A draw x_p of the exploration policy around x (no gradient)."""
    w = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return (1 - sigma ** 2) ** 0.5 * x.detach() + sigma * w


def log_policy(xp: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """log π(x_p | x) per example, up to a constant; differentiable in x."""
    return -(xp.detach() - (1 - sigma ** 2) ** 0.5 * x).pow(2).flatten(1).sum(1) / (2 * sigma ** 2)


def policy_loss(x: torch.Tensor, xp: torch.Tensor, per_example: torch.Tensor, sigma: float) -> torch.Tensor:
    """The surrogate whose gradient is the policy gradient of the mean of ``per_example``."""
    advantage = (per_example - per_example.mean()).detach()
    return (advantage * log_policy(xp, x, sigma)).mean()
