"""Scoring a GAN: mixture coverage for the 2-D mixtures; for images the standard FID / KID / IS /
precision-recall (``fidelity``) and, for labelled digits, the per-run classifier's IS / FD; each
also through rejection sampling with ``eval.rejection = "drs"``; and the 2-D scatter plot."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from ..data import mixture_means
from ..data.files import iterate
from ..run.system import note
from ..state.checkpoint import atomic_path
from . import fidelity
from .metrics import image_scores, mixture_coverage, train_classifier

if TYPE_CHECKING:
    from .recipe import GanRecipe

__all__ = ["GanEvaluator", "scatter", "CLASSIFIER_DATASETS"]

CLASSIFIER_DATASETS = ("digits", "mnist", "fashion-mnist", "idx")

Sampler = Callable[[int], torch.Tensor]
RejectionSampler = Callable[[int], "tuple[torch.Tensor, float]"]


class GanEvaluator:
    """The figures of a generator, from what it is given: the run's config, the data, and functions
    that draw ``n`` samples (plainly, and by rejection sampling). It owns what is worth building
    once per process: the digits / MNIST classifier (trained, or read from its cache, on first use)."""

    def __init__(self, cfg: "GanRecipe", feature_cls: type | None = None) -> None:
        self.cfg, self.feature_cls = cfg, feature_cls
        self.classifier: torch.nn.Module | None = None

    def __call__(self, data: Any, sample: Sampler, sample_rejection: RejectionSampler) -> dict[str, float]:
        cfg = self.cfg
        if data.kind == "points":
            means, sigma = mixture_means(cfg.data.name)
            scores = mixture_coverage(sample(cfg.eval.samples), means, sigma)
            if cfg.eval.rejection == "drs":
                x, accepted = sample_rejection(cfg.eval.samples)
                scores.update({f"drs_{k}": v for k, v in mixture_coverage(x, means, sigma).items()},
                              drs_acceptance=accepted)
            return scores
        scores = self.standard(data, sample) if cfg.eval.standard_metrics else {}
        if cfg.data.name not in CLASSIFIER_DATASETS:
            return scores
        if self.classifier is None:
            self.classifier = train_classifier(data.train, data.train_labels, data.num_classes,
                                               Path(cfg.data.root) / "classifiers", cfg.data.name,
                                               cfg.eval.classifier_epochs)
        clf = self.classifier
        n = max(cfg.eval.samples, len(data.held_out) if data.held_out is not None else 0)
        held_out = None if data.held_out is None else data.held_out.cpu()
        scores.update(image_scores(clf, sample(n).cpu(), data.train.cpu(), held_out))
        if cfg.eval.rejection == "drs":
            x, accepted = sample_rejection(n)
            drs = image_scores(clf, x.cpu(), data.train.cpu(), None)
            scores.update({f"drs_{k}": drs[k] for k in ("classifier_is", "classifier_fd")}, drs_acceptance=accepted)
        return scores

    def standard(self, data: Any, sample: Sampler) -> dict[str, Any]:
        """FID, KID, IS, precision / recall against the training set, and the held-out floor. With
        other features than Inception's the figures are named ``features_*`` (they are not FID)."""
        cfg, ev = self.cfg, self.cfg.eval
        try:
            net = fidelity.feature_net(ev.features, ev.inception_weights, self.feature_cls)
        except fidelity.WeightsMissing as e:
            note(f"{e}; skipped")
            return {}
        net_id = "inception" if ev.features == "inception" else ev.features.replace(":", ".").replace("/", ".")
        real, key = _real_batches(data, cfg.data)
        held = data.held_out.cpu() if data.held_out is not None else None
        out = fidelity.standard_metrics(net, net_id, sample(ev.fid_samples).cpu(), real, key, ev.fid_reference,
                                        _cache_dir(cfg.data), held)
        if ev.features != "inception":
            out = {f"features_{k}": v for k, v in out.items()}
        return {**out, "metric_features": getattr(net, "name", ev.features)}


def _cache_dir(data: Any) -> Path:
    """Where the training set's reference features are cached: beside the dataset
    (``<data.root>/fidelity``), except for an image folder, whose root holds the images themselves
    (a ``fidelity`` subfolder there would be read as one more class): the user's cache,
    ``$XDG_CACHE_HOME/multinet/fidelity`` (``~/.cache/multinet/fidelity``)."""
    if data.name != "imagefolder":
        return Path(data.root) / "fidelity"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "multinet" / "fidelity"


def _real_batches(data: Any, data_cfg: Any) -> tuple[Any, str]:
    """Batches of training images in [-1, 1] in a fixed order, and a key naming their content."""
    if data.train is not None:
        x = data.train.cpu()
        key = hashlib.sha256(x.numpy().tobytes() + str(tuple(x.shape)).encode()).hexdigest()[:16]
        return (lambda: x.split(250)), f"{data_cfg.name}-{key}"
    ds = data.sampler.dataset  # streamed (imagefolder): the files' names, sizes and times make the key
    h = hashlib.sha256(str(data_cfg.image_size).encode())
    for path, _ in getattr(ds, "samples", []):
        st = Path(path).stat()
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())

    def batches():
        loader = torch.utils.data.DataLoader(ds, batch_size=250, shuffle=False, num_workers=data_cfg.workers)
        return (x for x, _ in iterate(loader))
    return batches, f"{data_cfg.name}-{h.hexdigest()[:16]}"


def scatter(points: torch.Tensor, path: Path, step: int, tracker: Any = None) -> None:
    """A 2-D scatter plot of ``points`` to ``path`` (and to TensorBoard)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4, 4))
    p = points.cpu().numpy()
    ax.scatter(p[:, 0], p[:, 1], s=2, alpha=0.5)
    ax.set_aspect("equal")
    ax.set_title(f"step {step}")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    if tracker is not None:
        tracker.figure("samples/points", fig, step)
    plt.close(fig)
