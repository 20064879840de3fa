"""The bit system: a trainable constellation of 2^m points and a neural demapper giving m bit
LLRs, one complex symbol (2 real channel uses) at a time, scored inside a 5G LDPC code beside
Gray QAM under 5G LDPC and Polar codes (Sionna)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..engine import bit_error_rate
from ..nets import eval_mode
from . import coded
from .channels import Channel, sionna_available
from .messages import CodebookResults
from .networks import Constellation, NeuralDemapper, bit_labels
from .system import AeSystem

__all__ = ["BitAutoencoder"]


class BitAutoencoder(CodebookResults, AeSystem):
    """A trainable 2^m-point constellation and a neural demapper giving m bit LLRs, scored inside 5G LDPC."""
    kind = "bits"

    def channel_uses(self) -> tuple[int, dict[str, Any]]:
        s = self.cfg.link  # one complex symbol carrying m bits at the code's rate
        return 2, {"rate": s.bits_per_symbol * s.code_rate / 2}

    def networks(self, received: int) -> tuple[nn.Module, nn.Module]:
        s = self.cfg.link
        self.m = 2 ** s.bits_per_symbol
        enc, dec = Constellation(s.bits_per_symbol, s.constellation_init), NeuralDemapper(received, s.bits_per_symbol,
                                                                                         s.hidden)
        self.labels = bit_labels(s.bits_per_symbol).to(self.device)
        return enc, dec

    def batch(self, encoder: nn.Module, channel: Channel) -> tuple[torch.Tensor, torch.Tensor]:
        target = self.messages()
        return target, encoder(target)  # the constellation is normalised already

    def losses(self, target: torch.Tensor, out: torch.Tensor, reduce: bool) -> tuple[torch.Tensor, dict[str, Any]]:
        labels = self.labels[target]
        loss = F.binary_cross_entropy_with_logits(out, labels, reduction="none").mean(1)
        return (loss.mean() if reduce else loss), {"ber": bit_error_rate(out, labels)}

    @torch.no_grad()
    def codebook(self) -> torch.Tensor:
        """The constellation (2^m × 2)."""
        with eval_mode(self.nets["encoder"].module) as enc:
            return enc.codebook()

    def point_labels(self) -> list[str]:
        return [format(i, f"0{self.cfg.link.bits_per_symbol}b") for i in range(self.m)]

    def rows(self, label: str) -> list[dict[str, Any]]:
        return coded.learned_ldpc_rows(self.nets["encoder"].module, self.nets["decoder"].module, self.channels,
                                       self.cfg.link, self.cfg.eval,
                                       lambda: self.streams.fresh("ae.eval", self.device), label)

    def baselines(self) -> list[dict[str, Any]]:
        if not (self.cfg.eval.sionna_baselines and sionna_available()):
            return []
        return coded.qam_baselines(self.cfg.link, self.cfg.eval, self.channels["train"],
                                   lambda: self.streams.fresh("ae.baselines", self.device), self.device)

    def summary_name(self) -> str:
        return f"bits, m={self.cfg.link.bits_per_symbol}"

    def describe(self) -> str:
        s = self.cfg.link
        return f"learned {self.m}-point constellation, 5G LDPC ({s.code_n},{s.code_k}){self.how_trained()}"

    def export_meta(self) -> dict[str, Any]:
        s = self.cfg.link
        return {"bits_per_symbol": s.bits_per_symbol, "code_k": s.code_k, "code_n": s.code_n}
