"""Transmitter and receiver networks.

Bit systems (the setting of Sionna's end-to-end tutorial) learn a constellation of 2^m points in
the I/Q plane and a neural demapper that turns each received symbol into m bit LLRs.
Message systems follow seed 002 (``InputNum → 128 → OutputBit`` with LeakyReLU and its mirror):
the encoder maps a one-hot message of M = 2^k to n real channel uses; the decoder maps n
received values to M logits. Image systems are MLPs over the flattened image.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable

import torch
from torch import nn

__all__ = ["MessageEncoder", "MessageDecoder", "ImageEncoder", "ImageDecoder", "Constellation", "NeuralDemapper",
           "gray_qam", "bit_labels"]


class MessageEncoder(nn.Module):
    """Message index (of ``m``) -> ``n`` real channel inputs: an embedding-like linear layer, an
    activation, a linear layer."""

    def __init__(self, m: int, n: int, hidden: int = 128) -> None:
        super().__init__()
        self.init_args = dict(m=m, n=n, hidden=hidden)  # for export
        self.m = m
        self.fc1 = nn.Linear(m, hidden)
        self.act = nn.LeakyReLU()
        self.fc2 = nn.Linear(hidden, n)

    def forward(self, msg: torch.Tensor) -> torch.Tensor:
        if msg.is_cuda:  # a one-hot matmul: deterministic, unlike the atomics of a CUDA gather's backward
            h = self.fc1(torch.nn.functional.one_hot(msg, self.m).to(self.fc1.weight.dtype))
        else:
            # fc1 on a one-hot vector is a column lookup: the same numbers without the M-wide matmul.
            # index_select, not advanced indexing: its CPU backward is deterministic across threads.
            h = self.fc1.weight.t().index_select(0, msg) + self.fc1.bias
        return self.fc2(self.act(h))

    def codebook(self) -> torch.Tensor:
        return self(torch.arange(self.m, device=self.fc1.weight.device))


class MessageDecoder(nn.Module):
    """``n`` received values -> ``m`` message logits: Linear, LeakyReLU, Linear."""

    def __init__(self, m: int, n: int, hidden: int = 128) -> None:
        super().__init__()
        self.init_args = dict(m=m, n=n, hidden=hidden)  # for export
        # in-place activation: one fewer hidden-sized tensor per call (the BLER sweeps' hot path)
        self.net = nn.Sequential(OrderedDict([("fc1", nn.Linear(n, hidden)), ("act", nn.LeakyReLU(inplace=True)),
                                              ("fc2", nn.Linear(hidden, m))]))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)

    def augmented(self, rows: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """The same scores for blocks given with a constant-1 last column (the BLER sweeps' CPU
        path): the first bias rides in the matmul, no per-call allocations. A snapshot of the
        current weights; no autograd."""
        fc1, fc2, slope = self.net.fc1, self.net.fc2, self.net.act.negative_slope
        w1 = torch.cat([fc1.weight.t(), fc1.bias[None]]).detach().contiguous()
        w2, b2 = fc2.weight.t().detach().contiguous(), fc2.bias.detach()
        h, out = w1.new_empty(rows, w1.shape[1]), w1.new_empty(rows, w2.shape[1])

        def score(y: torch.Tensor) -> torch.Tensor:
            r = len(y)
            torch.nn.functional.leaky_relu_(torch.mm(y, w1, out=h[:r]), slope)
            return torch.addmm(b2, h[:r], w2, out=out[:r])
        return score


class ImageEncoder(nn.Module):
    """An image of ``shape`` -> ``n`` real channel inputs (deep JSCC): Linear, LeakyReLU, Linear."""

    def __init__(self, shape: tuple[int, ...], n: int, hidden: int = 256) -> None:
        super().__init__()
        self.init_args = dict(shape=list(shape), n=n, hidden=hidden)  # for export
        self.net = nn.Sequential(OrderedDict([("fc1", nn.Linear(math.prod(shape), hidden)), ("act", nn.LeakyReLU()),
                                              ("fc2", nn.Linear(hidden, n))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class ImageDecoder(nn.Module):
    """``n`` received values -> an image of ``shape`` in [-1, 1]: Linear, LeakyReLU, Linear, Tanh."""

    def __init__(self, shape: tuple[int, ...], n: int, hidden: int = 256) -> None:
        super().__init__()
        self.init_args = dict(shape=list(shape), n=n, hidden=hidden)  # for export
        self.shape = shape
        self.net = nn.Sequential(OrderedDict([("fc1", nn.Linear(n, hidden)), ("act", nn.LeakyReLU()),
                                              ("fc2", nn.Linear(hidden, math.prod(shape))), ("tanh", nn.Tanh())]))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y).view(-1, *self.shape)


def bit_labels(m: int) -> torch.Tensor:
    """The m bits of every symbol index, most significant first: (2^m, m) in {0, 1}."""
    return ((torch.arange(2 ** m)[:, None] >> torch.arange(m - 1, -1, -1)) & 1).float()


def gray_qam(m: int) -> torch.Tensor:
    """Gray-labelled square QAM (PAM per axis: the first ceil(m/2) bits pick I, the rest Q)
    as (2^m, 2) real points, unit average energy per complex symbol."""
    mi, mq = (m + 1) // 2, m // 2

    def pam(bits: int) -> torch.Tensor:  # Gray label g -> amplitude, g = i ^ (i >> 1)
        n = 2 ** bits
        amp = torch.empty(n)
        for i in range(n):
            amp[i ^ (i >> 1)] = 2 * i - n + 1
        return amp
    idx = torch.arange(2 ** m)
    pts = torch.stack([pam(mi)[idx >> mq], pam(mq)[idx & (2 ** mq - 1)] if mq else torch.zeros(2 ** m)], 1)
    return pts / pts.pow(2).sum(1).mean().sqrt()


class Constellation(nn.Module):
    """2^m trainable points in the I/Q plane, centred and scaled so the average energy per real
    dimension is 1 (‖x‖² = 2 on average, the channel's convention for one complex use)."""

    def __init__(self, m: int, init: str = "qam") -> None:
        super().__init__()
        self.init_args = dict(m=m, init=init)  # for export
        self.m = m
        start = gray_qam(m) if init == "qam" else torch.randn(2 ** m, 2)
        self.points = nn.Parameter(start.clone())

    def normalized(self) -> torch.Tensor:
        p = self.points - self.points.mean(0)
        return p * (2.0 / p.pow(2).sum(1).mean().clamp_min(1e-12)).sqrt()

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.normalized().index_select(0, idx)

    def codebook(self) -> torch.Tensor:
        return self.normalized()


class NeuralDemapper(nn.Module):
    """Received values (2 per complex use, or more over a fading channel) -> m bit logits, which
    are LLRs ln p(b=1)/p(b=0) in Sionna's sign convention."""

    def __init__(self, inputs: int, m: int, hidden: int = 128) -> None:
        super().__init__()
        self.init_args = dict(inputs=inputs, m=m, hidden=hidden)  # for export
        self.net = nn.Sequential(OrderedDict([("fc1", nn.Linear(inputs, hidden)), ("act1", nn.ReLU()),
                                              ("fc2", nn.Linear(hidden, hidden)), ("act2", nn.ReLU()),
                                              ("fc3", nn.Linear(hidden, m))]))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)
