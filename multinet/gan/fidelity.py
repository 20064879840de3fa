"""Standard image-generation metrics: FID, KID, Inception Score, precision / recall (TARGETS.md §7).

The figures come from torch-fidelity (``*_features_to_metric``): the reference implementations
that reproduce the original TensorFlow numbers, on the same Inception-v3 port torchmetrics uses
("pt_inception-2015-12-05"). multinet supplies the features: generated samples from the run, real
features of the training set computed once and cached (``evaluation._cache_dir``) with a key
made of the data's content, the feature network and the sample count (a changed dataset is a new
key). Precision / recall are the improved k-NN ones (Kynkäänniemi et al. 2019, k = 3), on equal
numbers of generated and real features, as in the paper: the first min(generated, reference, 10,000)
of each, since k-NN radii shrink as a set grows (and all pairs of 50,000 cost minutes on a CPU).
torch-fidelity's own ``calculate_metrics`` takes all of both; with equal counts the two agree (tested).

The Inception weights cannot be downloaded everywhere: they are read from ``eval.inception_weights``
or torch's hub cache (where torch-fidelity would download them). Missing, the evaluation says in
one line which file to put where and goes on without these figures. Any other network can supply
the features (``eval.features = "pkg.module:Class"``, an ``nn.Module`` returning (features,
logits) for images in [-1, 1]); its figures are reported under ``features_*`` names, never as FID.
"""
from __future__ import annotations

import inspect
import io
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..config import error_line
from ..state.checkpoint import file_sha256, read_tensors
from ..state.imports import import_class
from ..state.streams import forked_rng

__all__ = ["FeatureNet", "InceptionFeatures", "RandomConvFeatures", "feature_class", "feature_net", "standard_metrics",
           "frechet", "WeightsMissing", "INCEPTION_FILE"]

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"


class WeightsMissing(RuntimeError):
    """The Inception weights are not on this machine."""


def frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Fréchet distance between Gaussian fits of two feature sets (torch-fidelity's)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    stats = [fid_features_to_statistics(x.detach().double().cpu()) for x in (a, b)]
    return float(fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"])


class FeatureNet(nn.Module):
    """Images in [-1, 1] (N, C, H, W) → (features (N, d), logits (N, classes))."""

    name = "features"


class InceptionFeatures(FeatureNet):
    """torch-fidelity's Inception-v3 port: 2048-d pool features and the unbiased logits, on uint8
    RGB images resized inside the network exactly as the TensorFlow original did."""

    name = "inception-v3-compat"

    def __init__(self, weights: str | Path) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        # torch-fidelity reads its weights with torch.load(weights_only=False), which runs any code a
        # pickle holds. It gets instead the tensors read here with weights_only (a file holding
        # code is refused), saved again by this process into memory.
        state = read_tensors(weights)
        if not isinstance(state, dict):
            raise WeightsMissing(f"{weights}: not the FID Inception weights (no state dict)")
        clean = io.BytesIO()
        torch.save(state, clean)
        clean.seek(0)
        self.net = FeatureExtractorInceptionV3(self.name, ["2048", "logits_unbiased"],
                                               feature_extractor_weights_path=clean)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        u8 = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        feats, logits = self.net(u8)
        return feats, logits


class RandomConvFeatures(FeatureNet):
    """A fixed, untrained conv net (seeded): exercises the whole metric path where no Inception
    weights exist (tests, an offline machine). Its distances rank nothing reliably; never quote them
    as FID."""

    name = "random-conv"

    def __init__(self, dim: int = 64, classes: int = 10) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.body = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(512, dim), nn.ReLU())
            self.head = nn.Linear(dim, classes)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = nn.functional.interpolate(x, size=32, mode="bilinear", align_corners=False)
        f = self.body(x)
        return f, self.head(f)


def _inception_weights(explicit: str) -> Path:
    hub = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    path = Path(explicit).expanduser() if explicit else hub
    if not path.is_file():
        raise WeightsMissing(f"FID/KID/IS/PR need the Inception weights: put {INCEPTION_FILE} ({INCEPTION_URL}) "
                             f"at {hub}, or set eval.inception_weights=PATH")
    if not file_sha256(path).startswith("6726825d"):  # torch hub's convention: the name carries the hash
        raise WeightsMissing(f"{path}: not the FID Inception weights ({INCEPTION_FILE}; SHA-256 6726825d...)")
    return path


def feature_class(features: str, shape: tuple[int, ...] | None = None) -> type | None:
    """The class a user's ``eval.features`` import path names (None for the built-in ``inception``
    and ``random-conv``), checked before training so that a typo or a network of another kind
    stops the run at once instead of after its last step: an ``nn.Module`` buildable without
    arguments, not abstract, and (with the images' ``shape``) one that maps two images to
    ``(features (2, d), logits (2, classes))``. Named by a saved file, it must be a ``FeatureNet``."""
    if features in ("inception", "random-conv"):
        return None
    cls = import_class(features, nn.Module, "eval.features", role=FeatureNet)
    if inspect.isabstract(cls):
        raise ValueError(f"eval.features: {features} is an abstract class, not a feature network")
    try:  # it is built without arguments at evaluation time
        inspect.signature(cls).bind()
    except TypeError as e:
        raise ValueError(f"eval.features: {features} must be buildable without arguments ({e})") from None
    except ValueError:  # no signature to read: building it will tell
        pass
    if shape is not None:
        _probe(cls, features, shape)
    return cls


def _probe(cls: type, features: str, shape: tuple[int, ...]) -> None:
    """Build ``cls`` and run it on two blank images of ``shape``: it must give (features, logits)."""
    with torch.no_grad(), forked_rng():  # the run's random state is not touched by the check
        try:
            out = cls().eval()(torch.zeros(2, *shape))
        except Exception as e:  # noqa: BLE001 - any failure of the user's network, said in one line
            raise ValueError(f"eval.features: {features} fails on two {tuple(shape)} images "
                             f"({type(e).__name__}: {error_line(e, 160)})") from None
    ok = isinstance(out, (tuple, list)) and len(out) == 2 and all(
        isinstance(t, torch.Tensor) and t.ndim == 2 and len(t) == 2 for t in out)
    if not ok:
        raise ValueError(f"eval.features: {features} must return (features (N, d), logits (N, classes)) for N images; "
                         f"got {_described(out)}")


def _described(out: Any) -> str:
    if isinstance(out, torch.Tensor):
        return f"a tensor of shape {tuple(out.shape)}"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {len(out)}: " + ", ".join(
            str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__ for t in out[:4])
    return f"a {type(out).__name__}"


def feature_net(features: str, weights: str = "", own: type | None = None) -> FeatureNet:
    """``"inception"``, ``"random-conv"`` or the import path of a ``FeatureNet``-like module
    (``own``: that class, imported already by ``feature_class``)."""
    if features == "inception":
        return InceptionFeatures(_inception_weights(weights)).eval()
    if features == "random-conv":
        return RandomConvFeatures().eval()
    return (own or feature_class(features))().eval()


@torch.no_grad()
def _extract(net: nn.Module, batches: Callable[[], Any], limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    feats, logits, n = [], [], 0
    for x in batches():
        f, lg = net(x.float().cpu())
        feats.append(f.double())
        logits.append(lg.double())
        n += len(x)
        if n >= limit:
            break
    return torch.cat(feats)[:limit], torch.cat(logits)[:limit]


def _reference(net: nn.Module, net_id: str, real: Callable[[], Any], key: str, limit: int,
               cache: Path) -> torch.Tensor:
    """The real features, from the cache or computed once and cached (a read-only folder only warns)."""
    path = cache / f"{key}-{net_id}-{limit}.pt"
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # a torn or stale cache is recomputed
            pass
    feats, _ = _extract(net, real, limit)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(feats.float(), tmp)
        tmp.replace(path)
    except OSError as e:
        warnings.warn(f"reference features not cached ({e.strerror or e}: {path}); the next evaluation recomputes them")
    return feats


def standard_metrics(net: FeatureNet, net_id: str, generated: torch.Tensor, real: Callable[[], Any],
                     real_key: str, reference_limit: int, cache: Path,
                     held_out: torch.Tensor | None = None) -> dict[str, float]:
    """FID, KID (mean ± std over subsets), IS (± std over 10 splits), precision / recall of
    ``generated`` against the training set (``real()`` yields batches in [-1, 1]); with
    ``held_out`` real images, the real-vs-real FID floor at the same sample count."""
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric
    from torch_fidelity.metric_prc import prc_features_to_metric
    ref = _reference(net, net_id, real, real_key, reference_limit, cache).double()
    f_gen, l_gen = _extract(net, lambda: generated.split(250), len(generated))
    subset = min(1000, len(f_gen), len(ref))
    kid = kid_features_to_metric(f_gen, ref, kid_subsets=100, kid_subset_size=subset, rng_seed=2020, verbose=False)
    isc = isc_features_to_metric(l_gen, splits=10, shuffle=True, rng_seed=2020)
    n_pr = min(len(f_gen), len(ref), 10_000)  # equal counts (module docstring)
    prc = prc_features_to_metric(f_gen[:n_pr].float(), ref[:n_pr].float(), prc_neighborhood=3, prc_batch_size=10_000,
                                 save_cpu_ram=False, verbose=False)
    out = {"fid": frechet(f_gen, ref), "kid": kid["kernel_inception_distance_mean"],
           "kid_std": kid["kernel_inception_distance_std"], "is": isc["inception_score_mean"],
           "is_std": isc["inception_score_std"], "precision": prc["precision"], "recall": prc["recall"],
           "samples": len(f_gen), "reference": len(ref)}
    if held_out is not None and len(held_out) >= 2:
        f_ho, _ = _extract(net, lambda: held_out.split(250), len(held_out))
        out["fid_floor"] = frechet(f_ho, ref)
    return out

