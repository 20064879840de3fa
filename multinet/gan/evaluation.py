"""Scoring a GAN: mixture coverage for the 2-D mixtures, classifier IS / FD for labelled digits,
each also through rejection sampling with ``eval.rejection = "drs"``; and the 2-D scatter plot."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..data import mixture_means
from .metrics import image_scores, mixture_coverage, train_classifier

if TYPE_CHECKING:
    from .system import GanSystem

__all__ = ["evaluate", "scatter", "CLASSIFIER_DATASETS"]

CLASSIFIER_DATASETS = ("digits", "mnist", "fashion-mnist", "idx")


def evaluate(system: "GanSystem") -> dict[str, float]:
    cfg, data = system.cfg, system.data
    if data.kind == "points":
        means, sigma = mixture_means(cfg.data.name)
        scores = mixture_coverage(system.sample(cfg.eval.samples), means, sigma)
        if cfg.eval.rejection == "drs":
            x, accepted = system.sample_rejection(cfg.eval.samples)
            scores.update({f"drs_{k}": v for k, v in mixture_coverage(x, means, sigma).items()},
                          drs_acceptance=accepted)
        return scores
    if cfg.data.name not in CLASSIFIER_DATASETS:
        return {}
    if system.classifier is None:  # trained (or read from the cache) once per process
        system.classifier = train_classifier(data.train, data.train_labels, data.num_classes,
                                             Path(cfg.data.root) / "classifiers", cfg.data.name,
                                             cfg.eval.classifier_epochs)
    clf = system.classifier
    n = max(cfg.eval.samples, len(data.held_out) if data.held_out is not None else 0)
    held_out = None if data.held_out is None else data.held_out.cpu()
    scores = image_scores(clf, system.sample(n).cpu(), data.train.cpu(), held_out)
    if cfg.eval.rejection == "drs":
        x, accepted = system.sample_rejection(n)
        drs = image_scores(clf, x.cpu(), data.train.cpu(), None)
        scores.update({f"drs_{k}": drs[k] for k in ("classifier_is", "classifier_fd")}, drs_acceptance=accepted)
    return scores


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
    fig.savefig(path, dpi=80)
    if tracker is not None:
        tracker.figure("samples/points", fig, step)
    plt.close(fig)
