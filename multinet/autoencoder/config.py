"""The autoencoder's typed config: ``[system]``, ``[channel]``, ``[[phases]]``, ``[networks.*]``, ``[train]``, ``[eval]``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import RunConfig, at_least, within
from ..config import TrainConfig as BaseTrainConfig
from ..data import DataConfig
from ..netconfig import NetConfig
from .channel import ChannelConfig

__all__ = ["AeRecipe", "SystemConfig", "PhaseConfig", "TrainConfig", "EvalConfig", "Networks", "phase_bounds"]


@dataclass
class SystemConfig:
    kind: Literal["messages", "images"] = "messages"
    n: int = 7
    k: int = 4
    hidden: int = 128
    batch_size: int = 1024

    def __post_init__(self) -> None:
        at_least(self, 1, "n", "k", "hidden", "batch_size")
        # 2^k messages: the decoder's output, the codebook and ML decoding all grow with it.
        within(self, "k", low=1, high=16, note=" (2^k messages)")
        within(self, "n", low=1, high=4096)
        within(self, "batch_size", low=1, high=2 ** 24)


@dataclass
class PhaseConfig:
    name: Literal["joint", "decoder", "encoder"] = "joint"
    steps: int = 1000
    channel: Literal["train", "finetune"] = "train"

    def __post_init__(self) -> None:
        at_least(self, 1, "steps")


@dataclass
class TrainConfig(BaseTrainConfig):
    steps: int = 0  # 0 = the sum of the phases' steps; otherwise phases are scaled to it
    log_every: int = 100


@dataclass
class EvalConfig:
    min_errors: int = 100
    max_blocks: int = 2_000_000
    batch: int = 200_000
    baselines: bool = True
    ml_errors: int = 400

    def __post_init__(self) -> None:
        at_least(self, 1, "min_errors", "max_blocks", "batch", "ml_errors")


@dataclass
class Networks:
    encoder: NetConfig = field(default_factory=NetConfig)
    decoder: NetConfig = field(default_factory=NetConfig)


@dataclass
class AeRecipe(RunConfig):
    task: Literal["autoencoder"] = "autoencoder"
    system: SystemConfig = field(default_factory=SystemConfig)
    data: DataConfig = field(default_factory=DataConfig)
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    finetune_channel: ChannelConfig | None = None
    phases: list[PhaseConfig] = field(default_factory=lambda: [PhaseConfig()])
    networks: Networks = field(default_factory=Networks)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.phases:
            raise ValueError("phases: at least one phase is needed")
        if any(p.channel == "finetune" for p in self.phases) and self.finetune_channel is None:
            raise ValueError("a phase uses channel 'finetune' but [finetune_channel] is not set")
        if self.train.steps == 0:
            self.train.steps = sum(p.steps for p in self.phases)


def phase_bounds(phases: list[PhaseConfig], total: int) -> list[tuple[int, int]]:
    """Phase lengths scaled to ``total`` iterations (every phase keeps at least one step)."""
    declared = sum(p.steps for p in phases)
    bounds, start = [], 0
    for i, p in enumerate(phases):
        length = total - start if i == len(phases) - 1 else max(1, round(p.steps * total / declared))
        bounds.append((start, start + length))
        start += length
    return bounds
