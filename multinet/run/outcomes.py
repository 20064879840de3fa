"""How a training run that raised ends: the reason (``multinet.engine.StopReason``, whose exit code
is in ``EXIT_CODES``), the error a ``RunResult`` carries and the one line the run says."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import error_line
from ..engine import NonFiniteLoss, StepError, StopReason
from ..engine.divergence import weight_headroom
from ..startup import Terminated

__all__ = ["ended"]


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
    error = str(e) if isinstance(e, StepError) else f"{error_line(e)} (during step {engine.iteration + 1})"
    return StopReason.FAILED, error, f"error{where}: {error}; last good checkpoint kept: {kept} " \
                                     "(MULTINET_TRACEBACK=1 shows where)"
