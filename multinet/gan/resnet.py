"""The ResNet generator / discriminator of SNGAN (Miyato et al. 2018) and BigGAN's conditional
variants: the common baseline of StudioGAN and Mimicry, at 32×32, 64×64 and 128×128 (any size
that halves down to 4–7 pixels works, e.g. 28×28 MNIST or 8×8 digits).

- Generator: z → linear → (C, s, s) → residual up-blocks (BN, ReLU, nearest ×2, 3×3 conv, BN,
  ReLU, 3×3 conv; 1×1 conv on the upsampled shortcut) → BN, ReLU, 3×3 conv, tanh.
- Discriminator: an "optimised" first block, then residual blocks (ReLU, 3×3 conv, ReLU, 3×3 conv,
  2×2 average pool where the plan says), ReLU, a sum over positions and a linear head; spectral
  norm on every layer (the SNGAN recipe, trained with the hinge loss).
- Channels (``width`` = w, StudioGAN's g_conv_dim / d_conv_dim; ``resnet_widths``): up to three
  up-blocks (32×32 and smaller, CIFAR-style) G keeps 4w channels and D 2w in four blocks of which
  the first two pool (32 → 8), as in SNGAN's CIFAR-10 networks (w = 64: G 256, D 128); from four
  up-blocks on (64×64, 128×128) G halves from 16w down to w and D doubles from w up to 16w,
  pooling in every block but the last, as StudioGAN's and BigGAN's tables for 64 and 128.
- Class-conditional (``classes`` > 0): conditional batch norm in G (per-class gain and bias from
  an embedding, gain initialised at 1) and a projection discriminator (Miyato & Koyama 2018):
  D(x, y) = ψ(φ(x)) + ⟨embed(y), φ(x)⟩.
- Weights: Xavier uniform, gain √2 in the residual paths and 1 on shortcuts, projections and
  heads, as the SNGAN reference code and Mimicry.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

__all__ = ["ResNetGenerator", "ResNetDiscriminator", "resnet_plan", "resnet_widths", "projection_logit"]


def resnet_plan(size: int) -> tuple[int, int]:
    """(start size, number of ×2 blocks) for a square image of side ``size``."""
    for ups in (6, 5, 4, 3, 2, 1):
        if size % 2 ** ups == 0 and 4 <= size // 2 ** ups <= 7:
            return size // 2 ** ups, ups
    raise ValueError(f"ResNet networks need an image side that halves down to 4-7 pixels (8, 28, 32, 64, 128), got {size}")


def resnet_widths(size: int, width: int) -> tuple[list[int], list[int], list[bool]]:
    """(G's channels: the projection's, then each up-block's output; D's blocks' outputs; which D
    blocks pool) for a square image of side ``size`` (module docstring)."""
    _, ups = resnet_plan(size)
    if ups <= 3:  # CIFAR-style
        d_out = [2 * width] * (ups + 1)
        pools = max(1, ups - 1)
        return [4 * width] * (ups + 1), d_out, [i < pools for i in range(ups + 1)]
    g = [width * min(16, 2 ** (ups - i)) for i in range(ups + 1)]  # 16w, 8w, ..., w (128: 16w, 16w, 8w, ...)
    d = [width * min(16, 2 ** i) for i in range(ups + 1)]  # w, 2w, ..., 16w
    return g, d, [i < ups for i in range(ups + 1)]


def _xavier(layer: nn.Module, gain: float) -> nn.Module:
    """Xavier uniform weights (gain √2 in residual paths, 1 on shortcuts, projections and heads, as
    the SNGAN reference code and Mimicry) and zero bias; before spectral norm wraps the layer."""
    nn.init.xavier_uniform_(layer.weight, gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


class ConditionalBatchNorm(nn.Module):
    """BatchNorm without its own affine; gain and bias per class (plain affine BN when classes = 0)."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=classes == 0)
        self.embed = None
        if classes:
            self.embed = nn.Embedding(classes, 2 * channels)
            nn.init.ones_(self.embed.weight[:, :channels])
            nn.init.zeros_(self.embed.weight[:, channels:])

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        h = self.bn(x)
        if self.embed is None:
            return h
        gain, bias = self.embed(y).chunk(2, 1)
        return gain[:, :, None, None] * h + bias[:, :, None, None]


def projection_logit(h: torch.Tensor, head: nn.Module, embed: nn.Module | None, y: torch.Tensor | None,
                     pack: int = 1) -> torch.Tensor:
    """ψ(φ(x)) + ⟨embed(y), φ(x)⟩ on features ``h`` (just ψ(φ(x)) when ``embed`` is None); under
    PacGAN a pack takes its first sample's label."""
    out = head(h).squeeze(1)
    if embed is None:
        return out
    if y is None:
        raise ValueError("a projection discriminator needs labels y")
    return out + (embed(y[::pack]) * h).sum(1)


class GBlock(nn.Module):
    def __init__(self, cin: int, cout: int, classes: int) -> None:
        super().__init__()
        self.bn1, self.bn2 = ConditionalBatchNorm(cin, classes), ConditionalBatchNorm(cout, classes)
        self.conv1 = _xavier(nn.Conv2d(cin, cout, 3, 1, 1), math.sqrt(2))
        self.conv2 = _xavier(nn.Conv2d(cout, cout, 3, 1, 1), math.sqrt(2))
        self.skip = _xavier(nn.Conv2d(cin, cout, 1), 1.0)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.skip(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResNetGenerator(nn.Module):
    def __init__(self, latent_dim: int, shape: list[int] | tuple[int, ...], width: int = 64, classes: int = 0) -> None:
        super().__init__()
        self.init_args = dict(latent_dim=latent_dim, shape=list(shape), width=width, classes=classes)  # for export
        c, size = shape[0], shape[-1]
        self.start, _ = resnet_plan(size)
        chans, _, _ = resnet_widths(size, width)
        self.ch, self.classes = chans[0], classes
        self.project = _xavier(nn.Linear(latent_dim, chans[0] * self.start ** 2), 1.0)
        self.blocks = nn.ModuleList(GBlock(a, b, classes) for a, b in zip(chans, chans[1:]))
        self.out_bn = nn.BatchNorm2d(chans[-1])
        self.out = _xavier(nn.Conv2d(chans[-1], c, 3, 1, 1), 1.0)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.classes and y is None:
            raise ValueError("a class-conditional generator needs labels y")
        h = self.project(z).view(-1, self.ch, self.start, self.start)
        for block in self.blocks:
            h = block(h, y)
        return torch.tanh(self.out(F.relu(self.out_bn(h))))


class DBlock(nn.Module):
    def __init__(self, cin: int, cout: int, down: bool, first: bool = False) -> None:
        super().__init__()
        self.conv1 = _sn(_xavier(nn.Conv2d(cin, cout, 3, 1, 1), math.sqrt(2)))
        self.conv2 = _sn(_xavier(nn.Conv2d(cout, cout, 3, 1, 1), math.sqrt(2)))
        self.skip = _sn(_xavier(nn.Conv2d(cin, cout, 1), 1.0)) if cin != cout or down else None
        self.down, self.first = down, first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.first:  # the optimised block: pool, then the 1×1 projection
            s = self.skip(F.avg_pool2d(x, 2) if self.down else x)
        elif self.skip is not None:
            s = self.skip(x)
            s = F.avg_pool2d(s, 2) if self.down else s
        return h + s


class ResNetDiscriminator(nn.Module):
    def __init__(self, shape: list[int] | tuple[int, ...], width: int = 64, classes: int = 0, pack: int = 1) -> None:
        super().__init__()
        c, size = shape[0], shape[-1]
        _, chans, pools = resnet_widths(size, width)
        self.pack, self.classes = pack, classes
        blocks = [DBlock(c * pack, chans[0], down=True, first=True)]
        blocks += [DBlock(a, b, down=p) for a, b, p in zip(chans, chans[1:], pools[1:])]
        self.blocks = nn.Sequential(*blocks)
        self.head = _sn(_xavier(nn.Linear(chans[-1], 1), 1.0))
        self.embed = _sn(nn.Embedding(classes, chans[-1])) if classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        b = x.shape[0] // self.pack
        h = F.relu(self.blocks(x.reshape(b, -1, *x.shape[2:]))).sum((2, 3))
        return projection_logit(h, self.head, self.embed, y, self.pack)
