"""The ResNet generator / discriminator of SNGAN (Miyato et al. 2018) and BigGAN's conditional
variants: the common baseline of StudioGAN and Mimicry, at 32×32 and 64×64 (any size that halves
down to 4–7 pixels works, e.g. 28×28 MNIST or 8×8 digits).

- Generator: z → linear → (C, s, s) → ``ups`` residual up-blocks (BN, ReLU, nearest ×2, 3×3 conv,
  BN, ReLU, 3×3 conv; 1×1 conv on the upsampled shortcut) → BN, ReLU, 3×3 conv, tanh. Channels
  start at ``width · 2^(ups−1)`` and halve per block.
- Discriminator: an "optimised" first block, then ``ups`` residual down-blocks (ReLU, 3×3 conv,
  ReLU, 3×3 conv, 2×2 average pool), ReLU, a sum over positions and a linear head; spectral norm on
  every layer (the SNGAN recipe, trained with the hinge loss).
- Class-conditional (``classes`` > 0): conditional batch norm in G (per-class gain and bias from
  an embedding, gain initialised at 1) and a projection discriminator (Miyato & Koyama 2018):
  D(x, y) = ψ(φ(x)) + ⟨embed(y), φ(x)⟩.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

__all__ = ["ResNetGenerator", "ResNetDiscriminator", "resnet_plan", "projection_logit"]


def resnet_plan(size: int) -> tuple[int, int]:
    """(start size, number of ×2 blocks) for a square image of side ``size``."""
    for ups in (4, 3, 2, 1):
        if size % 2 ** ups == 0 and 4 <= size // 2 ** ups <= 7:
            return size // 2 ** ups, ups
    raise ValueError(f"ResNet networks need an image side that halves down to 4-7 pixels (8, 28, 32, 64), got {size}")


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
        self.conv1, self.conv2 = nn.Conv2d(cin, cout, 3, 1, 1), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.skip(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ResNetGenerator(nn.Module):
    def __init__(self, latent_dim: int, shape: list[int] | tuple[int, ...], width: int = 64, classes: int = 0) -> None:
        super().__init__()
        self.init_args = dict(latent_dim=latent_dim, shape=list(shape), width=width, classes=classes)  # for export
        c, size = shape[0], shape[-1]
        self.start, ups = resnet_plan(size)
        ch = width * 2 ** (ups - 1)
        self.ch, self.classes = ch, classes
        self.project = nn.Linear(latent_dim, ch * self.start ** 2)
        self.blocks = nn.ModuleList()
        for _ in range(ups):
            self.blocks.append(GBlock(ch, max(ch // 2, width // 2), classes))
            ch = max(ch // 2, width // 2)
        self.out_bn = nn.BatchNorm2d(ch)
        self.out = nn.Conv2d(ch, c, 3, 1, 1)
        for m in self.modules():  # Xavier, as the SNGAN / BigGAN reference code
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight, 1.0 if m.weight.shape[-1] == 1 else math.sqrt(2))
                nn.init.zeros_(m.bias)

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
        self.conv1, self.conv2 = _sn(nn.Conv2d(cin, cout, 3, 1, 1)), _sn(nn.Conv2d(cout, cout, 3, 1, 1))
        self.skip = _sn(nn.Conv2d(cin, cout, 1)) if cin != cout or down else None
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
        _, downs = resnet_plan(size)
        self.pack, self.classes = pack, classes
        chans = [min(width * 2 ** i, width * 8) for i in range(downs + 1)]
        blocks = [DBlock(c * pack, chans[0], down=True, first=True)]
        blocks += [DBlock(a, b, down=True) for a, b in zip(chans[:downs - 1], chans[1:downs])]
        blocks.append(DBlock(chans[downs - 1], chans[downs], down=False))
        self.blocks = nn.Sequential(*blocks)
        self.head = _sn(nn.Linear(chans[downs], 1))
        self.embed = _sn(nn.Embedding(classes, chans[downs])) if classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        b = x.shape[0] // self.pack
        h = F.relu(self.blocks(x.reshape(b, -1, *x.shape[2:]))).sum((2, 3))
        return projection_logit(h, self.head, self.embed, y, self.pack)
