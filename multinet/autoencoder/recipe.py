"""The autoencoder's typed config: ``[link]``, ``[channel]``, ``[[phases]]``, ``[networks.*]``, ``[train]``,
``[eval]``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from ..config import FieldError, RunConfig, TrainConfig, at_least, key, key_meaning, within
from ..data import DataConfig
from ..nets.spec import NetConfig
from .channels import ChannelConfig

__all__ = ["AeRecipe", "LinkConfig", "PhaseConfig", "AeTrainConfig", "AeEvalConfig", "AeNetworks", "phase_bounds"]


@dataclass
class LinkConfig:
    """The ``[link]`` table: what crosses the channel, in how many channel uses, and how the pair trains."""

    kind: Literal["messages", "images", "bits"] = key(
        "messages", "What the link carries: `messages` (one of 2^k messages in n real channel uses, softmax "
                    "receiver), `bits` (a trainable constellation of 2^m points and a neural demapper giving m bit "
                    "LLRs, for use under an outer code of rate code_k / code_n; n and k unused) or `images` (an image "
                    "in n real channel uses, reconstructed; deep JSCC).")
    n: int = key(7, "Real channel uses per block (messages) or per image (images).")
    k: int = key(4, "Bits per block: 2^k messages.")
    hidden: int = key(128, "Width of the encoder's and decoder's hidden layers.")
    batch_size: int = key(1024, "Messages (bits: symbols) per training step, per rank; an image link takes "
                                "`data.batch_size`.")
    training: Literal["gradient", "model_free"] = key(
        "gradient", "`gradient`: backpropagation through the channel. `model_free` (Aoudia & Hoydis 2018): the "
                    "receiver trains supervised, the transmitter by policy gradient through Gaussian perturbations "
                    "of its output; no gradient through the channel (messages and bits only).")
    policy_sigma: float = key(0.15, "Model-free training: the standard deviation of the Gaussian perturbations of the "
                                    "transmitter's output that its policy gradient explores with.")
    bits_per_symbol: int = key(4, "Bits: m, a constellation of 2^m points.")
    constellation_init: Literal["qam", "random"] = key("qam", "Bits: the constellation starts as Gray QAM or at "
                                                              "random.")
    code_k: int = key(256, "Bits: information bits of the outer 5G LDPC code in evaluation.")
    code_n: int = key(512, "Bits: the outer code's codeword length (a multiple of bits_per_symbol).")

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
    """One ``[[phases]]`` table: which networks train, for how long, over which channel."""

    name: Literal["joint", "decoder", "encoder"] = key("joint", "What trains: `joint` both networks, `decoder` or "
                                                                "`encoder` that one alone (the other frozen).")
    steps: int = key(1000, "Iterations of this phase (scaled when `train.steps` is set).")
    channel: Literal["train", "finetune"] = key("train", "The channel it trains over: `train` is [channel], "
                                                         "`finetune` is [finetune_channel].")

    def __post_init__(self) -> None:
        at_least(self, 1, "steps")


@dataclass
class AeTrainConfig(TrainConfig):
    """The autoencoder's ``[train]`` table: ``TrainConfig`` with the length taken from the phases."""

    steps: int = key(0, "Total training iterations (`--steps`); 0 = the sum of the phases' steps, otherwise the "
                        "phases are scaled to it.")
    log_every: int = key(100, key_meaning(TrainConfig, "log_every"))


@dataclass
class AeEvalConfig:
    """The autoencoder's ``[eval]`` table: the BLER Monte Carlo and the baselines it is compared with."""

    min_errors: int = key(100, "BLER Monte Carlo: stop a point after this many block errors.")
    max_blocks: int = key(2_000_000, "BLER Monte Carlo: stop a point after this many blocks, errors or not.")
    batch: int = key(200_000, "BLER Monte Carlo: blocks per batch.")
    baselines: bool = key(True, "Also score the classical baselines and ML decoding.")
    ml_errors: int = key(400, "Block errors per point of the soft-ML baselines' Monte Carlo.")
    sionna_baselines: bool = key(True, "Classical baselines from Sionna where the (n, k) fits (OSD for Hamming(7,4); "
                                       "5G LDPC / Polar SCL with QAM for bit systems), when Sionna is installed.")
    polar_list_size: int = key(8, "The list size of the Sionna 5G Polar SCL decoder baseline.")
    code_batch: int = key(2000, "Codewords per batch in coded (LDPC / Polar / OSD) Monte Carlo.")
    osd_max_blocks: int = key(2_000_000, "The Sionna Hamming(7,4) OSD baseline stops a point after this many blocks "
                                         "(its own bound: Sionna's OSD is far slower than the exact ML search).")

    def __post_init__(self) -> None:
        at_least(self, 1, "min_errors", "max_blocks", "batch", "ml_errors", "polar_list_size", "code_batch",
                 "osd_max_blocks")


@dataclass
class AeNetworks:
    """The autoencoder's ``[networks]`` table: one ``NetConfig`` per network."""

    encoder: NetConfig = key(factory=NetConfig, doc="How the encoder (the transmitter) is trained.")
    decoder: NetConfig = key(factory=NetConfig, doc="How the decoder (the receiver) is trained.")


@dataclass
class AeRecipe(RunConfig):
    """An autoencoder recipe: ``[link]``, ``[data]``, ``[channel]`` (and ``[finetune_channel]``),
    ``[[phases]]``, ``[networks.encoder]`` / ``[networks.decoder]``, ``[train]``, ``[eval]``."""
    OLD_KEYS: ClassVar[dict[str, str]] = {"system": "it is [link] since 1.0"}  # 0.1 keys, named in their error
    task: Literal["autoencoder"] = key("autoencoder", "Which system a recipe is for (checked when it is read).")
    link: LinkConfig = key(factory=LinkConfig, doc="The `[link]` table: what crosses the channel and how.")
    data: DataConfig = key(factory=DataConfig, doc="The `[data]` table: the images of an image link "
                                                     "(`link.kind = \"images\"`; unused otherwise).")
    channel: ChannelConfig = key(factory=ChannelConfig, doc="The `[channel]` table: the channel the phases train "
                                                            "over and the link is evaluated on.")
    finetune_channel: ChannelConfig | None = key(None, "A second channel (the keys of [channel]) for the phases on "
                                                       "channel `finetune`; none when no phase uses one.")
    phases: list[PhaseConfig] = key(factory=lambda: [PhaseConfig()], doc="The `[[phases]]` tables, run in order.")
    networks: AeNetworks = key(factory=AeNetworks, doc="The `[networks]` table: how each network is trained.")
    train: AeTrainConfig = key(factory=AeTrainConfig, doc="The `[train]` table: length, precision, logging, "
                                                          "checkpoints and evaluation.")
    eval: AeEvalConfig = key(factory=AeEvalConfig, doc="The `[eval]` table: the BLER Monte Carlo and its "
                                                       "baselines.")

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
        if self.link.kind == "images" and self.data.name in ("ring8", "grid25", "imagefolder", "celeba"):
            # Its PSNR evaluation reads images held in memory: not 2-D points, nor images streamed from files.
            raise FieldError("data.name", f"link.kind = 'images' needs an image set held in memory (digits, mnist, "
                             f"fashion-mnist, cifar10, idx), got {self.data.name!r}")


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
