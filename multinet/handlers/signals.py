"""Ctrl-C / SIGTERM: finish the iteration, save, and exit cleanly.

The first signal asks the engine to stop at the next iteration boundary (under torch.distributed
at the next agreement point, on every rank), after which the checkpointer writes the final state.
A second Ctrl-C more than 2 s later leaves at once (``KeyboardInterrupt``); the same signal within
2 s counts once, since torchrun passes on a terminal's Ctrl-C that its workers already received.
"""
from __future__ import annotations

import signal
import threading
import time
from typing import Any

from ..engine.events import Event

__all__ = ["StopOnSignal"]


class StopOnSignal:
    """On SIGINT / SIGTERM, asks the engine to stop at the next iteration boundary (the run then
    saves a checkpoint and exits 130 / 143: ``multinet.engine.EXIT_CODES``); a second Ctrl-C interrupts at once. ``restore()``
    puts the previous handlers back."""

    def __init__(self, signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self.signals = signals
        self._old: dict[int, Any] = {}
        self._first: dict[int, float] = {}
        self._engine: Any = None

    def attach(self, engine: Any) -> None:
        self._engine = engine
        engine.on(Event.STARTED, lambda e: self.install())
        engine.on(Event.COMPLETED, lambda e: self.restore())

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread() or self._old:
            return
        self._old = {s: signal.signal(s, self._on_signal) for s in self.signals}

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum in self._first and time.monotonic() - self._first[signum] > 2.0:
            raise KeyboardInterrupt
        self._first.setdefault(signum, time.monotonic())
        self._engine.request_stop(signal.Signals(signum).name)
