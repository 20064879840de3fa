"""A (7,4) autoencoder over one of Sionna's channels, as a system of your own.

The channel comes from ``make_channel`` and the same ``[channel]`` table the shipped autoencoder
reads (``channel.model = "sionna.RayleighBlockFading"``, ``channel.symbols``, ``channel.db``), built
with a named random stream of this system's: Sionna's draws are checkpointed with the run and a
resume continues them exactly. The receiver takes ``channel.out_dim`` values per block (2n over a
fading channel: in-phase and quadrature parts). One network pair serves two phases: both train
together, then the receiver alone for the last ``decoder_only_from`` of the run, the transmitter
frozen by the phase.

    pip install "multinet[sionna]"
    python -m multinet train examples.ae_sionna_channel:SionnaAutoencoder --steps 2000 --out runs/sionna
    python -m multinet train examples.ae_sionna_channel:SionnaAutoencoder "channel.model='sionna.TDL'" \\
        "channel.sionna_args={model='A', delay_spread=100e-9, carrier_frequency=3.5e9}" --out runs/tdl
    python -m multinet evaluate runs/sionna/checkpoints/last.pt
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from multinet import NetConfig, Phase, RunConfig, System, eval_mode
from multinet.autoencoder import ChannelConfig, MessageDecoder, MessageEncoder, make_channel


@dataclass
class Nets:
    encoder: NetConfig = field(default_factory=lambda: NetConfig(lr=1e-3))
    decoder: NetConfig = field(default_factory=lambda: NetConfig(lr=1e-3))


@dataclass
class SionnaAeConfig(RunConfig):
    n: int = 7
    k: int = 4
    batch_size: int = 256
    decoder_only_from: float = 0.8  # the share of the run after which the receiver trains alone
    eval_blocks: int = 20_000  # blocks per Eb/N0 of channel.eval_db in evaluate()
    channel: ChannelConfig = field(default_factory=lambda: ChannelConfig(model="sionna.RayleighBlockFading", db=10.0,
                                                                         eval_db=[5.0, 10.0, 15.0]))
    networks: Nets = field(default_factory=Nets)


class SionnaAutoencoder(System):
    Config = SionnaAeConfig

    def __init__(self, cfg: SionnaAeConfig, device: torch.device, **build) -> None:
        super().__init__(cfg, device, **build)
        self.m = 2 ** cfg.k
        self.channel = make_channel(cfg.channel, cfg.n, self.streams.get("channel", device), device, k=cfg.k)
        self.net("encoder", MessageEncoder(self.m, cfg.n))
        self.net("decoder", MessageDecoder(self.m, self.channel.out_dim))
        self.messages = self.streams.get("messages", device)

    def phases(self) -> list[Phase]:
        switch = max(1, int(self.cfg.train.steps * self.cfg.decoder_only_from))
        return [Phase("joint", ("encoder", "decoder"), self.step, stop=switch),
                Phase("decoder", "decoder", self.step, start=switch)]

    def step(self, e) -> dict[str, torch.Tensor]:
        msg = torch.randint(self.m, (self.cfg.batch_size,), generator=self.messages, device=self.device)
        logits = e.model("decoder")(self.channel(self.channel.normalize(e.model("encoder")(msg))))
        return {"loss": F.cross_entropy(logits, msg), "block_error": (logits.argmax(1) != msg).float().mean()}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """BLER at each ``channel.eval_db`` over ``eval_blocks`` random messages, from a fresh seeded
        stream (the training's streams are left as they are)."""
        gen = self.streams.fresh("evaluation", self.device)
        out = {}
        with eval_mode(self.nets["encoder"].module) as enc, eval_mode(self.nets["decoder"].module) as dec:
            for db in self.cfg.channel.eval_db:
                msg = torch.randint(self.m, (self.cfg.eval_blocks,), generator=gen, device=self.device)
                y = self.channel(self.channel.normalize(enc(msg)), db, generator=gen)
                out[f"bler/{db:g}dB"] = float((dec(y).argmax(1) != msg).float().mean())
        return out
