"""Named random streams: one registry per run, seeds derived from names, checkpointed as a whole.

A system asks for ``streams.get("noise")`` instead of seeding its own generators at ``seed + k``:
the stream's seed comes from (run seed, name), so adding a stream never shifts another one, and
the registry's ``state_dict`` holds every stream, so resume continues each where it was.
``fresh(name)`` gives a new generator at the stream's starting point each call (evaluation draws
that must be the same every time, and must not move a training stream).

A system may pin streams to fixed offsets from the run seed (``System.stream_seeds``): the shipped
GAN and autoencoder keep the seeds they had before the registry existed, so their published
figures reproduce. ``"data"`` is the run seed itself for every system; any other name gets a seed
hashed from the name.
"""
from __future__ import annotations

import contextlib
import random
import zlib
from typing import Any, Iterator, Mapping

import numpy as np
import torch

__all__ = ["RandomStreams", "derive_seed", "seed_everything", "forked_rng", "DEFAULT_OFFSETS"]

# name -> offset from the run seed, for every system.
DEFAULT_OFFSETS = {"data": 0}


def seed_everything(seed: int) -> None:
    """Python's, NumPy's and torch's global generators (what streams do not cover: dropout, user code)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def forked_rng() -> Iterator[None]:
    """Run a block without moving the global generators (Python's, NumPy's, torch's on the CPU
    and on every initialised CUDA device): evaluation and sampling inside a training run go through
    this, so what they draw never changes the training that follows, and a resumed run that
    evaluates at other moments (a module an evaluation builds on its first call) trains the same."""
    py, npy = random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)


def derive_seed(seed: int, name: str, offsets: Mapping[str, int] | None = None) -> int:
    """The seed of stream ``name`` in a run seeded ``seed`` (stable across processes and versions):
    ``seed + offsets[name]`` for a pinned name (``DEFAULT_OFFSETS`` and ``offsets``), else a hash."""
    pinned = {**DEFAULT_OFFSETS, **(offsets or {})}
    if name in pinned:
        return seed + pinned[name]
    return (seed * 0x9E3779B1 + zlib.crc32(name.encode())) % (2 ** 63)


class RandomStreams(Mapping[str, torch.Generator]):
    """``get(name, device)`` creates a stream once and returns it after; a mapping of name → generator."""

    def __init__(self, seed: int, offsets: Mapping[str, int] | None = None) -> None:
        self.seed, self.offsets = seed, dict(offsets or {})
        self._gens: dict[str, torch.Generator] = {}

    def seed_of(self, name: str) -> int:
        """The seed stream ``name`` starts from."""
        return derive_seed(self.seed, name, self.offsets)

    def get(self, name: str, device: torch.device | str = "cpu") -> torch.Generator:  # type: ignore[override]
        g = self._gens.get(name)
        if g is None:
            g = self._gens[name] = self.fresh(name, device)
        elif torch.device(device).type != g.device.type:
            raise ValueError(f"random stream {name!r} lives on {g.device}, asked for on {device}")
        return g

    def fresh(self, name: str, device: torch.device | str = "cpu") -> torch.Generator:
        """A new generator at the start of stream ``name`` (not kept, not checkpointed)."""
        return torch.Generator(device=device).manual_seed(self.seed_of(name))

    def __getitem__(self, name: str) -> torch.Generator:
        return self._gens[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._gens)

    def __len__(self) -> int:
        return len(self._gens)

    def state_dict(self) -> dict[str, Any]:
        return {k: g.get_state() for k, g in self._gens.items()}
