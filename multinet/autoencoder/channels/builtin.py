"""The channel between encoder and decoder: energy normalisation, then noise (optionally fading).

Noise per real dimension follows the convention of O'Shea & Hoydis and Sionna's ``ebnodb2no``:
σ² = 1 / (2 · R · Eb/N0), R = k / n bits per real channel use, with every codeword normalised to
‖x‖² = n. Image (JSCC) systems set the noise by SNR instead: unit average power per real symbol,
σ² = 1 / SNR. ``model`` picks who draws the noise: the built-in AWGN / Rayleigh block fading
below, or any Sionna channel block (``channels.sionna_blocks``; the optional extra). A receiver front end
can quantise what arrives (``quantize_bits``): its gradient is zero almost everywhere, which is
what model-free training is for.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from ... import distributed
from ...config import FieldError, key, within

__all__ = ["ChannelConfig", "Channel", "ebn0_to_sigma", "snr_to_sigma", "quantize", "SIONNA_MODELS"]

# The Sionna blocks a recipe can name (``model = "sionna.<Name>"``); see ``channels.sionna_blocks``.
SIONNA_MODELS = ("AWGN", "FlatFadingChannel", "RayleighBlockFading", "TDL")


def ebn0_to_sigma(ebn0_db: float | torch.Tensor, rate: float) -> float | torch.Tensor:
    """Noise standard deviation per real dimension at ``ebn0_db`` (Eb/N0, dB) for ``rate`` information
    bits per real channel use at unit energy per use: σ = (2 · rate · Eb/N0)^-½."""
    ebn0 = 10 ** (ebn0_db / 10)
    return (1.0 / (2 * rate * ebn0)) ** 0.5


def snr_to_sigma(snr_db: float | torch.Tensor) -> float | torch.Tensor:
    return (10 ** (-snr_db / 10)) ** 0.5


def quantize(y: torch.Tensor, bits: int, amplitude: float) -> torch.Tensor:
    """A uniform mid-rise quantiser of 2^bits levels over [-amplitude, amplitude] (1 bit: the sign
    times amplitude/2). Rounding has zero gradient almost everywhere: nothing flows back through it."""
    levels = 2 ** bits
    step = 2 * amplitude / levels
    idx = torch.floor(y / step).clamp(-levels // 2, levels // 2 - 1)
    return (idx + 0.5) * step


@dataclass
class ChannelConfig:
    """The ``[channel]`` table: the level in dB, who draws the noise, and the receiver's front end
    (``Channel`` is the channel it describes)."""

    level: Literal["ebn0", "snr"] = key("ebn0", "What `db` means: Eb/N0 (`ebn0`) or SNR (`snr`).")
    db: float = key(7.0, "The level the phases train at, in dB (Eb/N0 or SNR, as `level` says).")
    db_max: float | None = key(None, "With `db_max` > `db`, each example draws its level uniformly from [db, db_max]; "
                                     "none = every example at `db`.")
    db_end: float | None = key(None, "When set, the level is scheduled: it moves linearly from `db` to `db_end` over "
                                     "the phases that train on this channel (a `db_max` range moves with it).")
    normalization: Literal["codeword", "batch"] = key("codeword", "Power constraint: every codeword, or the batch on "
                                                                  "average.")
    fading: Literal["none", "rayleigh"] = key("none", "Built-in model: `rayleigh` multiplies each block by a real "
                                                      "Rayleigh gain, unknown to the receiver; `none` = plain AWGN.")
    model: str = key("awgn", "Who draws the noise: `awgn` (built in) or a Sionna channel block, "
                             + ", ".join(f"`sionna.{m}`" for m in SIONNA_MODELS) + " (keyword arguments in "
                             "`sionna_args`).")
    sionna_args: dict[str, Any] = key(factory=dict, doc="Keyword arguments of the Sionna block `model` names (sionna.* "
                                                        "models only).")
    symbols: Literal["real", "complex"] = key("real", "How the n real outputs of the encoder ride a complex channel: "
                                                      "`real` (one real symbol per use) or `complex` (I/Q pairs, n "
                                                      "even).")
    quantize_bits: int = key(0, "Bits of a quantiser at the receiver's front end (0 = none); its gradient is zero "
                                "almost everywhere, which is what model-free training is for.")
    quantize_range: float = key(2.0, "The quantiser's clipping amplitude.")
    eval_db: list[float] = key(factory=lambda: [0.0, 2.0, 4.0, 6.0, 7.0, 8.0],
                               doc="The levels (dB) the evaluation measures at (BLER, or an image link's PSNR).")

    def __post_init__(self) -> None:
        # Beyond about ±60 dB the noise is numerically zero or swamps everything: a typo, not a study.
        within(self, "db", "db_max", "db_end", low=-60, high=60, note=" dB")
        for i, db in enumerate(self.eval_db):
            if not -60 <= db <= 60:
                raise FieldError(f"eval_db[{i}]", f"must be in [-60, 60] dB, got {db}")
        known = ("awgn",) + tuple(f"sionna.{m}" for m in SIONNA_MODELS)
        if self.model not in known:
            raise FieldError("model", f"must be one of {', '.join(known)}; got {self.model!r}")
        if self.model == "awgn" and self.sionna_args:
            raise FieldError("sionna_args", "only used with a sionna.* model")
        if self.model.startswith("sionna.") and self.fading != "none":
            raise FieldError("fading", "the built-in fading applies to model='awgn'; pick a Sionna fading model instead")
        within(self, "quantize_bits", low=0, high=12)
        within(self, "quantize_range", low=0, open_low=True)

    @property
    def sionna(self) -> bool:
        return self.model.startswith("sionna.")


class Channel:
    """Normalise, then add noise (and block fading) with the channel's own seeded generator.

    ``rate``: information bits per real channel use (k / n for a message system)."""

    def __init__(self, cfg: ChannelConfig, n: int, k: int | None = None, gen: torch.Generator | None = None, *,
                 rate: float | None = None) -> None:
        if (k is None) == (rate is None):
            raise ValueError("give either k (bits per block of n uses) or rate (bits per real channel use)")
        if cfg.symbols == "complex" and n % 2:
            raise FieldError("symbols", f"'complex' pairs the n real outputs into I/Q; n={n} is odd")
        self.cfg, self.n, self.rate = cfg, n, (k / n if rate is None else rate)
        self.gen = gen  # a named stream of the system's registry (checkpointed with the run)
        self.progress = 0.0  # through the phases training on this channel, for a scheduled level

    @property
    def out_dim(self) -> int:
        """How many real values the receiver gets per block."""
        return self.n

    @property
    def plain_awgn(self) -> bool:
        """Whether this channel is AWGN at ``sigma(db)`` and nothing else: the BLER sweep's fast path
        may then draw the noise itself instead of calling the channel."""
        return self.cfg.fading == "none" and self.cfg.quantize_bits == 0

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
        gen = self.gen if generator is None else generator
        rand = distributed.rand if generator is None else torch.rand
        low, high = self.level()
        if db is None and high is not None:
            level: float | torch.Tensor = low + (high - low) * rand(x.shape[0], 1, generator=gen, device=x.device)
        else:
            level = low if db is None else db
        y = self.transmit(x, level, gen, generator is None)
        if self.cfg.quantize_bits:
            y = quantize(y, self.cfg.quantize_bits, self.cfg.quantize_range)
        return y

    def transmit(self, x: torch.Tensor, level: float | torch.Tensor, gen: torch.Generator,
                 training: bool) -> torch.Tensor:
        """The noisy channel itself at ``level`` dB (a float, or a (B, 1) tensor per block)."""
        b = x.shape[0]
        randn = distributed.randn if training else torch.randn

        def draw(*shape, dtype=None):
            return randn(b, *shape, generator=gen, device=x.device, dtype=dtype)
        sigma = self.sigma(level)
        if self.cfg.fading == "rayleigh":  # one real gain per block, E[h²] = 1, unknown to the receiver
            x = draw(2).pow(2).sum(1, keepdim=True).div(2).sqrt() * x
        return x + sigma * draw(*x.shape[1:], dtype=x.dtype)

    def describe(self) -> str:
        lvl = f"{self.cfg.db:g}" + (f"..{self.cfg.db_max:g}" if self.cfg.db_max is not None else "") + \
            (f" -> {self.cfg.db_end:g}" if self.cfg.db_end is not None else "")
        what = self.cfg.model if self.cfg.sionna else (
            "Rayleigh block fading" if self.cfg.fading == "rayleigh" else "AWGN")
        quant = f", {self.cfg.quantize_bits}-bit receiver quantiser" if self.cfg.quantize_bits else ""
        return f"{what}, {'Eb/N0' if self.cfg.level == 'ebn0' else 'SNR'} {lvl} dB{quant}"
