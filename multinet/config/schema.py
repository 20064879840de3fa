"""The tables every system's config shares: ``RunConfig`` (seed, device, description) and its
``[train]`` table, ``TrainConfig``."""
from __future__ import annotations

import dataclasses
import importlib.util
from typing import Literal

from .fields import FieldError, at_least, key, within

__all__ = ["TrainConfig", "RunConfig", "MAX_STEPS", "MAX_SEED"]

# The longest run: a longer one is a typo (10^12 steps of a microsecond each take 11 days). A
# checkpoint's counters are held to it too.
MAX_STEPS = 10 ** 12
MAX_SEED = 2 ** 63 - 1  # a seed is any non-negative int64


@dataclasses.dataclass
class TrainConfig:
    """The ``[train]`` table every engine shares."""

    steps: int = key(2000, "Total training iterations (`--steps`).")
    amp: Literal["none", "bf16", "fp16"] = key("none", "Mixed precision: `none` (float32), `bf16` (GPUs, AMX CPUs) "
                                                       "or `fp16` (GPUs, with a gradient scaler).")
    log_every: int = key(50, "Iterations between logged scalars; 0 = off.")
    check_every: int | None = key(None, "Iterations between checks that every loss is finite (each reads one flag "
                                        "back from the device; a NaN / Inf stops the run, the last good checkpoint "
                                        "kept); none = at each log step (every 50 with logging off); 0 = only "
                                        "before a logged row or a checkpoint is written.")
    accumulate: int = key(1, "Gradient accumulation: micro-batches per optimizer step. Each micro-batch is one batch "
                             "of the system's batch size; the optimizer steps on their mean (effective batch = batch "
                             "size x accumulate).")
    checkpoint_every: int = key(1000, "Iterations between checkpoints (the final one is always written); 0 = only "
                                      "the final.")
    keep_last: int = key(3, "Step checkpoints kept besides last.pt (and best.pt); 0 = all.")
    tensorboard: bool = key(True, "Write TensorBoard event files under tb/ (metrics.jsonl is always written).")
    deterministic: bool = key(False, "Use torch.use_deterministic_algorithms and a fixed cuBLAS workspace: bit-exact "
                                     "resume on CUDA too, at some speed. CPU runs are deterministic without it.")
    sync_batchnorm: bool = key(False, "Under torch.distributed (torchrun, where batch sizes are per rank): "
                                      "SyncBatchNorm pools batch-norm statistics over ranks (CUDA only).")
    compile: bool = key(False, "Compile every network in place with torch.compile (`module.compile()`: state_dict "
                               "names unchanged). The first steps pay the compilation; see BENCHMARKS.md for when "
                               "it pays off.")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = key(
        "default", "The torch.compile mode (needs `compile = true`). `reduce-overhead` also replays each network's "
                   "forward and backward as CUDA graphs (one launch instead of one per kernel: what small GAN / "
                   "autoencoder steps are bound by on a GPU); it needs CUDA, and the engine's steps read nothing "
                   "back between log steps so that nothing forces a graph to break.")
    dist_timeout: float = key(900.0, "Seconds before a collective gives up (a dead or stalled rank) instead of "
                                     "hanging, under torchrun.")
    dist_sync_every: int = key(10, "Iterations between agreements on stop requests (Ctrl-C, SIGTERM) over ranks, "
                                   "under torchrun.")
    eval_every: int = key(0, "Evaluate every N iterations (0 = only at the end), for systems that offer "
                             "evaluate().")
    best_metric: str = key("", "A key of the evaluation's result: the best state so far by it is kept as "
                               "checkpoints/best.pt (needs `eval_every` > 0); empty = none.")
    best_mode: Literal["max", "min"] = key("max", "Whether the best `best_metric` is the largest (`max`) or the "
                                                  "smallest (`min`).")
    trackers: list[str] = key(factory=list, doc="Experiment trackers beside TensorBoard / metrics.jsonl: `mlflow` "
                              "and / or `wandb`. Scalars, sample grids and the resolved config go to each "
                              "(multinet.tracking.backends).")
    mlflow_uri: str = key("", "The MLflow tracking URI; empty = a local file store under the run folder.")
    mlflow_experiment: str = key("multinet", "The MLflow experiment a run is logged under.")
    wandb_project: str = key("multinet", "The Weights & Biases project a run is logged under.")
    wandb_mode: Literal["offline", "online", "disabled"] = key("offline", "The Weights & Biases mode: `offline` "
                                                                          "(written locally), `online` or `disabled`.")

    def __post_init__(self) -> None:
        for i, name in enumerate(self.trackers):
            package, extra = {"mlflow": ("mlflow", "mlflow"), "wandb": ("wandb", "wandb")}.get(name, (None, None))
            if package is None:
                raise FieldError(f"trackers[{i}]", f"must be 'mlflow' or 'wandb', got {name!r}")
            if importlib.util.find_spec(package) is None:
                raise FieldError(f"trackers[{i}]", f"{name!r} is not installed: pip install \"multinet[{extra}]\"")
        # *_every = 0 turns that periodic event off (the final checkpoint is still written).
        at_least(self, 0, "log_every", "checkpoint_every", "eval_every", note=" (0 turns it off)")
        at_least(self, 0, "check_every", note=" (0: only before a logged row or a checkpoint)")
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

    description: str = key("", "Free text, shown in the run's summary.")
    seed: int = key(0, "Seeds the initial weights and every named random stream (data, noise, channel).")
    device: str = key("auto", "`auto` (CUDA when present), `cpu`, `cuda` or `cuda:N` (`--device`).")
    train: TrainConfig = key(factory=TrainConfig, doc="The `[train]` table: length, precision, logging, "
                                                      "checkpoints and evaluation.")

    # What a resumed run may change (key prefixes): its length, logging, checkpoints and
    # evaluation, and where it runs. Everything else is the run itself: the saved weights and
    # optimizer state carry on as they are. Systems add their own (System.resume_may_change).
    RESUME_MAY_CHANGE = ("train.", "eval.", "device", "description")

    def __post_init__(self) -> None:
        within(self, "seed", low=0, high=MAX_SEED)
