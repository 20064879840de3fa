"""Learning-rate schedules built from config, as closed-form factors of the step count.

Every schedule except reduce-on-plateau is ``lr = initial_lr * factor(t)`` per group. Writing
them this way makes them exact on resume (only ``t`` is state) and lets a parameter group join
mid-training (unfreezing) at its own rule-derived LR without any warm-up surprise; torch's
LambdaLR/SequentialLR/OneCycleLR refuse such groups and LinearLR silently re-warms them.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch

from ..config import key

__all__ = ["ScheduleSpec", "FactorScheduler", "PlateauScheduler", "build_scheduler",
           "advance", "SCHEDULES", "schedule_function", "SCHEDULE_FUNCTIONS"]

SCHEDULES = ("none", "step", "multistep", "exponential", "cosine", "warmup_cosine", "onecycle", "linear",
             "constant_linear", "lambda", "plateau")
# The schedules whose shape depends on the run's length.
NEEDS_TOTAL = ("cosine", "warmup_cosine", "onecycle", "linear", "constant_linear")
# Functions a checkpoint may name as a ``lambda`` schedule's ``fn`` without the user naming them
# again or trusting the file: those marked with ``schedule_function`` (a recipe names any function).
SCHEDULE_FUNCTIONS: list[Callable[[int], float]] = []


def schedule_function(fn: Callable[[int], float]) -> Callable[[int], float]:
    """Mark ``fn(t) -> factor`` as a schedule: a resumed run's checkpoint may then name it as a
    ``lambda`` schedule's ``fn`` (``multinet.state.imports``: a saved file names code by its role)."""
    if not callable(fn):
        raise TypeError(f"schedule_function: {fn!r} is not a function")
    if fn not in SCHEDULE_FUNCTIONS:
        SCHEDULE_FUNCTIONS.append(fn)
    return fn


@dataclass
class ScheduleSpec:
    """A learning-rate schedule as plain values (a recipe's ``[networks.<name>.schedule]`` table): the
    factor of every group's initial lr as a closed-form function of the step (or epoch) count ``t``."""

    name: Literal[SCHEDULES] = key(
        "none", "The schedule: `none` (a constant lr), `step` (× gamma every step_size intervals), "
                "`multistep` (× gamma at each of the milestones), `exponential` (× gamma every "
                "interval), `cosine` (from 1 to min_factor over total), `warmup_cosine` (a linear "
                "warm-up, then cosine), `onecycle` (torch's OneCycleLR shape), `linear` (from 1 to "
                "min_factor over total, after a warm-up), `constant_linear` (1 for hold intervals, "
                "then linear to min_factor), `lambda` (fn(t) gives the factor) or `plateau` "
                "(ReduceLROnPlateau on the monitored value).")
    interval: Literal["step", "epoch"] = key(
        "step", "What the schedule counts: `step` (it advances after each optimizer step) or "
                "`epoch` (at the end of an epoch in which the network stepped); `plateau` reads its "
                "value at epoch ends either way.")
    step_size: int = key(1000, "`step`: intervals between decays.")
    gamma: float = key(0.1, "`step` / `multistep` / `exponential`: the decay factor.")
    milestones: list[int] = key(factory=list, doc="`multistep`: the intervals at which to decay.")
    total: int = key(0, "The schedule's length in intervals (cosine, warm-up cosine, one-cycle, linear, "
                        "constant-then-linear); 0 = the number of optimizer steps (or epochs) the network takes in "
                        "the run, filled in by the engine.")
    warmup: int = key(0, "`linear` / `warmup_cosine`: intervals of linear warm-up (factor (t + 1) / warmup) before "
                         "the decay.")
    min_factor: float = key(0.0, "`cosine` / `warmup_cosine` / `linear` / `constant_linear`: the factor the decay "
                                 "ends at, at `total`.")
    pct_start: float = key(0.3, "`onecycle`: fraction of total spent increasing.")
    div_factor: float = key(25.0, "`onecycle`: initial lr = max lr / div_factor.")
    final_div_factor: float = key(1e4, "`onecycle`: final lr = initial lr / final_div_factor.")
    patience: int = key(10, "`plateau`: epochs without improvement before decaying.")
    factor: float = key(0.1, "`plateau`: the decay factor.")
    mode: Literal["min", "max"] = key(
        "min", "`plateau`: whether the monitored value should go down (`min`) or up (`max`).")
    monitor: str = key("", "`plateau`: the logged value to watch (default: the network's latest phase loss).")
    hold: int = key(0, "`constant_linear`: intervals the factor holds at 1 before it decays linearly to "
                       "`min_factor` at `total` (CycleGAN / pix2pix: hold = n_epochs, total = n_epochs + "
                       "n_epochs_decay).")
    fn: str = key("", "`lambda`: the factor function fn(t), a Python function or its import path "
                      "(`\"my_pkg.sched:factor\"`); it must be a pure function of t so resume stays exact.")

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ValueError(f"schedule {self.name!r} unknown (valid: {', '.join(SCHEDULES)})")
        if self.interval not in ("step", "epoch"):
            raise ValueError(f"schedule interval {self.interval!r} unknown (valid: step, epoch)")
        for option in ("step_size", "total", "warmup", "hold", "patience"):
            if getattr(self, option) < 0:
                raise ValueError(f"schedule {option} must be >= 0, got {getattr(self, option)}")
        if self.name == "lambda" and not self.fn:
            raise ValueError("schedule 'lambda' needs fn: a function of the step (or its 'module:name' path)")
        if self.name == "constant_linear" and self.total and self.hold >= self.total:
            raise ValueError(f"schedule 'constant_linear': hold ({self.hold}) must be below total ({self.total})")


def _cos(a: float, b: float, frac: float) -> float:
    return b + (a - b) * (1 + math.cos(math.pi * min(max(frac, 0.0), 1.0))) / 2


def factor_fn(spec: ScheduleSpec, total: int) -> Callable[[int], float]:
    """The LR factor as a function of the step (or epoch) ``t``; ``spec.total`` wins over ``total``."""
    name, m, total = spec.name, spec.min_factor, spec.total or total
    if name == "none":
        return lambda t: 1.0
    if name == "step":
        return lambda t: spec.gamma ** (t // spec.step_size)
    if name == "multistep":
        ms = sorted(spec.milestones)
        return lambda t: spec.gamma ** bisect.bisect_right(ms, t)
    if name == "exponential":
        return lambda t: spec.gamma ** t
    if name == "lambda":
        from ..state.imports import import_function
        fn = import_function(spec.fn, "schedule.fn", SCHEDULE_FUNCTIONS, "a function registered as a schedule "
                             "(multinet.nets.schedule_function)") if isinstance(spec.fn, str) else spec.fn
        return lambda t: float(fn(t))
    if total <= 0:
        raise ValueError(f"schedule {name!r} needs its length: set total in its ScheduleSpec, give the Net "
                         f"total_steps, or let an Engine fill it in (it does when total = 0)")
    if name == "linear":
        w = spec.warmup
        return lambda t: (t + 1) / w if t < w else 1.0 + (m - 1.0) * min(1.0, (t - w) / max(1, total - w))
    if name == "constant_linear":
        h = spec.hold
        return lambda t: 1.0 if t < h else 1.0 + (m - 1.0) * min(1.0, (t - h) / max(1, total - h))
    if name == "cosine":
        return lambda t: _cos(1.0, m, t / total)
    if name == "warmup_cosine":
        w = spec.warmup
        return lambda t: (t + 1) / w if t < w else _cos(1.0, m, (t - w) / max(1, total - w))
    if name == "onecycle":
        # Same shape as torch's OneCycleLR (cosine annealing), relative to the group's max LR.
        lo, end = 1.0 / spec.div_factor, 1.0 / (spec.div_factor * spec.final_div_factor)
        up = float(spec.pct_start * total) - 1
        return lambda t: (_cos(lo, 1.0, t / up) if t <= up else
                          _cos(1.0, end, (t - up) / max(1e-12, total - 1 - up)))
    raise ValueError(f"schedule {name!r} has no closed form")


class FactorScheduler:
    """``group['lr'] = group['initial_lr'] * factor(t)`` for every group, including later ones."""

    def __init__(self, optimizer: torch.optim.Optimizer, spec: ScheduleSpec, total: int = 0) -> None:
        self.optimizer, self.spec, self.t, self.total = optimizer, spec, 0, 0
        # Without a length yet (the engine fills it in), the factor stays 1 until set_total.
        self.fn: Callable[[int], float] | None = None
        self.set_total(spec.total or total)

    def set_total(self, total: int) -> None:
        """Give a schedule its length (a no-op when its spec fixes one)."""
        total = self.spec.total or total
        self.total = total
        if total > 0 or self.spec.name not in NEEDS_TOTAL:
            self.fn = factor_fn(self.spec, total)
        self.apply()

    def apply(self) -> None:
        if self.fn is None and self.t > 0:
            factor_fn(self.spec, 0)  # raises, saying what to pass
        f = self.fn(self.t) if self.fn is not None else 1.0
        for g in self.optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
            g["lr"] = g["initial_lr"] * f

    def step(self, metric: float | None = None) -> None:
        self.t += 1
        self.apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t, "total": self.total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The saved length wins over the one this run computed: a run extended on resume keeps the
        schedule it was trained with, so a decay that has finished stays finished (the LR stays at
        its final value) instead of jumping back up to where a longer decay would be."""
        self.t = int(state["t"])
        saved = state.get("total")
        if isinstance(saved, int) and saved > 0 and saved != self.total:
            self.set_total(saved)
        self.apply()


class PlateauScheduler(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """torch's ReduceLROnPlateau, told about groups that join later."""

    def __init__(self, optimizer: torch.optim.Optimizer, spec: ScheduleSpec) -> None:
        super().__init__(optimizer, mode=spec.mode, factor=spec.factor, patience=spec.patience,
                         min_lr=0.0)
        self.spec = spec

    def group_added(self) -> None:
        while len(self.min_lrs) < len(self.optimizer.param_groups):
            self.min_lrs.append(0.0)
        if hasattr(self, "_last_lr"):
            self._last_lr = [g["lr"] for g in self.optimizer.param_groups]


def build_scheduler(optimizer: torch.optim.Optimizer, spec: ScheduleSpec | None, total: int = 0):
    """The scheduler ``spec`` describes on ``optimizer`` (``None`` for ``name = "none"``); ``total``
    fills in a length the spec leaves at 0. Step it with ``advance``."""
    if spec is None or spec.name == "none":
        return None
    if spec.name == "plateau":
        return PlateauScheduler(optimizer, spec)
    return FactorScheduler(optimizer, spec, total)


def advance(scheduler: Any, spec: ScheduleSpec | None, event: str, stepped: bool,
            metric: Callable[[], float] | None = None) -> None:
    """The stepping rules, in one place. ``event`` is ``"step"`` (after an optimizer step) or
    ``"epoch"`` (at an epoch's end); ``stepped``: whether the optimizer really stepped (a step
    skipped by the fp16 scaler, or an epoch in which the network never trained, does not count).

    - ``interval = "step"`` schedules advance after each real optimizer step;
    - ``interval = "epoch"`` schedules advance at the end of an epoch in which the network stepped;
    - ``plateau`` reads ``metric()`` at the end of such an epoch, whatever its interval.
    """
    if scheduler is None or spec is None or not stepped:
        return
    if isinstance(scheduler, PlateauScheduler):
        if event == "epoch":
            scheduler.step(metric())
    elif event == spec.interval:
        scheduler.step()
