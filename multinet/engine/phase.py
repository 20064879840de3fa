"""A phase: which networks train, with which step function, on which iterations.

Training is a list of phases. Each names the networks it trains (the others stay frozen for its
step) and a step function of the engine that returns its loss terms; ``every`` / ``repeat`` /
``start`` / ``stop`` say when it runs (k:1 ratios, every-n, N steps then the next phase).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .update import UPDATES

__all__ = ["Phase", "check_start", "warn_idle", "check_phases"]


@dataclass
class Phase:
    """``step(engine)`` returns ``{"loss": tensor, <term>: tensor, ...}`` for ``nets`` to minimise.

    ``nets``: the names of the networks this phase trains (one name alone is fine). Schedule:
    the phase runs ``repeat`` times on iterations ``start <= it < stop`` with
    ``(it - start) % every == 0`` (k:1 ratios, every-n, or N steps then the next phase).

    ``update``: how the phase updates its networks, ``"standard"`` (backward and an optimizer step
    per network, ``multinet.engine.update.standard``), ``"manual"`` (the step function does its own
    backward and steps) or a function ``fn(engine, phase) -> terms`` of your own. ``accumulate``:
    micro-batches per optimizer step in the standard update (the step function is called that many
    times per run of the phase, each on its own batch; the loss is divided by it).
    """

    name: str
    nets: tuple[str, ...]
    step: Callable[[Any], dict[str, torch.Tensor]]
    every: int = 1
    repeat: int = 1
    start: int = 0
    stop: int | None = None
    update: str | Callable[[Any, "Phase"], dict[str, Any]] = "standard"
    accumulate: int = 1

    def __post_init__(self) -> None:
        # A bare string would otherwise be iterated letter by letter.
        self.nets = (self.nets,) if isinstance(self.nets, str) else tuple(self.nets)
        if not self.nets or not all(isinstance(n, str) for n in self.nets):
            raise ValueError(f"phase {self.name!r}: nets must name one or more networks, got {self.nets!r}")
        if not callable(self.step):
            raise ValueError(f"phase {self.name!r}: step must be a function of the engine, got {self.step!r}")
        if isinstance(self.update, str):
            if self.update not in UPDATES:
                raise ValueError(f"phase {self.name!r}: update {self.update!r} unknown (valid: {', '.join(UPDATES)}, "
                                 "or a function of (engine, phase))")
            self.update = UPDATES[self.update]
        elif not callable(self.update):
            raise ValueError(f"phase {self.name!r}: update must be a name or a function of (engine, phase), "
                             f"got {self.update!r}")
        if self.accumulate != 1 and self.update is not UPDATES["standard"]:
            raise ValueError(f"phase {self.name!r}: accumulate is the standard update's; an update of its own "
                             "accumulates as it likes")
        for key, low in (("every", 1), ("repeat", 1), ("start", 0), ("accumulate", 1)):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < low:
                raise ValueError(f"phase {self.name!r}: {key} must be an integer >= {low}, got {getattr(self, key)!r}")
        if self.stop is not None and self.stop <= self.start:
            raise ValueError(f"phase {self.name!r}: stop ({self.stop}) must be after start ({self.start})")

    def active(self, it: int) -> bool:
        return it >= self.start and (self.stop is None or it < self.stop) and (it - self.start) % self.every == 0

    def count(self, total: int) -> int:
        """On how many of the iterations ``0 .. total-1`` this phase runs."""
        end = total if self.stop is None else min(self.stop, total)
        return 0 if end <= self.start else -(-(end - self.start) // self.every)


def check_start(nets: dict[str, Any], amp: str, device: torch.device, steps_per_epoch: int) -> None:
    """What would fail silently in a run: an epoch schedule without epochs (an error), an fp16
    optimizer that reads back every step, fp16 on the CPU (warnings)."""
    for net in nets.values():
        spec = net.config.schedule
        if net.scheduler is not None and (spec.interval == "epoch" or spec.name == "plateau") and not steps_per_epoch:
            other = "" if spec.name == "plateau" else " or use interval = 'step'"
            raise ValueError(f"networks.{net.name}.schedule: {spec.name!r} steps at the end of an epoch, and this "
                             "engine has no epoch length: give steps_per_epoch (a system: EngineOptions("
                             f"steps_per_epoch=...)){other}")
        if amp == "fp16" and net.optimizer is not None and not getattr(net.optimizer, "_step_supports_amp_scaling", 0):
            warnings.warn(f"{net.name}: under amp = 'fp16' its optimizer reads one flag back from the device per step "
                          f"(to skip an overflowing step); networks.{net.name}.fused = true skips it on the device "
                          "instead", stacklevel=3)
    if amp == "fp16" and device.type == "cpu":
        warnings.warn("amp = 'fp16' on the CPU runs in emulation, several times slower than fp32; use "
                      "'bf16' (fast on CPUs with AMX / AVX512-BF16) or 'none'", stacklevel=3)


def warn_idle(phases: list[Phase], nets: Any, done: int, total: int) -> None:
    """Phases that never run in a run of ``total`` iterations, and networks that no phase trains:
    warned when a run starts (``done`` < ``total`` iterations in; a phase that has ended is fine)."""
    if done >= total:
        return
    for p in phases:
        if p.count(total) == 0:
            warnings.warn(f"phase {p.name!r} never runs in a run of {total} steps (start {p.start}, stop {p.stop}, "
                          f"every {p.every})", stacklevel=4)
        elif p.every > total:
            warnings.warn(f"phase {p.name!r}: every = {p.every} is longer than the run ({total} steps): it runs once",
                          stacklevel=4)
    for name in sorted(set(nets) - {n for p in phases for n in p.nets}):
        warnings.warn(f"network {name!r} is in no phase: it never trains", stacklevel=4)


def check_phases(phases: list[Phase], nets: Any) -> None:
    """Every phase trains networks that exist, under a name no other phase has."""
    unknown = {n for p in phases for n in p.nets} - set(nets)
    if unknown:
        raise ValueError(f"phases name unknown networks: {', '.join(sorted(unknown))} (networks: {', '.join(nets)})")
    if len({p.name for p in phases}) != len(phases):
        raise ValueError(f"phase names must be unique, got {[p.name for p in phases]}")
