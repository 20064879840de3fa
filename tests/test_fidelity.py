"""Standard metrics (FID / KID / IS / precision-recall through torch-fidelity) on the whole path,
with a stand-in feature network: no Inception weights are downloaded in tests."""
import contextlib
import io

import numpy as np
import pytest
import torch

from multinet import Runner
from multinet.gan import GanRecipe, GanSystem
from multinet.gan.fidelity import INCEPTION_FILE, WeightsMissing, feature_net, frechet
from multinet.config import load_recipe

FAST = ["device='cpu'", "train.steps=4", "train.tensorboard=false", "eval.classifier_epochs=1", "eval.samples=200",
        "train.sample_every=0", "eval.fid_samples=300", "eval.fid_reference=400"]


def test_frechet_matches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20_000, 8, generator=g)
    shift = torch.tensor([1.0, -2.0, 0, 0, 0, 0, 0.5, 0])
    assert frechet(a, a) == pytest.approx(0.0, abs=1e-9)
    # the same samples shifted: equal covariances, FD = ‖δ‖² exactly
    assert frechet(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    # the same samples scaled by 3: (ΣΣ₃)^½ = 3Σ, so FD = 4‖μ‖² + 4·tr Σ of the sample's own fit
    mu, cov = a.double().mean(0), torch.cov(a.double().T)
    assert frechet(a, 3 * a) == pytest.approx(float(4 * mu @ mu + 4 * cov.trace()), rel=1e-6)


def _run(tmp_path, name, *items):
    cfg = load_recipe(GanRecipe, "gan_digits", [*FAST, f"data.root='{tmp_path / 'data'}'", *items])
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        r = Runner(GanSystem, cfg, tmp_path / name, progress=False, echo=False).fit()
    assert r.code == 0
    return r.summary, err.getvalue()


def test_the_metric_path_runs_with_a_stand_in_network_and_caches_the_reference(tmp_path):
    s, _ = _run(tmp_path, "a", "eval.features='random-conv'")
    for k in ("fid", "kid", "kid_std", "is", "is_std", "precision", "recall", "fid_floor"):
        assert np.isfinite(s[f"features_{k}"]), k
    assert "fid" not in s and s["metric_features"] == "random-conv"  # never reported as FID
    assert 0 <= s["features_precision"] <= 1 and 0 <= s["features_recall"] <= 1
    assert s["features_samples"] == 300 and s["features_reference"] == 400
    assert s["classifier_is"] > 0  # the per-run classifier's figures stay, under their own names
    cached = list((tmp_path / "data/fidelity").glob("*.pt"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    s2, _ = _run(tmp_path, "b", "eval.features='random-conv'")
    assert cached[0].stat().st_mtime_ns == stamp and s2["features_fid"] == s["features_fid"]
    _run(tmp_path, "c", "eval.features='random-conv'", "data.limit=1000")  # other data: another key
    assert len(list((tmp_path / "data/fidelity").glob("*.pt"))) == 2


def test_missing_inception_weights_skip_the_metrics_in_one_line_and_training_goes_on(tmp_path):
    s, err = _run(tmp_path, "a", f"eval.inception_weights='{tmp_path / 'nope.pth'}'")
    notes = [line for line in err.splitlines() if "Inception weights" in line]
    assert len(notes) == 1 and INCEPTION_FILE in notes[0] and notes[0].startswith("note:")
    assert "fid" not in s and s["classifier_fd"] > 0
    (tmp_path / "fake.pth").write_bytes(b"not weights")
    with pytest.raises(WeightsMissing, match="not the FID Inception weights"):
        feature_net("inception", str(tmp_path / "fake.pth"))


def test_an_image_folder_trains_end_to_end_with_standard_metrics(tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits
    d = load_digits()
    for i, (img, label) in enumerate(zip(d.images[:300], d.target[:300])):
        folder = tmp_path / "faces" / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255 / 16).astype(np.uint8)).resize((16, 16)).convert("RGB").save(folder / f"{i}.png")
    s, _ = _run(tmp_path, "run", "data.name='imagefolder'", f"data.root='{tmp_path / 'faces'}'", "data.image_size=16",
                "data.workers=0", "data.batch_size=32", "eval.features='random-conv'", "eval.fid_samples=200",
                "eval.fid_reference=300")
    assert np.isfinite(s["features_fid"]) and np.isfinite(s["features_kid"]) and s["features_reference"] == 300
    assert "classifier_is" not in s  # no per-run classifier for an image folder
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in list((tmp_path / "faces").rglob("*.png"))[:64]:
        p.rename(flat / p.name)
    s, _ = _run(tmp_path, "flat_run", "data.name='imagefolder'", f"data.root='{flat}'", "data.image_size=16",
                "data.workers=0", "data.batch_size=32", "eval.standard_metrics=false")
    assert s["dataset"] == "imagefolder"
