"""A phase: which networks train, with which step function, on which iterations.

Training is a list of phases. Each names the networks it trains (the others stay frozen for its
step) and a step function of the engine that returns its loss terms; ``every`` / ``repeat`` /
``start`` / ``stop`` say when it runs (k:1 ratios, every-n, N steps then the next phase).
"""
from __future__ import annotations

import os
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch

__all__ = ["Phase", "StepError", "keep_plan", "check_loss", "step_term", "user_line", "error_rate", "bit_error_rate"]


@dataclass
class Phase:
    """``step(engine)`` returns ``{"loss": tensor, <term>: tensor, ...}`` for ``nets`` to minimise.

    ``nets``: the names of the networks this phase trains (one name alone is fine). Schedule:
    the phase runs ``repeat`` times on iterations ``start <= it < stop`` with
    ``(it - start) % every == 0`` (k:1 ratios, every-n, or N steps then the next phase).
    """

    name: str
    nets: tuple[str, ...]
    step: Callable[[Any], dict[str, torch.Tensor]]
    every: int = 1
    repeat: int = 1
    start: int = 0
    stop: int | None = None

    def __post_init__(self) -> None:
        # A bare string would otherwise be iterated letter by letter.
        self.nets = (self.nets,) if isinstance(self.nets, str) else tuple(self.nets)
        if not self.nets or not all(isinstance(n, str) for n in self.nets):
            raise ValueError(f"phase {self.name!r}: nets must name one or more networks, got {self.nets!r}")
        if not callable(self.step):
            raise ValueError(f"phase {self.name!r}: step must be a function of the engine, got {self.step!r}")
        for key, low in (("every", 1), ("repeat", 1), ("start", 0)):
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


def keep_plan(phases: list[Phase], saved: dict[str, Any] | None, saved_total: int | None) -> None:
    """On resume, the phase plan a run was trained with stays: a system that computes its phase
    boundaries from ``train.steps`` would otherwise move them when a run is extended
    (``--resume --steps M``), re-running a stage that has ended. Each phase keeps its saved start
    and stop; a phase that ran to the end of the saved run runs to the end of the new one. Phases
    the checkpoint does not name (or a checkpoint from before plans were saved) keep the new plan."""
    if not isinstance(saved, dict) or not isinstance(saved_total, int):
        return
    for p in phases:
        bounds = saved.get(p.name)
        if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
            continue
        start, stop = bounds
        to_the_end = stop is None or stop >= saved_total
        p.start, p.stop = int(start), (p.stop if p.stop is None or p.stop > start else None) if to_the_end else stop


class StepError(RuntimeError):
    """An exception inside a phase's step function; the message names the phase, the step and the
    line of the user's code that raised it (``MULTINET_TRACEBACK=1`` re-raises the original)."""


# Where a traceback leaves the user's code: multinet's own files and torch's.
_LIBRARIES = (os.path.dirname(os.path.abspath(__file__)) + os.sep, os.path.dirname(torch.__file__) + os.sep)


def user_line(e: BaseException) -> str:
    """``file:line`` of the innermost frame outside multinet and torch (else the innermost frame)."""
    frames = traceback.extract_tb(e.__traceback__)
    own = [f for f in frames if not os.path.abspath(f.filename).startswith(_LIBRARIES)]
    frame = (own or frames)[-1] if frames else None
    if frame is None:
        return "unknown line"
    path = os.path.abspath(frame.filename)
    here = os.getcwd() + os.sep
    return f"{path[len(here):] if path.startswith(here) else path}:{frame.lineno}"


def check_loss(phase: Phase, terms: Any) -> torch.Tensor:
    """The ``loss`` a step returned, which must be a one-number tensor in the trained networks'
    graph; anything else is one line naming the phase and the fix. Reads only what the host knows
    (type, shape, ``requires_grad``): nothing comes back from the device."""
    where = f"phase {phase.name!r}"
    if not isinstance(terms, dict) or "loss" not in terms:
        got = f"a dict of {sorted(map(str, terms))}" if isinstance(terms, dict) else f"a {type(terms).__name__}"
        raise ValueError(f"{where}: its step must return a dict with a 'loss' tensor, got {got}")
    loss = terms["loss"]
    if not isinstance(loss, torch.Tensor):
        raise ValueError(f"{where}: its 'loss' is a {type(loss).__name__}, not a tensor: return the loss tensor itself "
                         "(not loss.item() or float(loss)), so that it can be backpropagated")
    if loss.numel() != 1:
        raise ValueError(f"{where}: its 'loss' has shape {tuple(loss.shape)}; it must be one number: reduce it "
                         "(.mean() or .sum())")
    if not loss.requires_grad:
        trained = " or ".join(f"engine.model({n!r})" for n in phase.nets)
        raise ValueError(f"{where}: its 'loss' does not depend on any trainable parameter (detached, computed under "
                         f"torch.no_grad(), or from frozen networks only); compute it from the output of {trained}")
    return loss


def step_term(phase: str, name: str, value: Any, device: torch.device) -> torch.Tensor:
    """A logged term as a detached float tensor: tensors as they are, Python numbers (``acc.item()``) too."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"phase {phase!r}: term {name!r} has shape {tuple(value.shape)}; a logged term is one "
                             "number: reduce it (.mean()) or log each value under its own name")
        return value.detach().float()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # Shown once per process (the default filter): a number made from a tensor (``.item()``,
        # ``float(t)``) read it back from the device, a stall per step on a GPU.
        warnings.warn(f"phase {phase!r}: term {name!r} is a Python number; if it came from a tensor, return the "
                      "tensor instead (reading it stalls every step; multinet.engine.error_rate and "
                      "bit_error_rate stay on the device)", stacklevel=4)
        return torch.tensor(float(value), device=device)
    raise ValueError(f"phase {phase!r}: term {name!r} is a {type(value).__name__}; a step returns tensors or numbers")


def check_phases(phases: list[Phase], nets: Any) -> None:
    """Every phase trains networks that exist, under a name no other phase has."""
    unknown = {n for p in phases for n in p.nets} - set(nets)
    if unknown:
        raise ValueError(f"phases name unknown networks: {', '.join(sorted(unknown))} (networks: {', '.join(nets)})")
    if len({p.name for p in phases}) != len(phases):
        raise ValueError(f"phase names must be unique, got {[p.name for p in phases]}")


# -- rates a step can return as terms without reading anything back --------------------------------
def error_rate(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The fraction of rows whose largest logit is not ``target``'s class (1 - accuracy), as a
    0-d tensor on the logits' device: a step term that costs no host read."""
    return (logits.detach().argmax(-1) != target).float().mean()


def bit_error_rate(logits: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """The fraction of bits whose logit (LLR, positive for 1) has the wrong sign, as a 0-d tensor
    on the logits' device (``bits`` of 0/1, any dtype)."""
    return ((logits.detach() > 0).float() != bits).float().mean()
