"""How a training run that raised ends: the reason (``multinet.engine.StopReason``, whose exit code
is in ``EXIT_CODES``), the error a ``RunResult`` carries and the one line the run says."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..config import error_line
from ..config.fields import failure_line, migration_hint
from ..engine import HandlerError, NonFiniteLoss, StepError, StopReason
from ..startup import Terminated
from ..state.checkpoint import load_checkpoint

__all__ = ["ended", "weight_headroom", "NEAR_OVERFLOW"]


def ended(e: BaseException, engine: Any, last: Path) -> tuple[StopReason, str, str]:
    """How a run that raised ``e`` ended: its reason, its error, and the line that says so."""
    kept = last if last.exists() else "none"
    if isinstance(e, NonFiniteLoss):
        error = f"{e}; last good checkpoint kept: {f'{last}{weight_headroom(last)}' if last.exists() else 'none'}"
        return StopReason.DIVERGED, error, f"error: {error}"
    if isinstance(e, KeyboardInterrupt):  # a second Ctrl-C, or a signal after training (final evaluation)
        term = isinstance(e, Terminated)
        error = f"{'stopped by SIGTERM' if term else 'interrupted twice'} at step {engine.iteration}"
        return (StopReason.TERMINATED if term else StopReason.INTERRUPTED), error, \
            f"{error}; last checkpoint kept: {kept} (--resume continues, and finishes what the run had left)"
    # torch failed mid-run (an overflow, out of memory, a rank that died), or the step's code did
    where = f" [rank {engine.dist.rank}]" if engine.dist.world > 1 else ""
    if isinstance(e, (StepError, HandlerError)):  # their line names the phase or handler and the step
        error = str(e)
    elif isinstance(e, RuntimeError):
        error = f"{error_line(e)} (during step {engine.iteration + 1})"
    else:  # the system's own code (its handlers(), finish()): a bug there, named where it is
        error = f"{failure_line(e)} (at step {engine.iteration}){migration_hint(e)}"
    return StopReason.FAILED, error, f"error{where}: {error}; last good checkpoint kept: {kept} " \
                                     "(MULTINET_TRACEBACK=1 shows where)"


# Weights above this are reported as close to overflow: float16's largest value is 65,504, and a
# float32 weight of 1e30 squared (in a norm or a variance) is already infinite.
NEAR_OVERFLOW = 1e30


def weight_headroom(path: Path) -> str:
    """For a NaN stop's line: the largest |weight| in the kept checkpoint, and whether it is
    close to overflow (then resuming from it will likely diverge again)."""
    try:
        nets = load_checkpoint(path)["networks"]
    except (ValueError, OSError):
        return ""
    top = 0.0
    for net in nets.values():
        for v in (net.get("module") or {}).values() if isinstance(net, dict) else ():
            if isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel():
                top = max(top, float(v.detach().abs().max()))
    if top > NEAR_OVERFLOW:
        return (f" (but its largest |weight| is {top:.2g}, close to overflow: an earlier step_*.pt is likely the "
                "better start)")
    return f" (largest |weight| {top:.2g})"
