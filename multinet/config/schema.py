"""The tables every system's config shares: ``RunConfig`` (seed, device, description) and its
``[train]`` table, ``TrainConfig``."""
from __future__ import annotations

import dataclasses
import importlib.util
from typing import Literal

from .fields import FieldError, at_least, within

__all__ = ["TrainConfig", "RunConfig", "MAX_STEPS", "MAX_SEED"]

# The longest run: a longer one is a typo (10^12 steps of a microsecond each take 11 days). A
# checkpoint's counters are held to it too.
MAX_STEPS = 10 ** 12
MAX_SEED = 2 ** 63 - 1  # a seed is any non-negative int64


@dataclasses.dataclass
class TrainConfig:
    """The ``[train]`` table every engine shares."""

    steps: int = 2000  # total training iterations (--steps)
    amp: Literal["none", "bf16", "fp16"] = "none"  # mixed precision: bf16 (GPUs, AMX CPUs) or fp16 (GPUs)
    log_every: int = 50  # iterations between logged scalars (and NaN / Inf checks); 0 = off
    # Gradient accumulation: micro-batches per optimizer step. Each micro-batch is one batch of the
    # system's batch size; the optimizer steps on their mean (effective batch = batch size x accumulate).
    accumulate: int = 1
    checkpoint_every: int = 1000  # iterations between checkpoints (the final one is always written); 0 = only the final
    keep_last: int = 3  # step checkpoints kept besides last.pt (and best.pt); 0 = all
    tensorboard: bool = True  # write TensorBoard event files under tb/ (metrics.jsonl is always written)
    # torch.use_deterministic_algorithms + a fixed cuBLAS workspace: bit-exact resume on CUDA too,
    # at some speed. CPU runs are deterministic without it.
    deterministic: bool = False
    # torch.distributed (torchrun): batch sizes are per rank; SyncBatchNorm (CUDA only) pools
    # batch statistics over ranks; every collective fails after dist_timeout seconds instead of
    # hanging; stop requests (Ctrl-C, SIGTERM) are agreed over ranks every dist_sync_every steps.
    sync_batchnorm: bool = False
    # torch.compile every network in place (module.compile(): state_dict names unchanged). The
    # first steps pay the compilation; see BENCHMARKS.md for when it pays off. compile_mode
    # "reduce-overhead" also replays each network's forward and backward as CUDA graphs (one
    # launch instead of one per kernel: what small GAN / autoencoder steps are bound by on a
    # GPU); it needs CUDA, and the engine's steps read nothing back between log steps so that
    # nothing forces a graph to break.
    compile: bool = False
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    dist_timeout: float = 900.0  # seconds before a collective gives up (a dead or stalled rank), under torchrun
    dist_sync_every: int = 10  # iterations between agreements on stop requests over ranks, under torchrun
    # Evaluate every N iterations (0 = only at the end), for systems that offer evaluate(); with
    # best_metric (a key of its result) the best state so far is kept as checkpoints/best.pt.
    eval_every: int = 0
    best_metric: str = ""
    best_mode: Literal["max", "min"] = "max"
    # Experiment trackers beside TensorBoard / metrics.jsonl: "mlflow" (a local file store under the
    # run folder unless mlflow_uri names another) and "wandb" (offline unless wandb_mode says so).
    # Scalars, sample grids and the resolved config go to each (multinet.tracking.backends).
    trackers: list[str] = dataclasses.field(default_factory=list)
    mlflow_uri: str = ""
    mlflow_experiment: str = "multinet"
    wandb_project: str = "multinet"
    wandb_mode: Literal["offline", "online", "disabled"] = "offline"

    def __post_init__(self) -> None:
        for i, name in enumerate(self.trackers):
            package, extra = {"mlflow": ("mlflow", "mlflow"), "wandb": ("wandb", "wandb")}.get(name, (None, None))
            if package is None:
                raise FieldError(f"trackers[{i}]", f"must be 'mlflow' or 'wandb', got {name!r}")
            if importlib.util.find_spec(package) is None:
                raise FieldError(f"trackers[{i}]", f"{name!r} is not installed: pip install \"multinet[{extra}]\"")
        # *_every = 0 turns that periodic event off (the final checkpoint is still written).
        at_least(self, 0, "log_every", "checkpoint_every", "eval_every", note=" (0 turns it off)")
        if self.best_metric and not self.eval_every:
            raise FieldError("best_metric", "needs train.eval_every > 0 (how often to evaluate)")
        at_least(self, 0, "keep_last", note=" (0 keeps every step file)")
        at_least(self, 1, "dist_sync_every", "accumulate")
        within(self, "dist_timeout", low=0, open_low=True)
        if self.compile_mode != "default" and not self.compile:
            raise FieldError("compile_mode", f"{self.compile_mode!r} needs train.compile = true")
        within(self, "steps", low=0, high=MAX_STEPS)


@dataclasses.dataclass
class RunConfig:
    """What every system's config has: a description, the seed, the device and ``[train]``.

    A system's config extends it (``@dataclass class MyConfig(RunConfig): ...``), usually with a
    ``networks`` table of ``NetConfig``s, one per network.
    """

    description: str = ""  # free text, shown in the run's summary
    seed: int = 0  # seeds the initial weights and every named random stream (data, noise, channel)
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:N (--device)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    # What a resumed run may change (key prefixes): its length, logging, checkpoints and
    # evaluation, and where it runs. Everything else is the run itself: the saved weights and
    # optimizer state carry on as they are. Systems add their own (System.resume_may_change).
    RESUME_MAY_CHANGE = ("train.", "eval.", "device", "description")

    def __post_init__(self) -> None:
        within(self, "seed", low=0, high=MAX_SEED)
