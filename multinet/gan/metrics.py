"""GAN quality figures.

- ``mixture_coverage``: modes captured, high-quality %, reverse KL (VEEGAN / PacGAN definitions,
  see TARGETS.md §2).
- ``Classifier``: a small CNN trained deterministically on the run's real images and cached under
  ``data/classifiers``; gives a classifier Inception Score and a Fréchet distance on its
  penultimate features (torch-fidelity's, as for FID: ``fidelity.frechet``). Always report the real-vs-real floor beside the generated figure.
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from .fidelity import frechet

__all__ = ["mixture_coverage", "Classifier", "inception_score", "train_classifier"]


def mixture_coverage(samples: torch.Tensor, means: torch.Tensor, sigma: float) -> dict[str, float]:
    """A sample is high quality within 3σ of its nearest mean; a mode is captured if at least one
    high-quality sample is nearest to it; reverse KL is KL(captured histogram ‖ uniform)."""
    d = torch.cdist(samples.double(), means.double().to(samples.device))
    dist, nearest = d.min(1)
    hq = dist <= 3 * sigma
    counts = torch.bincount(nearest[hq], minlength=len(means)).double()
    captured = int((counts > 0).sum())
    if counts.sum() > 0:
        p = counts / counts.sum()
        nz = p > 0
        rev_kl = float((p[nz] * (p[nz] * len(means)).log()).sum())
    else:
        rev_kl = float("inf")
    return {"modes": captured, "high_quality": float(hq.double().mean() * 100), "reverse_kl": rev_kl}


class Classifier(nn.Module):
    """Two conv blocks → 128-d features → 10 logits; works for 8×8 and 28×28 inputs."""

    def __init__(self, channels: int, size: int, classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(64 * (size // 4) ** 2, 128), nn.ReLU())
        self.head = nn.Linear(128, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.head(f), f


def train_classifier(x: torch.Tensor, y: torch.Tensor, classes: int, cache_dir: str | Path,
                     tag: str, epochs: int = 8) -> Classifier:
    """Train (or load from ``cache_dir``) a classifier on images in [-1, 1]. Deterministic: fixed
    seed, fixed order, CPU."""
    x, y = x.detach().float().cpu(), y.detach().cpu()
    key = hashlib.sha256(x[: min(len(x), 2000)].numpy().tobytes() + str((len(x), classes, epochs)).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"{tag}-{key}.pt"
    model = Classifier(x.shape[1], x.shape[-1], classes)
    if path.is_file():
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval()
        except Exception:  # a stale or broken cache is simply retrained
            pass
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Classifier(x.shape[1], x.shape[-1], classes)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=g)
            for i in range(0, len(x), 128):
                idx = perm[i:i + 128]
                loss = F.cross_entropy(model(x[idx])[0], y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    try:  # the cache is a convenience: a read-only dataset folder must not fail the evaluation
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    except OSError as e:
        warnings.warn(f"classifier not cached ({e.strerror or e}: {path}); the next run trains it again")
    return model.eval()


@torch.no_grad()
def _outputs(model: Classifier, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    probs, feats = [], []
    for i in range(0, len(x), 500):
        logits, f = model(x[i:i + 500].float().cpu())
        probs.append(logits.softmax(1).double())
        feats.append(f.double())
    return torch.cat(probs), torch.cat(feats)


def inception_score(probs: torch.Tensor) -> float:
    py = probs.mean(0, keepdim=True)
    kl = (probs * ((probs + 1e-12).log() - (py + 1e-12).log())).sum(1)
    return float(kl.mean().exp())


def image_scores(model: Classifier, generated: torch.Tensor, reference: torch.Tensor,
                 held_out: torch.Tensor | None) -> dict[str, float]:
    """IS and FD of ``generated`` against ``reference`` (training images), and the same two
    figures for ``held_out`` real images with an equal sample count: the floor."""
    n = len(held_out) if held_out is not None else len(generated)
    p_gen, f_gen = _outputs(model, generated[:n])
    _, f_ref = _outputs(model, reference)
    out = {"classifier_is": inception_score(p_gen), "classifier_fd": frechet(f_gen, f_ref),
           "samples": n}
    if held_out is not None:
        p_ho, f_ho = _outputs(model, held_out)
        out.update({"real_is": inception_score(p_ho), "real_fd_floor": frechet(f_ho, f_ref)})
    return out
