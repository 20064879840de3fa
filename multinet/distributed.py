"""Data-parallel training on ``torch.distributed``: the process group, rank-aware random draws,
and collective flags. Launch with ``torchrun``; rank and world size come from its environment.

Random streams. Every rank holds the *same* seeded generators and draws the *global* batch
(world × per-rank batch), keeping only its own rows (``randn`` / ``rand`` / ``randint`` /
``local_rows`` below). So the data and noise of a step do not depend on how the global batch is
split: 2 ranks × batch b see exactly what 1 rank × batch 2b sees, and since every rank's
generators are identical, rank 0's checkpoint holds the whole run and resumes under any world
size with the same streams. Drawing world× the numbers costs little next to the networks.

Each network gets its own ``DistributedDataParallel`` (see ``Net.wrapped``), built without
``find_unused_parameters``: a phase calls only the networks it trains through their wrappers,
and the frozen ones raw, so a frozen network never leaves a reducer waiting.
"""
from __future__ import annotations

import datetime
import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "info", "launched", "local_rank", "init", "shutdown", "local_rows", "randn", "rand",
           "randint", "all_reduce", "agree_max", "barrier"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def info() -> DistInfo:
    """This process's place: from the live process group, else (0, 1, 0)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size())
    return _ALONE


_ALONE = DistInfo()  # frozen: one shared value for the common case (asked several times a step)


def launched() -> bool:
    """True under ``torchrun`` (or any launcher that sets WORLD_SIZE) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_rank() -> int:
    """This process's index on its machine (torchrun's LOCAL_RANK): its GPU under CUDA."""
    return int(os.environ.get("LOCAL_RANK", 0))


def init(device_type: str, timeout_s: float = 900.0) -> DistInfo:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU); a no-op for one process.

    ``timeout_s`` bounds every collective: a rank that dies or stalls makes the others fail
    with an error instead of hanging.
    """
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return info()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    local = local_rank()
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA device(s) here")
        torch.cuda.set_device(local)
    kwargs = {"device_id": torch.device("cuda", local)} if device_type == "cuda" else {}
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
    return info()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        # Objects that hold the process group (DDP reducers in a reference cycle) go while it is
        # alive, not at interpreter exit after it is destroyed.
        gc.collect()
        dist.destroy_process_group()


def local_rows(t: torch.Tensor, world: DistInfo | None = None) -> torch.Tensor:
    """This rank's equal share of a global batch's rows."""
    w = world or info()
    if w.world == 1:
        return t
    n = t.shape[0] // w.world
    return t[w.rank * n:(w.rank + 1) * n]


def _local_draw(fn, n: int, *shape: int, **kwargs) -> torch.Tensor:
    w = info()
    return local_rows(fn(w.world * n, *shape, **kwargs), w)


def randn(n: int, *shape: int, generator: torch.Generator | None, device: torch.device | str,
          dtype: torch.dtype | None = None) -> torch.Tensor:
    """``n`` rows of normal noise: this rank's rows of a global draw of world × ``n``."""
    return _local_draw(torch.randn, n, *shape, generator=generator, device=device, dtype=dtype)


def rand(n: int, *shape: int, generator: torch.Generator | None, device: torch.device | str,
         dtype: torch.dtype | None = None) -> torch.Tensor:
    """``n`` rows of uniform noise on [0, 1), drawn like ``randn``."""
    return _local_draw(torch.rand, n, *shape, generator=generator, device=device, dtype=dtype)


def randint(high: int, n: int, generator: torch.Generator | None, device: torch.device | str) -> torch.Tensor:
    """``n`` integers in [0, high), drawn like ``randn``."""
    return _local_draw(lambda rows, **kw: torch.randint(high, (rows,), **kw), n, generator=generator, device=device)


def all_reduce(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Reduce ``t`` over ranks in place (``sum``, ``min`` or ``max``); identity for one process."""
    if info().world > 1:
        dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[op])
    return t


def agree_max(value: int, device: torch.device) -> int:
    """The largest ``value`` over ranks (every rank gets the same answer)."""
    if info().world == 1:
        return value
    return int(all_reduce(torch.tensor([value], dtype=torch.long, device=device), "max").item())


def barrier() -> None:
    if info().world > 1:
        dist.barrier()
