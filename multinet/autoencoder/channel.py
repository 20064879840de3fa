"""The channel between encoder and decoder: energy normalisation, then AWGN (optionally fading).

Noise per real dimension follows the convention of O'Shea & Hoydis and Sionna's ``ebnodb2no``:
σ² = 1 / (2 · R · Eb/N0), R = k / n, with every codeword normalised to ‖x‖² = n. Image (JSCC)
systems set the noise by SNR instead: unit average power per real symbol, σ² = 1 / SNR.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from .. import distributed
from ..config import FieldError, within

__all__ = ["ChannelConfig", "Channel", "ebn0_to_sigma", "snr_to_sigma"]


def ebn0_to_sigma(ebn0_db: float | torch.Tensor, rate: float) -> float | torch.Tensor:
    ebn0 = 10 ** (ebn0_db / 10)
    return (1.0 / (2 * rate * ebn0)) ** 0.5


def snr_to_sigma(snr_db: float | torch.Tensor) -> float | torch.Tensor:
    return (10 ** (-snr_db / 10)) ** 0.5


@dataclass
class ChannelConfig:
    """``db`` is Eb/N0 (``level = "ebn0"``) or SNR (``level = "snr"``); with ``db_max`` > ``db``
    each example draws its level uniformly from [db, db_max]. With ``db_end`` the level is
    scheduled: it moves linearly from ``db`` to ``db_end`` over the phases that train on this
    channel (a ``db_max`` range moves with it)."""

    level: Literal["ebn0", "snr"] = "ebn0"
    db: float = 7.0
    db_max: float | None = None
    db_end: float | None = None
    normalization: Literal["codeword", "batch"] = "codeword"
    fading: Literal["none", "rayleigh"] = "none"
    eval_db: list[float] = field(default_factory=lambda: [0.0, 2.0, 4.0, 6.0, 7.0, 8.0])

    def __post_init__(self) -> None:
        # Beyond about ±60 dB the noise is numerically zero or swamps everything: a typo, not a study.
        within(self, "db", "db_max", "db_end", low=-60, high=60, note=" dB")
        for i, db in enumerate(self.eval_db):
            if not -60 <= db <= 60:
                raise FieldError(f"eval_db[{i}]", f"must be in [-60, 60] dB, got {db}")


class Channel:
    """Normalise, then add noise (and block fading) with the channel's own seeded generator."""

    def __init__(self, cfg: ChannelConfig, n: int, k: int, gen: torch.Generator) -> None:
        self.cfg, self.n, self.rate = cfg, n, k / n
        self.gen = gen  # a named stream of the system's registry (checkpointed with the run)
        self.progress = 0.0  # through the phases training on this channel, for a scheduled level

    def level(self) -> tuple[float, float | None]:
        """The training level now: (low, high or None)."""
        shift = 0.0 if self.cfg.db_end is None else (self.cfg.db_end - self.cfg.db) * self.progress
        high = None if self.cfg.db_max is None or self.cfg.db_max <= self.cfg.db else self.cfg.db_max + shift
        return self.cfg.db + shift, high

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if self.cfg.normalization == "codeword":  # every codeword has ‖x‖² = n exactly
            return x * (self.n ** 0.5) / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return x * (self.n / x.pow(2).sum(1).mean().clamp_min(1e-12)) ** 0.5  # average over the batch

    def sigma(self, db: float | torch.Tensor) -> float | torch.Tensor:
        return ebn0_to_sigma(db, self.rate) if self.cfg.level == "ebn0" else snr_to_sigma(db)

    def __call__(self, x: torch.Tensor, db: float | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """x: normalised (B, n) symbols. ``db`` fixes the level; otherwise the config's (range).

        Training draws from the channel's own generator, this rank's rows of a global draw (see
        ``multinet.distributed``); evaluation passes its own ``generator`` and leaves it untouched.
        """
        b = x.shape[0]
        gen = self.gen if generator is None else generator
        rand, randn = (distributed.rand, distributed.randn) if generator is None else (torch.rand, torch.randn)

        def draw(fn, *shape, dtype=None):
            return fn(b, *shape, generator=gen, device=x.device, dtype=dtype)
        low, high = self.level()
        if db is None and high is not None:
            sigma = self.sigma(low + (high - low) * draw(rand, 1))
        else:
            sigma = self.sigma(low if db is None else db)
        if self.cfg.fading == "rayleigh":  # one real gain per block, E[h²] = 1, unknown to the receiver
            x = draw(randn, 2).pow(2).sum(1, keepdim=True).div(2).sqrt() * x
        return x + sigma * draw(randn, *x.shape[1:], dtype=x.dtype)

    def describe(self) -> str:
        lvl = f"{self.cfg.db:g}" + (f"..{self.cfg.db_max:g}" if self.cfg.db_max is not None else "") + \
            (f" -> {self.cfg.db_end:g}" if self.cfg.db_end is not None else "")
        return f"{'Eb/N0' if self.cfg.level == 'ebn0' else 'SNR'} {lvl} dB" + \
            (", Rayleigh block fading" if self.cfg.fading == "rayleigh" else "")
