"""GAN networks: the seeds' MLP pair, DCGAN-style conv pairs (28×28, 32×32), small 2-D MLPs; the
SNGAN / BigGAN ResNet pair lives in ``resnet``.

Discriminators return logits (no Sigmoid): losses use softplus / BCE-with-logits. ``pack`` > 1
makes a PacGAN discriminator that judges ``pack`` samples jointly; ``spectral_norm`` wraps every
conv / linear layer of D.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

from .resnet import ConditionalBatchNorm, projection_logit

if TYPE_CHECKING:
    from .recipe import ModelConfig

__all__ = ["MLPGenerator", "MLPDiscriminator", "Maxout", "FourierFeatures", "DCGANGenerator", "DCGANDiscriminator", "build_pair"]


def _with_label(z: torch.Tensor, embed: nn.Module, y: torch.Tensor | None) -> torch.Tensor:
    """[z, embed(y)]: a class-conditional generator's input."""
    if y is None:
        raise ValueError("a class-conditional generator needs labels y")
    return torch.cat([z, embed(y)], 1)


def _projection_embedding(classes: int, dim: int, wrap) -> nn.Module:
    """The projection discriminator's class embedding, N(0, 0.02²) as the rest of D, initialised
    before spectral norm (``wrap``) takes it over (then ``.weight`` is recomputed on each access)."""
    embed = nn.Embedding(classes, dim)
    nn.init.normal_(embed.weight, std=0.02)
    return wrap(embed)


class MLPGenerator(nn.Module):
    """latent → hidden (× layers, [BatchNorm,] ReLU) → prod(shape), Tanh for images (none for 2-D points).

    ``classes`` > 0 makes it class-conditional as in Mirza & Osindero's MLP cGAN: a learned
    embedding of the label, of the latent's size, is concatenated to z."""

    def __init__(self, latent_dim: int, shape: tuple[int, ...], hidden: int = 256, layers: int = 2,
                 tanh: bool = True, batch_norm: bool = False, classes: int = 0) -> None:
        super().__init__()
        self.init_args = dict(latent_dim=latent_dim, shape=list(shape), hidden=hidden, layers=layers, tanh=tanh,
                              batch_norm=batch_norm, classes=classes)  # for export
        self.shape = shape
        self.embed = nn.Embedding(classes, latent_dim) if classes else None
        dims = [latent_dim * (2 if classes else 1)] + [hidden] * layers
        blocks: list[tuple[str, nn.Module]] = []
        for i in range(layers):
            blocks.append((f"fc{i + 1}", nn.Linear(dims[i], dims[i + 1], bias=not batch_norm)))
            if batch_norm:
                blocks.append((f"bn{i + 1}", nn.BatchNorm1d(dims[i + 1])))
            blocks.append((f"act{i + 1}", nn.ReLU(True)))
        blocks.append(("out", nn.Linear(hidden, math.prod(shape))))
        if tanh:
            blocks.append(("tanh", nn.Tanh()))
        self.net = nn.Sequential(OrderedDict(blocks))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = _with_label(z, self.embed, y)
        return self.net(z).view(-1, *self.shape)


class Maxout(nn.Module):
    """The largest of ``pieces`` consecutive features (a linear layer of ``pieces`` × width before it)."""

    def __init__(self, pieces: int) -> None:
        super().__init__()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (-1, self.pieces)).amax(-1)


class FourierFeatures(nn.Module):
    """x → [x, sin 2πxB, cos 2πxB] with fixed random frequencies B (Tancik et al. 2020).

    Column j of B is drawn from N(0, scales[j mod len(scales)]²), in cycles per unit of x: an MLP
    on these features resolves detail as fine as 1 / (the largest scale), which an MLP on raw
    low-dimensional coordinates learns only slowly. B is a buffer, saved with the weights.
    """

    def __init__(self, dim: int, features: int, scales: tuple[float, ...]) -> None:
        super().__init__()
        if not scales:
            raise ValueError("Fourier features need at least one frequency scale")
        s = torch.tensor([scales[j % len(scales)] for j in range(features)], dtype=torch.float32)
        self.register_buffer("B", torch.randn(dim, features) * s)
        self.out_dim = dim + 2 * features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = (2 * math.pi) * (x @ self.B)
        return torch.cat([x, p.sin(), p.cos()], -1)


class MLPDiscriminator(nn.Module):
    """prod(shape)·pack → hidden (× layers, LeakyReLU 0.2 or maxout) → 1 logit.

    ``maxout`` > 1 uses maxout units of that many pieces instead of LeakyReLU (the PacGAN /
    VEEGAN 2-D discriminators: 5 pieces). ``fourier`` > 0 first maps each sample to that many
    random Fourier features per sin / cos at frequency ``fourier_scales`` (see ``FourierFeatures``).
    ``classes`` > 0 adds a projection term ⟨embed(y), φ(x)⟩ on the last hidden features (Miyato &
    Koyama 2018), as the conv discriminators do.
    """

    def __init__(self, shape: tuple[int, ...], hidden: int = 256, layers: int = 2, pack: int = 1,
                 spectral_norm: bool = False, maxout: int = 0, fourier: int = 0,
                 fourier_scales: tuple[float, ...] = (), classes: int = 0) -> None:
        super().__init__()
        self.pack = pack
        wrap = _sn if spectral_norm else (lambda m: m)
        k = maxout if maxout > 1 else 1
        self.fourier = FourierFeatures(math.prod(shape), fourier, tuple(fourier_scales)) if fourier else None
        dims = [(self.fourier.out_dim if self.fourier else math.prod(shape)) * pack] + [hidden] * layers
        blocks: list[tuple[str, nn.Module]] = []
        for i in range(layers):
            blocks += [(f"fc{i + 1}", wrap(nn.Linear(dims[i], dims[i + 1] * k))),
                       (f"act{i + 1}", Maxout(k) if k > 1 else nn.LeakyReLU(0.2, True))]
        blocks.append(("out", wrap(nn.Linear(hidden, 1))))
        self.net = nn.Sequential(OrderedDict(blocks))
        self.embed = _projection_embedding(classes, hidden, wrap) if classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.fourier is not None:
            x = self.fourier(x.reshape(x.shape[0], -1))
        x = x.reshape(x.shape[0] // self.pack, -1)
        if self.embed is None:
            return self.net(x).squeeze(1)
        *body, head = self.net  # the last hidden features φ(x), then the logit head
        for layer in body:
            x = layer(x)
        return projection_logit(x, head, self.embed, y, self.pack)


def _plan(size: int) -> tuple[int, int]:
    for ups in (3, 2):
        if size % (2 ** ups) == 0 and size // 2 ** ups >= 3:
            return size // 2 ** ups, ups
    raise ValueError(f"DCGAN networks need an image size divisible by 4 (28, 32, 64), got {size}")


class DCGANGenerator(nn.Module):
    """z → linear → (C, s, s) → transposed-conv ×2 blocks (BN, ReLU) → tanh image.

    ``classes`` > 0 makes it class-conditional: the label's embedding is concatenated to z and the
    conv blocks' batch norms take per-class gain and bias (conditional BN, as the ResNet pair)."""

    def __init__(self, latent_dim: int, shape: tuple[int, ...], width: int = 64, classes: int = 0) -> None:
        super().__init__()
        self.init_args = dict(latent_dim=latent_dim, shape=list(shape), width=width, classes=classes)  # for export
        c, size = shape[0], shape[-1]
        start, ups = _plan(size)
        ch = width * 2 ** (ups - 1)
        self.start, self.ch, self.classes = start, ch, classes
        self.embed = nn.Embedding(classes, latent_dim) if classes else None
        self.project = nn.Sequential(nn.Linear(latent_dim * (2 if classes else 1), ch * start * start, bias=False),
                                     nn.BatchNorm1d(ch * start * start), nn.ReLU(True))
        blocks: list[nn.Module] = []
        for _ in range(ups - 1):
            norm = ConditionalBatchNorm(ch // 2, classes) if classes else nn.BatchNorm2d(ch // 2)
            blocks += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), norm, nn.ReLU(True)]
            ch //= 2
        blocks += [nn.ConvTranspose2d(ch, c, 4, 2, 1), nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is None:
            return self.blocks(self.project(z).view(-1, self.ch, self.start, self.start))
        h = self.project(_with_label(z, self.embed, y)).view(-1, self.ch, self.start, self.start)
        for layer in self.blocks:
            h = layer(h, y) if isinstance(layer, ConditionalBatchNorm) else layer(h)
        return h


class DCGANDiscriminator(nn.Module):
    """Strided convs (LeakyReLU 0.2; BN, or spectral norm on every layer) → linear logit.

    ``classes`` > 0 adds a projection term ⟨embed(y), φ(x)⟩ on the flattened features (Miyato &
    Koyama 2018)."""

    def __init__(self, shape: tuple[int, ...], width: int = 64, pack: int = 1, spectral_norm: bool = False,
                 classes: int = 0) -> None:
        super().__init__()
        c, size = shape[0], shape[-1]
        start, ups = _plan(size)
        self.pack = pack
        wrap = _sn if spectral_norm else (lambda m: m)
        blocks: list[nn.Module] = [wrap(nn.Conv2d(c * pack, width, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        ch = width
        for _ in range(ups - 1):
            blocks.append(wrap(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=spectral_norm)))
            if not spectral_norm:
                blocks.append(nn.BatchNorm2d(ch * 2))
            blocks.append(nn.LeakyReLU(0.2, True))
            ch *= 2
        self.blocks = nn.Sequential(*blocks)
        self.head = wrap(nn.Linear(ch * start * start, 1))
        self.embed = _projection_embedding(classes, ch * start * start, wrap) if classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        b = x.shape[0] // self.pack
        return projection_logit(self.blocks(x.reshape(b, -1, *x.shape[2:])).flatten(1), self.head, self.embed, y,
                                self.pack)


def build_pair(model: "ModelConfig", shape: tuple[int, ...], classes: int = 0) -> tuple[nn.Module, nn.Module]:
    """The generator and discriminator ``[model]`` describes, for data of ``shape`` (``classes`` > 0:
    class-conditional). ``d_hidden`` / ``d_layers`` of 0 mean the same as the generator's."""
    m, arch, latent_dim, width, pack = model, model.arch, model.latent_dim, model.width, model.pack
    if arch == "mlp":
        points = len(shape) == 1
        return (MLPGenerator(latent_dim, shape, m.hidden, m.layers, tanh=not points, batch_norm=m.g_batch_norm,
                             classes=classes),
                MLPDiscriminator(shape, m.d_hidden or m.hidden, m.d_layers or m.layers, pack, m.spectral_norm,
                                 m.d_maxout, m.d_fourier, m.d_fourier_scales, classes))
    if arch == "dcgan":
        return (DCGANGenerator(latent_dim, shape, width, classes),
                DCGANDiscriminator(shape, width, pack, m.spectral_norm, classes))
    if arch == "resnet":
        from .resnet import ResNetDiscriminator, ResNetGenerator
        return ResNetGenerator(latent_dim, shape, width, classes), ResNetDiscriminator(shape, width, classes, pack)
    raise ValueError(f"model.arch {arch!r} unknown (valid: mlp, dcgan, resnet)")
