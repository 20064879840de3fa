"""Image datasets read from files batch by batch (through DataLoader workers), not held in memory:
a folder of images (class subfolders, or flat) and torchvision's CelebA. Each returns a dataset
of (image in [-1, 1], label) with the ``samples`` / ``classes`` that ImageFolder has."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["image_folder", "celeba"]


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def image_folder(root: str, transform: Any) -> Any:
    """torchvision's ImageFolder over class subfolders (labels = folder names, sorted), or every
    image directly in ``root`` as one class when it has no subfolders."""
    import torchvision
    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"data.root={root!r}: no such folder (imagefolder wants class subfolders or images)")
    if any(p.is_dir() for p in folder.iterdir()):
        return torchvision.datasets.ImageFolder(root, transform=transform)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"data.root={root!r}: no images ({', '.join(_IMAGE_SUFFIXES)}) and no class subfolders")
    return _FlatImages(files, transform)


class _Unlabelled:
    """A dataset's images with label 0 (CelebA's targets are attributes, not classes)."""

    def __init__(self, ds: Any) -> None:
        self.ds, self.classes = ds, []
        folder = Path(ds.root) / ds.base_folder / "img_align_celeba"
        self.samples = [(str(folder / name), 0) for name in ds.filename]  # what keys the metrics' cache

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        return self.ds[i][0], 0


class _FlatImages:
    """Images directly in a folder, label 0: the ``samples`` / ``classes`` ImageFolder has."""

    def __init__(self, files: list[Path], transform: Any) -> None:
        self.samples, self.classes, self.transform = [(str(p), 0) for p in files], [], transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from torchvision.datasets.folder import default_loader
        return self.transform(default_loader(self.samples[i][0])), 0


def celeba(root: str, size: int, download: bool) -> Any:
    """torchvision's CelebA (aligned faces), the common GAN crop: centre 178 × 178, then ``size``."""
    import torchvision
    import torchvision.transforms.v2 as T
    tf = T.Compose([T.CenterCrop(178), T.Resize(size), T.ToImage(), T.ToDtype(torch.float32, scale=True),
                    T.Normalize([0.5] * 3, [0.5] * 3)])
    try:
        return _Unlabelled(torchvision.datasets.CelebA(root, split="train", target_type=[], transform=tf,
                                                       download=download))
    except (RuntimeError, OSError):
        if download:
            raise RuntimeError(f"dataset celeba: download to {root} failed (no network, or the Google Drive quota); "
                               f"put img_align_celeba/ and CelebA's list_*.txt and identity_CelebA.txt files under "
                               f"{root}/celeba") from None
        raise RuntimeError(f"dataset celeba not found under {root}/celeba (set data.download=true to fetch it, or "
                           f"put img_align_celeba/ and CelebA's list_*.txt and identity_CelebA.txt files there)") from None
