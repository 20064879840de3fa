"""Channels between an encoder and a decoder: the built-in AWGN / Rayleigh block fading with a
receiver quantiser (``builtin``), or any Sionna channel block (``sionna_blocks``, the optional
extra, imported only when a recipe names one). ``make_channel`` picks between them: it sits above
both, so neither imports the other's module at run time."""
from __future__ import annotations

import torch

from .builtin import Channel, ChannelConfig, ebn0_to_sigma, quantize
from .sionna_blocks import require_sionna, sionna_available

__all__ = ["Channel", "ChannelConfig", "ebn0_to_sigma", "quantize", "make_channel", "require_sionna",
           "sionna_available"]


def make_channel(cfg: ChannelConfig, n: int, gen: torch.Generator, device: torch.device, *,
                 k: int | None = None, rate: float | None = None) -> Channel:
    """The built-in channel, or the Sionna block the config names."""
    if not cfg.sionna:
        return Channel(cfg, n, k, gen, rate=rate)
    from .sionna_blocks import SionnaChannel
    return SionnaChannel(cfg, n, gen, device, k=k, rate=rate)
