"""The image autoencoder: an image encoded into n real channel uses and reconstructed, scored by
PSNR (images in [-1, 1], so the peak-to-peak range is 2)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import DataSource, LazyData
from ..run.system import EngineOptions
from . import evaluation
from .channels import Channel
from .networks import ImageDecoder, ImageEncoder
from .system import AeSystem

__all__ = ["ImageAutoencoder"]


class ImageAutoencoder(AeSystem):
    """Images through the channel and back (deep JSCC), scored by PSNR against the SNR."""
    kind = "images"
    figure = "psnr"
    columns = evaluation.IMAGE_COLUMNS
    rows_file = "psnr.csv"

    def networks(self, received: int) -> tuple[nn.Module, nn.Module]:
        # Training loads the images now; a saved run being evaluated loads them when asked.
        cfg, s = self.cfg, self.cfg.link
        self.images = LazyData(cfg.data, self.device, cfg.seed, now=not self.inference, shape=self.saved.get("shape"))
        return ImageEncoder(self.images.shape, s.n, s.hidden), ImageDecoder(self.images.shape, s.n, s.hidden)

    @property
    def data(self) -> DataSource:
        """The images (loaded on first use when built for inference)."""
        return self.images.get()

    def engine_options(self) -> EngineOptions:
        return EngineOptions(stateful={"data": self.data.sampler})

    def batch(self, encoder: nn.Module, channel: Channel) -> tuple[torch.Tensor, torch.Tensor]:
        target, _ = self.data.sampler.next()
        return target, channel.normalize(encoder(target))

    def losses(self, target: torch.Tensor, out: torch.Tensor, reduce: bool) -> tuple[torch.Tensor, dict[str, Any]]:
        loss = F.mse_loss(out, target) if reduce else (out - target).pow(2).flatten(1).mean(1)
        return loss, {"psnr": 10 * torch.log10(4.0 / loss.detach().mean())}

    def rows(self, label: str) -> list[dict[str, Any]]:
        x = self.data.held_out if self.data.held_out is not None else self.data.train
        return evaluation.image_rows(self.nets["encoder"].module, self.nets["decoder"].module, self.channels, x, label)

    def summary_name(self) -> str:
        return "images"

    def describe(self) -> str:
        return "image autoencoder"

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "shape": list(self.images.shape)}
