"""Differentiable augmentation (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient
GAN Training"): the same random colour / translation / cutout applied to real and generated images
before the discriminator sees them, in D's and in G's step, so D cannot memorise a small training
set (the 1,797 bundled digits) and G still gets gradients through the augmentation.

Policies (comma-separated in ``gan.diffaugment``): ``color`` (brightness ±0.5, saturation ×[0, 2],
contrast ×[0.5, 1.5]), ``translation`` (integer shifts up to 1/8 of the side, zero padding),
``cutout`` (a zeroed square of half the side). Draws come from the run's ``gan.augment`` stream,
so a resumed run augments exactly as an uninterrupted one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["augment", "POLICIES"]

POLICIES = ("color", "translation", "cutout")


def _rand(x: torch.Tensor, gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(x.shape[0], *shape, generator=gen, device=gen.device).to(x.device, x.dtype)


def _color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    x = x + (_rand(x, gen, 1, 1, 1) - 0.5)
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (_rand(x, gen, 1, 1, 1) * 2) + mean
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(x, gen, 1, 1, 1) + 0.5) + mean


def _translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sh, sw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    dy = (_rand(x, gen, 1) * (2 * sh + 1)).long().clamp_max(2 * sh) - sh
    dx = (_rand(x, gen, 1) * (2 * sw + 1)).long().clamp_max(2 * sw) - sw
    ys = (torch.arange(h, device=x.device)[None, :] + dy).clamp(-1, h)  # (B, H), out of range -> padding
    xs = (torch.arange(w, device=x.device)[None, :] + dx).clamp(-1, w)
    padded = F.pad(x, (1, 1, 1, 1))
    idx_y = (ys + 1)[:, None, :, None].expand(b, x.shape[1], h, w + 2)
    rows = padded.gather(2, idx_y)
    idx_x = (xs + 1)[:, None, None, :].expand(b, x.shape[1], h, w)
    return rows.gather(3, idx_x)


def _cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    cy = (_rand(x, gen, 1) * (h + (1 - ch % 2))).long()
    cx = (_rand(x, gen, 1) * (w + (1 - cw % 2))).long()
    ys, xs = torch.arange(h, device=x.device)[None, :], torch.arange(w, device=x.device)[None, :]
    in_y = ((ys >= cy - ch // 2) & (ys < cy - ch // 2 + ch)).to(x.dtype)  # (B, H)
    in_x = ((xs >= cx - cw // 2) & (xs < cx - cw // 2 + cw)).to(x.dtype)
    mask = 1 - in_y[:, :, None] * in_x[:, None, :]
    return x * mask[:, None]


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def augment(x: torch.Tensor, policy: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    """``x`` (N, C, H, W) through each policy in turn, differentiably."""
    for name in policy:
        x = _OPS[name](x, gen)
    return x.contiguous()
