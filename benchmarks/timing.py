"""The clock every speed benchmark here uses: untimed warm-up iterations first (allocator, caches,
lazy initialisation), then the timed ones, with a GPU synchronised before reading the clock."""
from __future__ import annotations

import time
from typing import Any, Callable

import torch


def sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_iteration(step: Callable[[], Any], steps: int, warmup: int = 20,
                          device: torch.device | None = None) -> float:
    """Seconds per call of ``step`` over ``steps`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - t) / steps


def engine_seconds_per_iteration(engine: Any, steps: int, warmup: int = 20,
                                 device: torch.device | None = None) -> float:
    """Seconds per iteration of ``engine`` over ``steps`` iterations, after ``warmup`` untimed ones."""
    engine.run(stop_at=warmup)
    sync(device)
    t = time.perf_counter()
    engine.run(stop_at=warmup + steps)
    sync(device)
    return (time.perf_counter() - t) / steps
