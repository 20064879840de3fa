"""Image datasets read from files batch by batch (through DataLoader workers), not held in memory:
a folder of images (class subfolders, or flat) and torchvision's CelebA. Each returns a dataset
of (image in [-1, 1], label) with the ``samples`` / ``classes`` that ImageFolder has.

A file that does not decode stops the run with one line naming it (``UnreadableImage``): skipping
it would quietly train on other data than the folder holds, and a DataLoader worker's own error
arrives with the worker's whole traceback as its message (``iterate`` gives back its one line)."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterator

import torch

from ..config import error_line

__all__ = ["image_folder", "celeba", "read_image", "iterate", "UnreadableImage"]


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class UnreadableImage(RuntimeError):
    """An image file that does not decode (not an image, truncated, empty)."""


def read_image(path: str) -> Any:
    """The image at ``path`` as RGB (torchvision's loader), or ``UnreadableImage`` naming the file."""
    from torchvision.datasets.folder import default_loader
    try:
        return default_loader(path)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, struct.error... for a bad file
        raise _unreadable(path, e) from None


def _unreadable(path: str, e: Exception) -> UnreadableImage:
    why = re.sub(r" <_io\.\w+ name=.*>$", "", error_line(e))  # PIL repeats the file's name
    return UnreadableImage(f"{path}: not a readable image ({why}); remove or replace the file")


def iterate(loader: Any) -> Iterator[Any]:
    """``loader``'s batches. torch re-raises a worker's exception with ``Caught ... Original
    Traceback`` and the worker's frames as its message: an ``UnreadableImage`` comes out as its
    own last line again."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except UnreadableImage as e:
            text = str(e)
            if "Original Traceback" in text:
                text = text.strip().splitlines()[-1].split(": ", 1)[-1]
            raise UnreadableImage(text) from None
        yield batch


def image_folder(root: str, transform: Any) -> Any:
    """Class subfolders (labels = folder names, sorted; images found at any depth below each, in
    sorted order, as torchvision's ImageFolder) or, without subfolders, every image directly in
    ``root`` as one class. Hidden files and folders (``.ipynb_checkpoints``, ``.cache``) are not
    classes or images."""
    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"data.root={root!r}: no such folder (imagefolder wants class subfolders or images)")
    refuse_pseudo(folder, "data.root")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        files = sorted(p for p in folder.iterdir() if _is_image(p.name))
        if not files:
            raise FileNotFoundError(f"data.root={root!r}: no images ({', '.join(_IMAGE_SUFFIXES)}) and no class "
                                    f"subfolders")
        return _Images([(str(p), 0) for p in files], [], transform)
    samples, empty = [], []
    for label, name in enumerate(classes):
        walked = []
        # Links are followed (a class folder may be a link to images elsewhere), but never into a
        # folder already walked: a link back up the tree (a/loop -> ..) would repeat every image
        # under a wrong label, and a cycle would never end.
        seen = {_key(folder), _key(folder / name)}
        for here, dirs, names in os.walk(folder / name, followlinks=True):
            dirs[:] = [d for d in dirs if not d.startswith(".") and _first_visit(Path(here) / d, seen)]
            walked.append((here, names))
        found = [(str(Path(here) / n), label) for here, names in sorted(walked) for n in sorted(names) if _is_image(n)]
        samples += found
        empty += [] if found else [name]
    if empty:
        stale = " (fidelity/ there is an earlier version's feature cache: remove it)" if "fidelity" in empty else ""
        raise FileNotFoundError(f"data.root={root!r}: no images ({', '.join(_IMAGE_SUFFIXES)}) in class folder(s) "
                                f"{', '.join(empty)}{stale}")
    return _Images(samples, classes, transform)


def _key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino


def _first_visit(path: Path, seen: set[tuple[int, int]]) -> bool:
    try:
        key = _key(path)
    except OSError:  # a dangling link: nothing to walk
        return False
    if key in seen:
        return False
    seen.add(key)
    return True


# File systems that describe the running system instead of holding files: walking them for images
# never ends (/proc/self/root is the whole tree again) or reads devices.
_PSEUDO_FS = {"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs",
              "configfs", "fusectl", "bpf", "pstore", "mqueue", "hugetlbfs", "autofs", "binfmt_misc", "efivarfs"}


def refuse_pseudo(path: Path, key: str) -> None:
    """Stop in one line when ``path`` lies on a pseudo file system (/proc, /sys, /dev)."""
    real = path.resolve()
    kind = None
    try:  # the mount holding ``real``: the longest mount point that is a prefix of it
        best = ""
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            point = parts[1].replace("\\040", " ") if len(parts) > 2 else ""
            if point and (real == Path(point) or Path(point) in real.parents) and len(point) >= len(best):
                best, kind = point, parts[2]
    except OSError:  # no mount table (not Linux): the usual places
        kind = "proc" if real.parts[1:2] in (("proc",), ("sys",), ("dev",)) else None
    if kind in _PSEUDO_FS or real.parts[1:2] in (("proc",), ("sys",)):
        raise ValueError(f"{key}={str(path)!r} is on a pseudo file system ({kind or real.parts[1]}), not a folder "
                         "of data")


def _is_image(name: str) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower() in _IMAGE_SUFFIXES


class _Unlabelled:
    """A dataset's images with label 0 (CelebA's targets are attributes, not classes)."""

    def __init__(self, ds: Any) -> None:
        self.ds, self.classes = ds, []
        folder = Path(ds.root) / ds.base_folder / "img_align_celeba"
        self.samples = [(str(folder / name), 0) for name in ds.filename]  # what keys the metrics' cache

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        try:
            return self.ds[i][0], 0
        except Exception as e:  # torchvision opens the file itself: name it as read_image does
            raise _unreadable(self.samples[i][0], e) from None


class _Images:
    """Image files with their labels: the ``samples`` / ``classes`` that ImageFolder has."""

    def __init__(self, samples: list[tuple[str, int]], classes: list[str], transform: Any) -> None:
        self.samples, self.classes, self.transform = samples, classes, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        path, label = self.samples[i]
        return self.transform(read_image(path)), label


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
