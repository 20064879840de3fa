"""Any of Sionna's channel blocks between encoder and decoder (``pip install "multinet[sionna]"``).

Sionna works on complex baseband symbols of unit average energy with noise power ``no`` per complex
dimension, from ``ebnodb2no(Eb/N0, bits per symbol, code rate)``. The encoder's n real outputs
(‖x‖² = n, one unit of energy per real use) ride it in one of two ways:

- ``symbols = "real"``: each real value is the in-phase part of one complex use; bits per symbol
  × code rate = k / n, so the in-phase noise is ``no / 2`` = σ² of the built-in channel. Over AWGN
  the receiver keeps the in-phase part; over a fading channel it gets both parts (2n values).
- ``symbols = "complex"``: consecutive pairs are (I, Q) of n/2 uses, scaled by 1/√2 to unit
  energy; the receiver gets the pairs back, scaled by √2 (noise σ² per real value again).

Fading blocks are shaped to the codeword: ``FlatFadingChannel`` fades every complex use
independently (1×1 antennas), ``RayleighBlockFading`` and ``TDL`` go through ``OFDMChannel`` on a
resource grid of one OFDM symbol with one subcarrier per complex use (block fading, and
frequency-selective fading across the codeword). The receiver does not see the channel state.

Sionna draws from a global generator per device; every call here loads the channel's own
stream into it and takes the state back afterwards, so the draws are this run's, checkpointed
and resumed with it, and an evaluation's generator is left alone like the built-in channel's.
"""
from __future__ import annotations

import importlib.util
import math
from typing import Any

import torch

from ... import distributed
from ...config import FieldError
from ...state.streams import forked_rng
from .builtin import Channel, ChannelConfig

__all__ = ["SionnaChannel", "require_sionna", "sionna_available"]


def sionna_available() -> bool:
    """Whether Sionna is installed (without importing it: that takes seconds). The one check of
    the optional dependency; ``require_sionna`` imports it or says how to install it."""
    return importlib.util.find_spec("sionna") is not None


def require_sionna(what: str) -> Any:
    """``sionna.phy``, or a one-line error naming ``what`` needed it and how to install it.
    Importing Sionna seeds torch's global generator (its config sets a seed), and a run imports it
    after seeding itself: the import goes through ``forked_rng``, so a run with a Sionna channel is
    as exactly repeatable as one with the built-in channel."""
    try:
        with forked_rng():
            import sionna.phy
    except ImportError:
        raise RuntimeError(f"{what} needs Sionna, which is not installed: pip install \"multinet[sionna]\"") from None
    return sionna.phy


class SionnaChannel(Channel):
    def __init__(self, cfg: ChannelConfig, n: int, gen: torch.Generator, device: torch.device, *,
                 k: int | None = None, rate: float | None = None) -> None:
        super().__init__(cfg, n, k, gen, rate=rate)
        sp = require_sionna(f"channel.model={cfg.model!r}")
        if distributed.info().world > 1:
            raise RuntimeError(f"channel.model={cfg.model!r} runs in one process; drop torchrun or use model='awgn'")
        self.sp, self.device = sp, device
        self.uses = n if cfg.symbols == "real" else n // 2
        name, args, dev = cfg.model.split(".", 1)[1], dict(cfg.sionna_args), str(device)
        ch = sp.channel
        try:
            if name == "AWGN":
                self.block, self.shape = ch.AWGN(device=dev, **args), "flat"
            elif name == "FlatFadingChannel":
                self.block, self.shape = ch.FlatFadingChannel(1, 1, device=dev, **args), "per_use"
            else:
                spacing = float(args.pop("subcarrier_spacing", 30e3))
                model = (ch.RayleighBlockFading(1, 1, 1, 1, device=dev, **args) if name == "RayleighBlockFading"
                         else ch.tr38901.TDL(device=dev, **args))
                grid = sp.ofdm.ResourceGrid(num_ofdm_symbols=1, fft_size=self.uses, subcarrier_spacing=spacing,
                                            device=dev)
                self.block, self.shape = ch.OFDMChannel(model, grid, device=dev), "ofdm"
        except (TypeError, ValueError) as e:
            raise FieldError("sionna_args", f"{cfg.model}: {e}") from None
        # Over AWGN the quadrature part of a real symbol is noise alone: the receiver drops it.
        self.keep_q = cfg.symbols == "complex" or name != "AWGN"

    @property
    def plain_awgn(self) -> bool:
        return False  # Sionna draws the noise (and any fading) itself

    @property
    def out_dim(self) -> int:
        return 2 * self.n if self.cfg.symbols == "real" and self.keep_q else self.n

    def noise_power(self, level: float | torch.Tensor) -> torch.Tensor:
        """``no`` per complex use at ``level`` dB, by Sionna's own ``ebnodb2no`` (level = Eb/N0)."""
        level = torch.as_tensor(level, dtype=torch.float32, device=self.device)
        per_use = 1 if self.cfg.symbols == "real" else 2  # real dimensions per complex use
        if self.cfg.level == "ebn0":
            # bits per complex use b = per_use · rate, written as ebnodb2no's (bits per symbol ≥ b, rate ≤ 1)
            b = per_use * self.rate
            return self.sp.utils.ebnodb2no(level, math.ceil(b), b / math.ceil(b), device=str(self.device))
        return per_use * 10 ** (-level / 10)  # unit power per real value, as in the built-in channel

    def transmit(self, x: torch.Tensor, level: float | torch.Tensor, gen: torch.Generator,
                 training: bool) -> torch.Tensor:
        b = x.shape[0]
        if self.cfg.symbols == "real":
            xc = torch.complex(x, torch.zeros_like(x))
        else:
            xc = torch.complex(x[:, 0::2], x[:, 1::2]) * 0.5 ** 0.5
        no = self.noise_power(level).reshape(-1)  # (1,) or (B,)
        if self.shape == "per_use":
            xs, nos = xc.reshape(b * self.uses, 1), no.repeat_interleave(self.uses) if no.numel() > 1 else no
        elif self.shape == "ofdm":
            xs, nos = xc.reshape(b, 1, 1, 1, self.uses), no.reshape(-1, 1, 1, 1, 1) if no.numel() > 1 else no[0]
        else:
            xs, nos = xc, no.reshape(-1, 1) if no.numel() > 1 else no[0]
        rng = self.block.torch_rng  # Sionna's generator for this device: load our stream's state into it
        rng.set_state(gen.get_state())
        try:
            y = self.block(xs, nos)
        finally:
            gen.set_state(rng.get_state())
        y = y.reshape(b, self.uses)
        if self.cfg.symbols == "complex":
            return torch.stack([y.real, y.imag], -1).reshape(b, self.n) * 2 ** 0.5
        return torch.cat([y.real, y.imag], 1) if self.keep_q else y.real
