"""Checkpoints every N iterations with keep-last-k, a final one, and the best by an evaluation figure.

Every save first checks the losses: a diverged state never replaces the last good checkpoint.
Files: ``step_XXXXXXXX.pt`` (the newest ``keep_last``), ``last.pt`` (always the newest) and, with
``best``, ``best.pt`` (the state with the best ``best`` figure so far; the figure is checkpointed,
so a resumed run keeps comparing against it).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..engine.events import Event
from ..state.checkpoint import CheckpointManager, save_checkpoint

__all__ = ["Checkpointer"]


class Checkpointer:
    """Saves the engine to ``folder`` every ``every`` iterations (``step_<N>.pt`` and ``last.pt``,
    atomically), keeps the newest ``keep_last`` step files, and with ``best`` (a figure of the
    evaluations, ``Event.EVALUATED``) also ``best.pt`` by ``mode`` (max / min).
    ``enabled=False`` (ranks other than 0) saves nothing. The last handler of a step."""
    # A checkpoint written before this handler kept state (or without ``best``) resumes fine.
    optional_state = True

    def __init__(self, folder: str | Path, every: int = 1000, keep_last: int = 3, best: str = "",
                 mode: str = "max", enabled: bool = True) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"checkpoint best mode {mode!r} unknown (valid: max, min)")
        self.manager = CheckpointManager(folder, keep_last)
        self.every, self.best, self.mode, self.enabled = every, best, mode, enabled
        self.best_value: float | None = None
        self.saved_at = -1

    def attach(self, engine: Any) -> None:
        engine.on(Event.ITERATION_COMPLETED, self.save, self.every)
        engine.on(Event.COMPLETED, self._final)
        if self.best:
            engine.on(Event.EVALUATED, lambda e: self.consider(e, e.evaluation))

    @property
    def last(self) -> Path:
        return self.manager.last

    def step_file(self, step: int) -> Path:
        """Where the checkpoint of iteration ``step`` is (or would be) written."""
        return self.manager.step_path(step)

    def save(self, engine: Any) -> Path | None:
        engine.check_finite()  # a collective under torch.distributed: every rank calls save
        self.saved_at = engine.iteration
        if not self.enabled:
            return None
        return self.manager.save(engine.state_dict(), engine.iteration)

    def _final(self, engine: Any) -> None:
        if self.saved_at != engine.iteration:  # the final state, unless just saved
            self.save(engine)

    def consider(self, engine: Any, metrics: dict[str, Any]) -> None:
        """Write ``best.pt`` when ``metrics[best]`` improves on the best so far (rank 0 only: no collectives)."""
        if self.best and self.best not in metrics:  # a typo: say so at the first evaluation, not never
            figures = ", ".join(k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
            raise ValueError(f"train.best_metric: {self.best!r} is not a figure the evaluation returns (it returns: "
                             f"{figures or 'no numbers'})")
        value = metrics.get(self.best) if self.best else None
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        better = self.best_value is None or (value > self.best_value if self.mode == "max" else value < self.best_value)
        if better:
            self.best_value = float(value)
            if self.enabled:
                save_checkpoint(engine.state_dict(), self.manager.dir / "best.pt")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_value": self.best_value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("best") == self.best:
            self.best_value = state.get("best_value")
