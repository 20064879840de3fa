"""A tqdm progress bar with each phase's latest loss."""
from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from ..engine.events import Event

__all__ = ["ProgressBar"]


class ProgressBar:
    """Advances once per iteration; shows the losses a ``LogScalars`` handler last wrote (if given)."""

    def __init__(self, total: int, desc: str = "", enabled: bool = True, scalars: Any = None) -> None:
        self.total, self.desc, self.enabled, self.scalars = total, desc, enabled, scalars
        self.bar: Any = None
        self.postfix: dict[str, str] = {}  # the losses shown
        self._shown = -1  # the logged step they come from

    def attach(self, engine: Any) -> None:
        engine.on(Event.STARTED, self._open)
        engine.on(Event.ITERATION_COMPLETED, self._update)
        engine.on(Event.COMPLETED, lambda e: self.close())

    def _open(self, engine: Any) -> None:
        self.bar = tqdm(total=self.total, initial=engine.iteration, disable=not self.enabled, dynamic_ncols=True,
                        desc=self.desc)

    def _update(self, engine: Any) -> None:
        # Whichever of the two fires first in a step, a newly logged row shows at the latest one step later.
        if self.scalars is not None and self.scalars.step > self._shown:
            self._shown = self.scalars.step
            self.postfix = {k[5:]: f"{v:.3f}" for k, v in self.scalars.last.items() if k.startswith("loss/")}
            self.bar.set_postfix(self.postfix, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
