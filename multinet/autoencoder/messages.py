"""The message autoencoder (O'Shea & Hoydis 2017): one of M = 2^k messages sent in n real channel
uses, a softmax receiver, scored by block and bit error rates beside the classical baselines."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..engine import error_rate
from ..nets import eval_mode
from ..state.checkpoint import atomic_path
from . import evaluation
from .channels import Channel
from .networks import MessageDecoder, MessageEncoder
from .system import AeSystem

__all__ = ["MessageAutoencoder", "CodebookResults"]


class CodebookResults:
    """What a system that sends learned codewords writes at the end of a run (a part of the message
    and bit systems): the codebook (``codebook.npy``), the constellation when a block is one complex
    use, the baselines and the BLER plot."""

    def codebook(self) -> torch.Tensor:
        raise NotImplementedError

    def point_labels(self) -> list[str] | None:
        return None

    def baselines(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def results_written(self, out: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        points = self.codebook()
        with atomic_path(out / "codebook.npy") as tmp:
            np.save(tmp, points.cpu().numpy())
        if points.shape[1] == 2:  # one complex use per block: the constellation itself
            evaluation.plot_constellation(out, points, self.point_labels(), self.describe())
        if self.cfg.eval.baselines:
            rows += self.baselines()
        evaluation.plot(out, rows, f"{self.describe()} over {self.channels['train'].describe()}")
        return rows


class MessageAutoencoder(CodebookResults, AeSystem):
    """2^k messages in n real channel uses, a softmax receiver; scored by BLER against exact and ML baselines."""
    kind = "messages"

    def networks(self, received: int) -> tuple[nn.Module, nn.Module]:
        s = self.cfg.link
        self.m = 2 ** s.k
        return MessageEncoder(self.m, s.n, s.hidden), MessageDecoder(self.m, received, s.hidden)

    def batch(self, encoder: nn.Module, channel: Channel) -> tuple[torch.Tensor, torch.Tensor]:
        target = self.messages()
        return target, channel.normalize(encoder(target))

    def losses(self, target: torch.Tensor, out: torch.Tensor, reduce: bool) -> tuple[torch.Tensor, dict[str, Any]]:
        loss = F.cross_entropy(out, target, reduction="mean" if reduce else "none")
        return loss, {"block_error": error_rate(out, target)}

    @torch.no_grad()
    def codebook(self) -> torch.Tensor:
        """The normalised codeword of each message (M × n)."""
        with eval_mode(self.nets["encoder"].module) as enc:
            return self.channels["train"].normalize(enc.codebook())

    def rows(self, label: str) -> list[dict[str, Any]]:
        gen = self.streams.fresh("ae.eval", self.device)
        return evaluation.message_rows(self.codebook(), self.nets["decoder"].module, self.channels, self.cfg.link.k,
                                       self.cfg.eval, gen, label)

    def baselines(self) -> list[dict[str, Any]]:
        return evaluation.message_baselines(self.codebook(), self.cfg.link, self.cfg.eval, self.cfg.channel.eval_db,
                                            self.streams.fresh("ae.baselines", self.device),
                                            self.streams.fresh("ae.baselines.osd", self.device))

    def describe(self) -> str:
        s = self.cfg.link
        return f"({s.n},{s.k}) autoencoder{self.how_trained()}"
