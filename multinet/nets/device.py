"""Where a network lives (``auto`` is the GPU when there is one; under torchrun, this process's GPU)
and what that allows: a device the machine does not have, or a ``torch.compile`` mode that needs
CUDA graphs off CUDA, is refused in one line before anything is built on it."""
from __future__ import annotations

import torch

from .. import distributed

__all__ = ["resolve_device", "compile_options"]


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` is CUDA when present, else CPU; anything else is passed to ``torch.device``.
    Under torchrun a bare ``cuda`` (or ``auto`` on a GPU machine) is this process's LOCAL_RANK GPU."""
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {str(device)!r} is not a device (auto, cpu, cuda, cuda:N, mps, ...)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} asked for, but CUDA is not available here")
    if dev.type == "cpu" and dev.index not in (None, 0):  # torch accepts cpu:99 and ignores the index
        raise ValueError(f"device {str(device)!r}: the CPU has no index (use cpu)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                         f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    if dev.type == "cuda" and dev.index is None and distributed.launched():
        dev = torch.device("cuda", distributed.local_rank())
    return dev


CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def compile_options(compile: bool | str, name: str, device: torch.device) -> dict[str, str]:
    """``module.compile`` keywords for ``compile`` (``True``: torch's default mode, or a mode name)."""
    mode = "default" if compile is True else str(compile)
    if mode in CUDA_GRAPH_MODES and device.type != "cuda":
        raise ValueError(f"{name}: compile mode {mode!r} replays CUDA graphs, but this network is on {device}; use "
                         "train.compile_mode='default' here")
    return {} if mode == "default" else {"mode": mode}
