"""Batch samplers: where each training batch comes from, with the state a resume needs.

``TensorSampler`` shuffles device tensors with a seeded generator (no per-batch DataLoader
overhead); ``MixtureSampler`` draws 2-D Gaussian mixtures on the fly; ``LoaderSampler`` streams
files through DataLoader workers. Under torch.distributed each rank takes its own slice.
"""
from __future__ import annotations

from typing import Any

import torch

from .. import distributed
from ..state.streams import derive_seed
from .files import iterate

__all__ = ["TensorSampler", "MixtureSampler", "LoaderSampler"]


class TensorSampler:
    """Fixed-size batches from device tensors, reshuffled each epoch with a seeded CPU generator.

    ``batch_size`` is per rank: under torch.distributed every rank walks the same permutation
    in global batches of world × ``batch_size`` and takes its own slice of each.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> None:
        self.world = distributed.info()
        self.x, self.y, self.batch_size = x, y, batch_size
        if self.global_batch > len(x):
            raise ValueError(f"batch_size {batch_size}" + (f" × {self.world.world} ranks" if self.world.world > 1 else "")
                             + f" exceeds the dataset size {len(x)}")
        self.gen = torch.Generator().manual_seed(seed)
        self.epoch, self.pos = 0, 0
        self.perm = torch.randperm(len(x), generator=self.gen).to(x.device)

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world.world

    @property
    def steps_per_epoch(self) -> int:
        return len(self.x) // self.global_batch

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pos + self.global_batch > len(self.x):
            self.perm = torch.randperm(len(self.x), generator=self.gen).to(self.x.device)
            self.pos, self.epoch = 0, self.epoch + 1
        start = self.pos + self.world.rank * self.batch_size
        idx = self.perm[start:start + self.batch_size]
        self.pos += self.global_batch
        return self.x[idx], self.y[idx]

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state(), "perm": self.perm.cpu(), "pos": self.pos, "epoch": self.epoch}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.gen.set_state(s["gen"])
        self.perm = s["perm"].to(self.x.device)
        self.pos, self.epoch = int(s["pos"]), int(s["epoch"])


class MixtureSampler:
    """Points from a Gaussian mixture, drawn on the device with the sampler's own generator."""

    def __init__(self, means: torch.Tensor, sigma: float, batch_size: int, seed: int,
                 device: torch.device) -> None:
        self.means, self.sigma, self.batch_size = means.to(device), sigma, batch_size
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.steps_per_epoch = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        dev = self.means.device
        k = distributed.randint(len(self.means), self.batch_size, generator=self.gen, device=dev)
        noise = distributed.randn(self.batch_size, 2, generator=self.gen, device=dev)
        return self.means[k] + self.sigma * noise, k

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        from ..state.checkpoint import restore_generator
        restore_generator(self.gen, s["gen"], "mixture")


class LoaderSampler:
    """A DataLoader over a seeded permutation that can resume mid-epoch without replaying it.
    Under torch.distributed each rank loads its slice of every global batch. The shuffle and the
    workers' seeds come from the run seed and the epoch, never from torch's global generator."""

    def __init__(self, dataset: Any, batch_size: int, seed: int, workers: int, device: torch.device) -> None:
        self.dataset, self.batch_size, self.seed, self.workers = dataset, batch_size, seed, workers
        self.device, self.epoch, self.pos, self._it = device, 0, 0, None
        self.world = distributed.info()
        self.steps_per_epoch = len(dataset) // self.global_batch
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch_size {batch_size} × {self.world.world} rank(s) exceeds the dataset size {len(dataset)}")

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world.world

    def _iterator(self):
        perm = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(self.seed + self.epoch))
        w, b = self.world, self.batch_size
        batches = perm[:self.steps_per_epoch * b * w.world].view(self.steps_per_epoch, w.world, b)
        order = batches[self.pos:, w.rank].flatten().tolist()
        # The loader's own generator: starting an iterator draws the workers' base seed from it, and
        # from torch's global generator without one, which a resumed run would then start at another
        # point. Seeded per epoch (not position), so a run resumed mid-epoch gives its workers the
        # seeds the uninterrupted run's did.
        gen = torch.Generator().manual_seed(derive_seed(self.seed, f"loader epoch {self.epoch} rank {w.rank}"))
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=self.batch_size, sampler=order,
                                             num_workers=self.workers, pin_memory=self.device.type == "cuda",
                                             drop_last=True, persistent_workers=False, generator=gen)
        return iterate(loader)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._it is None:
            self._it = self._iterator()
        try:
            x, y = next(self._it)
        except StopIteration:
            self.epoch, self.pos = self.epoch + 1, 0
            self._it = self._iterator()
            x, y = next(self._it)
        self.pos += 1
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "pos": self.pos, "rows": self.pos * self.global_batch}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        # Rows, not batches: the global batch may differ when resuming under another world size.
        rows = int(s.get("rows", int(s["pos"]) * self.global_batch))
        self.epoch, self.pos, self._it = int(s["epoch"]), rows // self.global_batch, None
