"""A (7,4) autoencoder over a channel of your own: a soft-clipping power amplifier, then AWGN.

The transmitter learns codewords that survive the amplifier's compression (its peak amplitude
is ``clip``); the receiver is fine-tuned alone at the end. The channel is a plain class with its
own checkpointed random stream; the networks are the shipped message encoder / decoder.

    python -m multinet train examples.ae_clipping_channel:ClippedAutoencoder --steps 3000 --out runs/clip
    python -m multinet evaluate runs/clip/checkpoints/last.pt eval.ebn0_db=[0,4,8]
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from multinet import NetConfig, Phase, RunConfig, System, eval_mode
from multinet.autoencoder import MessageDecoder, MessageEncoder, ebn0_to_sigma, monte_carlo


class ClippingAwgn:
    """x (B, n), normalised to ‖x‖² = n → clip·tanh(x / clip) → + N(0, σ²) at Eb/N0 ``db``."""

    def __init__(self, n: int, k: int, clip: float, gen: torch.Generator) -> None:
        self.n, self.rate, self.clip, self.gen = n, k / n, clip, gen

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.n ** 0.5 / x.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def __call__(self, x: torch.Tensor, db: float, gen: torch.Generator | None = None) -> torch.Tensor:
        y = self.clip * torch.tanh(x / self.clip)
        noise = torch.randn(y.shape, generator=gen or self.gen, device=y.device, dtype=y.dtype)
        return y + ebn0_to_sigma(db, self.rate) * noise


@dataclass
class Nets:
    encoder: NetConfig = field(default_factory=lambda: NetConfig(lr=1e-3))
    decoder: NetConfig = field(default_factory=lambda: NetConfig(lr=1e-3))


@dataclass
class EvalConfig:
    ebn0_db: list[float] = field(default_factory=lambda: [0.0, 2.0, 4.0, 6.0])
    min_errors: int = 100
    max_blocks: int = 200_000


@dataclass
class ClippedConfig(RunConfig):
    n: int = 7
    k: int = 4
    clip: float = 1.2  # the amplifier's peak output amplitude (a BPSK symbol is 1)
    train_db: float = 6.0
    batch_size: int = 512
    decoder_only_from: float = 0.8  # the share of the run after which the receiver trains alone
    networks: Nets = field(default_factory=Nets)
    eval: EvalConfig = field(default_factory=EvalConfig)


class ClippedAutoencoder(System):
    Config = ClippedConfig

    def __init__(self, cfg: ClippedConfig, device: torch.device, **build) -> None:
        super().__init__(cfg, device, **build)
        self.m = 2 ** cfg.k
        self.net("encoder", MessageEncoder(self.m, cfg.n))
        self.net("decoder", MessageDecoder(self.m, cfg.n))
        self.channel = ClippingAwgn(cfg.n, cfg.k, cfg.clip, self.streams.get("channel", device))
        self.messages = self.streams.get("messages", device)

    def phases(self) -> list[Phase]:
        switch = max(1, int(self.cfg.train.steps * self.cfg.decoder_only_from))
        return [Phase("joint", ("encoder", "decoder"), self.step, stop=switch),
                Phase("decoder", "decoder", self.step, start=switch)]

    def step(self, e) -> dict[str, torch.Tensor]:
        msg = torch.randint(self.m, (self.cfg.batch_size,), generator=self.messages, device=self.device)
        x = self.channel.normalize(e.model("encoder")(msg))
        logits = e.model("decoder")(self.channel(x, self.cfg.train_db))
        return {"loss": F.cross_entropy(logits, msg), "block_error": (logits.argmax(1) != msg).float().mean()}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """BLER through the clipping channel at each ``eval.ebn0_db`` (seeded Monte Carlo)."""
        ev, gen = self.cfg.eval, self.streams.fresh("evaluation", self.device)
        with eval_mode(self.nets["encoder"].module) as enc, eval_mode(self.nets["decoder"].module) as dec:
            codebook = self.channel.normalize(enc.codebook())
            return {f"bler/{db:g}dB": monte_carlo(codebook, dec, self.cfg.k, db, ev.min_errors, ev.max_blocks,
                                                  50_000, None, lambda x, d: self.channel(x, d, gen)).bler
                    for db in ev.ebn0_db}
