"""Standard metrics (FID / KID / IS / precision-recall through torch-fidelity) on the whole path,
with a stand-in feature network: no Inception weights are downloaded in tests."""
import contextlib
import io
import json

import numpy as np
import pytest
import torch

from multinet import Runner
from multinet.gan import GanRecipe, GanSystem
from multinet.gan.fidelity import INCEPTION_FILE, WeightsMissing, feature_net, frechet
from multinet.config import load_recipe

from ..cli_run import run

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


def _run(tmp_path, name, *items, echo=False):
    cfg = load_recipe(GanRecipe, "gan_digits", [*FAST, f"data.root='{tmp_path / 'data'}'", *items])
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        r = Runner(GanSystem, cfg, tmp_path / name, progress=False, echo=echo).fit()
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


def test_a_users_own_feature_network_gives_the_figures_under_its_own_name(tmp_path):
    s, _ = _run(tmp_path, "own", "eval.features='tests.nets_zoo:PixelStats'")
    assert s["metric_features"] == "pixel-stats" and "fid" not in s
    assert all(np.isfinite(s[f"features_{k}"]) for k in ("fid", "kid", "is", "precision", "recall", "fid_floor"))
    assert s["features_is"] > 1.0  # its logits differ between samples
    assert [p.name for p in (tmp_path / "data/fidelity").glob("*.pt")] == \
        [next((tmp_path / "data/fidelity").glob("*tests.nets_zoo.PixelStats-400.pt")).name]


def test_missing_inception_weights_skip_the_metrics_in_one_line_and_training_goes_on(tmp_path):
    s, err = _run(tmp_path, "a", f"eval.inception_weights='{tmp_path / 'nope.pth'}'", echo=True)
    notes = [line for line in err.splitlines() if "Inception weights" in line]
    assert len(notes) == 1 and INCEPTION_FILE in notes[0] and notes[0].startswith("note:")
    _, quiet = _run(tmp_path, "b", f"eval.inception_weights='{tmp_path / 'nope.pth'}'")
    assert "Inception weights" not in quiet  # echo=False: the runner shows no note
    assert "fid" not in s and s["classifier_fd"] > 0
    (tmp_path / "fake.pth").write_bytes(b"not weights")
    with pytest.raises(WeightsMissing, match="not the FID Inception weights"):
        feature_net("inception", str(tmp_path / "fake.pth"))


def test_an_image_folder_trains_end_to_end_with_standard_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from PIL import Image
    from sklearn.datasets import load_digits
    d = load_digits()
    for i, (img, label) in enumerate(zip(d.images[:300], d.target[:300])):
        folder = tmp_path / "faces" / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 255 / 16).astype(np.uint8)).resize((16, 16)).convert("RGB").save(folder / f"{i}.png")
    on_faces = ["data.name='imagefolder'", f"data.root='{tmp_path / 'faces'}'", "data.image_size=16", "data.workers=0",
                "data.batch_size=32", "eval.features='random-conv'", "eval.fid_samples=200", "eval.fid_reference=300"]
    s, _ = _run(tmp_path, "run", *on_faces)
    assert np.isfinite(s["features_fid"]) and np.isfinite(s["features_kid"]) and s["features_reference"] == 300
    assert "classifier_is" not in s  # no per-run classifier for an image folder
    # the reference features are cached outside the folder (a subfolder there would be one more
    # class), and the next run on the same folder reads them from there
    assert sorted(p.name for p in (tmp_path / "faces").iterdir()) == [f"class{k}" for k in range(10)]
    cached = list((tmp_path / "cache/multinet/fidelity").glob("imagefolder-*-random-conv-300.pt"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    again, _ = _run(tmp_path, "again", *on_faces)
    assert cached[0].stat().st_mtime_ns == stamp and again["features_reference"] == 300
    # the folder moved: a saved run is scored where the data lives now
    (tmp_path / "faces").rename(tmp_path / "moved")
    ckpt = str(tmp_path / "again/checkpoints/last.pt")
    r = run("multinet.gan", ["evaluate", ckpt, "eval.fid_samples=200", "eval.fid_reference=300"])
    assert r.returncode == 2 and f"data.root='{tmp_path / 'faces'}': no such folder" in r.stderr
    r = run("multinet.gan", ["evaluate", ckpt, f"data.root='{tmp_path / 'moved'}'", "eval.fid_samples=200",
                             "eval.fid_reference=300"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["features_fid"] == pytest.approx(again["features_fid"])
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in list((tmp_path / "moved").rglob("*.png"))[:64]:
        p.rename(flat / p.name)
    s, _ = _run(tmp_path, "flat_run", "data.name='imagefolder'", f"data.root='{flat}'", "data.image_size=16",
                "data.workers=0", "data.batch_size=32", "eval.standard_metrics=false")
    assert s["dataset"] == "imagefolder"


def _random_inception_weights(path, monkeypatch):
    """A state dict for torch-fidelity's Inception port, seeded random: the real weights cannot be
    downloaded here, but the two pipelines below must agree on any weights."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    torch.save({}, path)
    with monkeypatch.context() as m:
        m.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None)
        torch.manual_seed(0)
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    for m in net.modules():  # He init, so that features neither vanish nor blow up through 90-odd layers
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    net.fc.weight.data.mul_(30)  # logits that differ between images: an Inception Score above 1
    torch.save(net.state_dict(), path)


def test_the_inception_path_gives_torch_fidelitys_own_figures(tmp_path, monkeypatch):
    """multinet feeds torch-fidelity's Inception features of images in [-1, 1] (grey expanded to
    RGB, rounded to uint8): its FID / KID / IS / PR must equal torch-fidelity's calculate_metrics
    on the same images as uint8 files would give, weights and all (equal counts: precision / recall
    take the first min(generated, reference) of each, calculate_metrics all of both)."""
    import torch_fidelity
    from multinet.gan.fidelity import InceptionFeatures, standard_metrics
    weights = tmp_path / "inception.pth"
    _random_inception_weights(weights, monkeypatch)
    g = torch.Generator().manual_seed(0)  # 10 images: the least Inception Score's 10 splits take
    gen_u8 = torch.randint(0, 256, (10, 1, 16, 16), generator=g, dtype=torch.uint8)
    real_u8 = (torch.rand(10, 1, 16, 16, generator=g) ** 2 * 255).round().to(torch.uint8)  # another distribution

    class Images(torch.utils.data.Dataset):  # what torch-fidelity reads: uint8 RGB (3, H, W)
        def __init__(self, x):
            self.x = x.expand(-1, 3, -1, -1)

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i]

    ref = torch_fidelity.calculate_metrics(
        input1=Images(gen_u8), input2=Images(real_u8), fid=True, kid=True, isc=True, prc=True, cuda=False,
        verbose=False, feature_extractor="inception-v3-compat", feature_extractor_weights_path=str(weights),
        kid_subset_size=10, save_cpu_ram=True)
    to_unit = lambda u: u.float() / 127.5 - 1  # noqa: E731
    ours = standard_metrics(InceptionFeatures(weights).eval(), "inception", to_unit(gen_u8),
                            lambda: to_unit(real_u8).split(7), "test", 10, tmp_path / "cache")
    assert ours["fid"] > 1e-3 and ours["samples"] == 10 and ours["reference"] == 10
    for mine, theirs in [("fid", "frechet_inception_distance"), ("kid", "kernel_inception_distance_mean"),
                         ("kid_std", "kernel_inception_distance_std"), ("is", "inception_score_mean"),
                         ("is_std", "inception_score_std"), ("precision", "precision"), ("recall", "recall")]:
        assert ours[mine] == pytest.approx(ref[theirs], rel=1e-4, abs=1e-6), (mine, ours[mine], ref[theirs])
