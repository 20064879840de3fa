"""The autoencoder's typed config: ``[link]``, ``[channel]``, ``[[phases]]``, ``[networks.*]``, ``[train]``, ``[eval]``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import FieldError, RunConfig, TrainConfig, at_least, within
from ..data import DataConfig
from ..nets.spec import NetConfig
from .channels import ChannelConfig

__all__ = ["AeRecipe", "LinkConfig", "PhaseConfig", "AeTrainConfig", "AeEvalConfig", "AeNetworks", "phase_bounds"]


@dataclass
class LinkConfig:
    """``kind``: ``messages`` (one of 2^k messages in n real channel uses, softmax receiver),
    ``bits`` (a trainable constellation of 2^m points and a neural demapper giving m bit LLRs,
    for use under an outer code of rate code_k / code_n; n and k unused) or ``images``.

    ``training``: ``gradient`` (backpropagation through the channel) or ``model_free`` (Aoudia &
    Hoydis 2018: the receiver trains supervised, the transmitter by policy gradient through
    Gaussian perturbations of its output of standard deviation ``policy_sigma``; no gradient
    through the channel)."""

    kind: Literal["messages", "images", "bits"] = "messages"
    n: int = 7  # real channel uses per block (messages)
    k: int = 4  # bits per block: 2^k messages
    hidden: int = 128  # width of the encoder's and decoder's hidden layers
    batch_size: int = 1024  # messages (or symbols, images) per training step, per rank
    training: Literal["gradient", "model_free"] = "gradient"
    policy_sigma: float = 0.15
    bits_per_symbol: int = 4  # bits: m, a constellation of 2^m points
    constellation_init: Literal["qam", "random"] = "qam"  # bits: the constellation starts as Gray QAM or at random
    code_k: int = 256  # bits: information bits of the outer 5G LDPC code in evaluation
    code_n: int = 512  # bits: its codeword length (a multiple of bits_per_symbol)

    def __post_init__(self) -> None:
        at_least(self, 1, "n", "k", "hidden", "batch_size", "bits_per_symbol", "code_k", "code_n")
        # 2^k messages: the decoder's output, the codebook and ML decoding all grow with it.
        within(self, "k", low=1, high=16, note=" (2^k messages)")
        within(self, "n", low=1, high=4096)
        within(self, "hidden", low=1, high=1 << 16)
        within(self, "batch_size", low=1, high=2 ** 24)
        within(self, "policy_sigma", low=0, high=1, open_low=True, open_high=True)
        within(self, "bits_per_symbol", low=1, high=12)
        if self.code_k >= self.code_n:
            raise FieldError("code_k", f"must be below code_n={self.code_n} (a rate below 1), got {self.code_k}")
        if self.kind == "bits" and self.code_n % self.bits_per_symbol:
            raise FieldError("code_n", f"must be a multiple of bits_per_symbol={self.bits_per_symbol} (whole "
                             f"symbols per codeword), got {self.code_n}")
        if self.training == "model_free" and self.kind == "images":
            raise FieldError("training", "model_free is for message and bit systems")

    @property
    def code_rate(self) -> float:
        return self.code_k / self.code_n


@dataclass
class PhaseConfig:
    name: Literal["joint", "decoder", "encoder"] = "joint"  # trains both networks, or one (the other frozen)
    steps: int = 1000  # iterations of this phase
    channel: Literal["train", "finetune"] = "train"  # the channel it trains over: [channel] or [finetune_channel]

    def __post_init__(self) -> None:
        at_least(self, 1, "steps")


@dataclass
class AeTrainConfig(TrainConfig):
    steps: int = 0  # 0 = the sum of the phases' steps; otherwise phases are scaled to it
    log_every: int = 100


@dataclass
class AeEvalConfig:
    min_errors: int = 100  # BLER Monte Carlo: stop a point after this many block errors
    max_blocks: int = 2_000_000  # BLER Monte Carlo: or after this many blocks
    batch: int = 200_000  # BLER Monte Carlo: blocks per batch
    baselines: bool = True  # also score the classical baselines and ML decoding
    ml_errors: int = 400  # block errors per point of the soft-ML baselines' Monte Carlo
    # Classical baselines from Sionna where the (n, k) fits (OSD for Hamming(7,4); 5G LDPC / Polar
    # SCL with QAM for bit systems), when Sionna is installed.
    sionna_baselines: bool = True
    polar_list_size: int = 8
    code_batch: int = 2000  # codewords per batch in coded (LDPC / Polar / OSD) Monte Carlo
    osd_max_blocks: int = 2_000_000  # Sionna's OSD is far slower than the exact ML search

    def __post_init__(self) -> None:
        at_least(self, 1, "min_errors", "max_blocks", "batch", "ml_errors", "polar_list_size", "code_batch",
                 "osd_max_blocks")


@dataclass
class AeNetworks:
    encoder: NetConfig = field(default_factory=NetConfig)
    decoder: NetConfig = field(default_factory=NetConfig)


@dataclass
class AeRecipe(RunConfig):
    """An autoencoder recipe: ``[link]``, ``[data]``, ``[channel]`` (and ``[finetune_channel]``),
    ``[[phases]]``, ``[networks.encoder]`` / ``[networks.decoder]``, ``[train]``, ``[eval]``."""
    task: Literal["autoencoder"] = "autoencoder"  # which system a recipe is for (checked when it is read)
    link: LinkConfig = field(default_factory=LinkConfig)
    data: DataConfig = field(default_factory=DataConfig)
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    finetune_channel: ChannelConfig | None = None  # for phases on channel "finetune"
    phases: list[PhaseConfig] = field(default_factory=lambda: [PhaseConfig()])  # [[phases]], in order
    networks: AeNetworks = field(default_factory=AeNetworks)
    train: AeTrainConfig = field(default_factory=AeTrainConfig)
    eval: AeEvalConfig = field(default_factory=AeEvalConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.phases:
            raise ValueError("phases: at least one phase is needed")
        if any(p.channel == "finetune" for p in self.phases) and self.finetune_channel is None:
            raise ValueError("a phase uses channel 'finetune' but [finetune_channel] is not set")
        if self.train.steps == 0:
            self.train.steps = sum(p.steps for p in self.phases)
        if self.train.steps < len(self.phases):
            raise FieldError("train.steps", f"must be at least the number of phases ({len(self.phases)}): each "
                             f"phase needs a step, got {self.train.steps}")


def phase_bounds(phases: list[PhaseConfig], total: int) -> list[tuple[int, int]]:
    """Phase lengths scaled to ``total`` iterations (every phase keeps at least one step)."""
    declared = sum(p.steps for p in phases)
    bounds, start = [], 0
    for i, p in enumerate(phases):
        later = len(phases) - 1 - i  # each later phase keeps a step too
        length = total - start if not later else min(max(1, round(p.steps * total / declared)), total - start - later)
        bounds.append((start, start + length))
        start += length
    return bounds
