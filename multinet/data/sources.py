"""Datasets: what a recipe trains on, loaded or described.

Small datasets (digits, MNIST, Fashion-MNIST, CIFAR-10, an IDX folder) live on the training
device as one tensor and are shuffled there with a seeded generator: no per-batch DataLoader
overhead. ``imagefolder`` streams through a DataLoader with workers. ``ring8`` / ``grid25`` are
the 2-D Gaussian mixtures of VEEGAN / PacGAN, drawn on the fly.
"""
from __future__ import annotations

import gzip
import importlib.util
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from ..config import at_least, error_line, key, within
from .files import celeba, image_folder
from .samplers import LoaderSampler, MixtureSampler, TensorSampler

__all__ = ["DataConfig", "DataSource", "LazyData", "load_data", "data_shape", "mixture_means", "read_idx"]


@dataclass
class DataConfig:
    """The ``[data]`` table: which dataset, where, in batches of what size."""
    # 0.1 keys, named in their one-line error
    OLD_KEYS: ClassVar[dict[str, str]] = {"extra": "removed in 1.0, as no dataset read it: delete the line"}

    name: Literal["digits", "mnist", "fashion-mnist", "cifar10", "celeba", "idx", "imagefolder", "ring8",
                  "grid25"] = key("digits", "The dataset: `digits` (bundled), `mnist` / `fashion-mnist` / `cifar10` "
                                            "/ `celeba` (torchvision), `idx` (IDX files in root), `imagefolder` "
                                            "(class subfolders in root), `ring8` / `grid25` (2-D Gaussian mixtures).")
    root: str = key("data", "Dataset folder (downloads go here; the IDX or image folder for idx / imagefolder).")
    batch_size: int = key(64, "Examples per step, per rank.")
    download: bool = key(False, "Fetch a missing dataset through torchvision (needs the network).")
    image_size: int = key(0, "Side of the square images the data is resized to; 0 keeps the native size (64 for "
                             "imagefolder and celeba).")
    workers: int = key(2, "DataLoader worker processes for datasets read from disk batch by batch (imagefolder, "
                          "celeba).")
    limit: int = key(0, "Use only the first N examples of a dataset held in memory (0 = all).")
    train_fraction: float = key(1.0, "Fraction of a dataset held in memory that trains; the rest is held out (a GAN's "
                                     "real-vs-real floors, an image link's PSNR evaluation).")

    def __post_init__(self) -> None:
        at_least(self, 1, "batch_size")
        at_least(self, 0, "image_size", "workers", "limit")
        within(self, "train_fraction", low=0, high=1, open_low=True)


def mixture_means(name: str) -> tuple[torch.Tensor, float]:
    """Means and σ exactly as in the VEEGAN / PacGAN benchmarks (see TARGETS.md)."""
    if name == "ring8":
        ang = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8  # endpoint excluded
        return torch.stack([ang.cos(), ang.sin()], 1).float(), 0.01
    if name == "grid25":
        v = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0])
        return torch.cartesian_prod(v, v), 0.05
    raise ValueError(f"{name!r} is not a mixture")


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), the format of the MNIST distribution."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, OSError, zlib.error) as e:  # a truncated or damaged .gz
        raise ValueError(f"{path}: unreadable IDX file ({error_line(e)})") from None
    if len(data) < 4:
        raise ValueError(f"{path}: not an IDX file ({len(data)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or ndim == 0 or len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{path}: truncated IDX file ({arr.size} of {int(np.prod(shape))} values)")
    return arr.reshape(shape)


@dataclass
class DataSource:
    """What a recipe trains on: a sampler plus what metrics need (held-out real data, shape)."""

    name: str
    kind: str  # "image" or "points"
    shape: tuple[int, ...]
    num_classes: int
    sampler: Any
    train: torch.Tensor | None = None  # all training examples (device), images in [-1, 1]
    held_out: torch.Tensor | None = None
    train_labels: torch.Tensor | None = None
    held_out_labels: torch.Tensor | None = None


def _torchvision_set(cfg: DataConfig) -> tuple[torch.Tensor, torch.Tensor]:
    import torchvision
    cls = {"mnist": torchvision.datasets.MNIST, "fashion-mnist": torchvision.datasets.FashionMNIST,
           "cifar10": torchvision.datasets.CIFAR10}[cfg.name]
    # What torchvision reads offline, under data.root.
    files = {"cifar10": "cifar-10-batches-py/ (cifar-10-python.tar.gz, extracted)"}.get(
        cfg.name, f"{cls.__name__}/raw/ with the four *-ubyte files")
    try:
        ds = cls(cfg.root, train=True, download=cfg.download)
    except (RuntimeError, OSError) as e:  # missing files, or URLError / socket errors when offline
        if cfg.download:
            raise RuntimeError(f"dataset {cfg.name}: download to {cfg.root} failed (no network?); put {files} "
                               f"there, or use data.name=idx (an IDX folder) or data.name=digits") from None
        raise RuntimeError(f"dataset {cfg.name} not found under {cfg.root} (set data.download=true to fetch "
                           f"it): {error_line(e)}") from None
    x = torch.as_tensor(np.asarray(ds.data))
    x = x.permute(0, 3, 1, 2) if x.ndim == 4 else x[:, None]
    return x, torch.as_tensor(np.asarray(ds.targets))


def _idx_set(root: str) -> tuple[torch.Tensor, torch.Tensor]:
    folder = Path(root)
    images = sorted(folder.glob("*images-idx3-ubyte*"))
    labels = sorted(folder.glob("*labels-idx1-ubyte*"))
    if not images or not labels:
        raise FileNotFoundError(f"no *images-idx3-ubyte / *labels-idx1-ubyte files in {folder}")
    xs, ys = [read_idx(p) for p in images], [read_idx(p) for p in labels]
    for p, a in zip(images, xs):
        if a.ndim != 3:
            raise ValueError(f"{p}: expected N × rows × columns images, got shape {a.shape}")
    for p, a in zip(labels, ys):
        if a.ndim != 1:
            raise ValueError(f"{p}: expected one label per image, got shape {a.shape}")
    x = torch.from_numpy(np.concatenate(xs).copy())[:, None]
    y = torch.from_numpy(np.concatenate(ys).astype(np.int64))
    if len(x) != len(y):
        raise ValueError(f"{folder}: {len(x)} images but {len(y)} labels")
    if len(y) and int(y.max()) > 99:
        raise ValueError(f"{folder}: label {int(y.max())} out of range (at most 100 classes)")
    return x, y


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as (1797, 8, 8) images in 0..16 and their labels.

    The file ships inside scikit-learn; reading it directly skips ``import sklearn`` (which pulls
    in SciPy: about 1.5 s, paid by every short run on the bundled default). ``load_digits`` does
    the same ``loadtxt`` on the same file; it stays the fallback should the package move it.
    """
    spec = importlib.util.find_spec("sklearn")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            try:
                data = np.loadtxt(path, delimiter=",", ndmin=2)
            except (OSError, EOFError, ValueError, zlib.error) as e:
                raise ValueError(f"{path}: unreadable ({error_line(e)}); reinstall scikit-learn") from None
            if data.shape[1] != 65:
                raise ValueError(f"{path}: expected 64 pixels and a label per row, got {data.shape[1]} columns; "
                                 f"reinstall scikit-learn")
            return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits
    d = load_digits()
    return d.images, d.target


def load_images(cfg: DataConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 or float images (N, C, H, W) and labels, before scaling."""
    if cfg.name == "digits":
        images, target = _digits()
        x = torch.from_numpy(images.astype(np.float32) * (255.0 / 16.0))[:, None]
        return x, torch.from_numpy(target.astype(np.int64))
    if cfg.name == "idx":
        return _idx_set(cfg.root)
    return _torchvision_set(cfg)


_NATIVE = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def data_shape(cfg: DataConfig) -> tuple[int, ...]:
    """The shape of one example of ``load_data(cfg)``, without loading the data (an IDX folder's
    file header is read): what networks need to be built for sampling from a saved run."""
    if cfg.name in ("ring8", "grid25"):
        return (2,)
    if cfg.name in ("imagefolder", "celeba"):
        size = cfg.image_size or 64
        return (3, size, size)
    if cfg.name == "idx":
        images = sorted(Path(cfg.root).glob("*images-idx3-ubyte*"))
        if not images:
            raise FileNotFoundError(f"no *images-idx3-ubyte files in {cfg.root}")
        opener = gzip.open if images[0].suffix == ".gz" else open
        with opener(images[0], "rb") as f:
            head = f.read(16)
        if len(head) < 16:
            raise ValueError(f"{images[0]}: not an IDX image file")
        native = (1, *struct.unpack(">II", head[8:16]))
    else:
        native = _NATIVE[cfg.name]
    return (native[0], cfg.image_size, cfg.image_size) if cfg.image_size else native


def load_data(cfg: DataConfig, device: torch.device, seed: int) -> DataSource:
    """The dataset ``cfg`` names, on ``device``, with a sampler seeded by ``seed``: a ``DataSource``
    (``train`` / ``held_out`` tensors where the data fits in memory, ``sampler.next()`` for batches;
    a mixture's ``means`` / ``sigma``). Raises ``RuntimeError`` with what to put where when the data
    is missing and cannot be downloaded."""
    if cfg.name in ("ring8", "grid25"):
        means, sigma = mixture_means(cfg.name)
        return DataSource(cfg.name, "points", (2,), len(means),
                          MixtureSampler(means, sigma, cfg.batch_size, seed, device))
    if cfg.name == "imagefolder":
        import torchvision.transforms.v2 as T
        size = cfg.image_size or 64
        tf = T.Compose([T.Resize(size), T.CenterCrop(size), T.ToImage(), T.ToDtype(torch.float32, scale=True),
                        T.Normalize([0.5] * 3, [0.5] * 3)])
        ds = image_folder(cfg.root, tf)
        return DataSource(cfg.name, "image", (3, size, size), max(1, len(ds.classes)),
                          LoaderSampler(ds, cfg.batch_size, seed, cfg.workers, device))
    if cfg.name == "celeba":
        size = cfg.image_size or 64
        ds = celeba(cfg.root, size, cfg.download)
        return DataSource(cfg.name, "image", (3, size, size), 1, LoaderSampler(ds, cfg.batch_size, seed, cfg.workers,
                                                                               device))
    x, y = load_images(cfg)
    if cfg.limit:
        x, y = x[:cfg.limit], y[:cfg.limit]
    x = x.float() / 127.5 - 1.0
    if cfg.image_size and cfg.image_size != x.shape[-1]:
        x = torch.nn.functional.interpolate(x, size=(cfg.image_size, cfg.image_size), mode="bilinear",
                                            antialias=True, align_corners=False).clamp_(-1, 1)
    # A fixed, seed-independent split so the held-out floor is the same for every run.
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(12345))
    n_train = len(x) if cfg.train_fraction >= 1 else int(len(x) * cfg.train_fraction)
    tr, ho = perm[:n_train], perm[n_train:]
    x, y = x.to(device), y.to(device)
    return DataSource(cfg.name, "image", tuple(x.shape[1:]), int(y.max()) + 1,
                      TensorSampler(x[tr], y[tr], cfg.batch_size, seed), x[tr], x[ho] if len(ho) else None,
                      y[tr], y[ho] if len(ho) else None)


class LazyData:
    """A dataset loaded now (training) or on first use (a saved run being sampled, which may never
    need it), and the shape of one example either way: the loaded data's, ``shape`` (as saved
    with the run), or ``data_shape(cfg)``."""

    def __init__(self, cfg: DataConfig, device: torch.device, seed: int, now: bool = True,
                 shape: list[int] | tuple[int, ...] | None = None) -> None:
        self.cfg, self.device, self.seed = cfg, device, seed
        self._source = load_data(cfg, device, seed) if now else None
        self.shape = self._source.shape if self._source is not None else tuple(shape) if shape else data_shape(cfg)

    @property
    def loaded(self) -> bool:
        return self._source is not None

    def get(self) -> DataSource:
        if self._source is None:
            self._source = load_data(self.cfg, self.device, self.seed)
        return self._source
