"""How the MNIST classifier's Fréchet distance reacts to small changes of real images, and the
scores of DCGAN checkpoints (raw and EMA generator).

    python benchmarks/classifier_fd.py                      # calibration on real held-out images
    python benchmarks/classifier_fd.py RUN/checkpoints/step_00010000.pt ...   # DCGAN checkpoints

The classifier, the 90/10 split and the scores are the ones ``python -m multinet.gan dcgan_mnist
data.name=idx`` reports (``MULTINET_MNIST_RAW``, default ../shared/data/MNIST/raw). Each line
gives classifier IS and FD of 1,000 images against the training images, and the fraction of
pixels above 0.9 (saturated strokes; real MNIST: about 0.083). The calibration shows what the FD
measures: a Gaussian blur of σ = 0.5 px or a 10 % loss of contrast moves real images far from
the floor, while noise or a lifted background barely do.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torchvision.transforms.functional as TF  # noqa: E402

from multinet.config import load_recipe  # noqa: E402
from multinet.data import load_data  # noqa: E402
from multinet.gan import GanRecipe  # noqa: E402
from multinet.gan.metrics import image_scores, train_classifier  # noqa: E402
from multinet.gan.networks import DCGANGenerator  # noqa: E402

MNIST_RAW = Path(os.environ.get("MULTINET_MNIST_RAW", ROOT.parent / "shared" / "data" / "MNIST" / "raw"))


def line(name: str, clf, x: torch.Tensor, train: torch.Tensor) -> None:
    s = image_scores(clf, x, train, None)
    print(f"{name:<44} IS {s['classifier_is']:6.3f}  FD {s['classifier_fd']:8.1f}  "
          f"pixels > 0.9: {float((x > 0.9).float().mean()):.4f}", flush=True)


def generator(state: dict[str, torch.Tensor]) -> DCGANGenerator:
    """A DCGAN generator rebuilt from its state dict's shapes (conditional when it has embeddings)."""
    classes = state["embed.weight"].shape[0] if "embed.weight" in state else 0
    width = state["blocks.0.weight"].shape[1]
    latent = state["project.0.weight"].shape[1] // (2 if classes else 1)
    g = DCGANGenerator(latent, (1, 28, 28), width, classes)
    g.load_state_dict(state)
    return g.eval()


def main(paths: list[str]) -> None:
    cfg = load_recipe(GanRecipe, "dcgan_mnist", ["data.name='idx'", f"data.root='{MNIST_RAW}'"])
    data = load_data(cfg.data, torch.device("cpu"), cfg.seed)
    with tempfile.TemporaryDirectory() as cache:
        clf = train_classifier(data.train, data.train_labels, data.num_classes, cache, "idx",
                               cfg.eval.classifier_epochs)
    torch.set_grad_enabled(False)
    train, held = data.train.cpu(), data.held_out.cpu()
    if not paths:
        line("held-out real images (the floor)", clf, held, train)
        for sigma in (0.5, 0.8, 1.2):
            line(f"held-out, Gaussian blur sigma {sigma} px", clf, TF.gaussian_blur(held, 5, sigma), train)
        g = torch.Generator().manual_seed(0)
        line("held-out + N(0, 0.1^2) noise", clf, (held + 0.1 * torch.randn(held.shape, generator=g)).clamp(-1, 1), train)
        line("held-out, background and strokes + 0.1", clf, (held + 0.1).clamp(-1, 1), train)
        line("held-out x 0.9 (10 % less contrast)", clf, held * 0.9, train)
    for path in paths:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        states = {"raw": ckpt["networks"]["generator"]["module"]}
        if "generator" in ckpt.get("ema", {}):
            states["ema"] = {k.removeprefix("module."): v for k, v in ckpt["ema"]["generator"].items()
                             if k != "n_averaged"}
        for kind, state in states.items():
            g = generator(state)
            z = torch.randn(len(held), g.init_args["latent_dim"], generator=torch.Generator().manual_seed(0))
            x = g(z, torch.arange(len(z)) % g.classes) if g.classes else g(z)
            line(f"{Path(path).parent.parent.name}/{Path(path).name} {kind}", clf, x.float(), train)


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    main(sys.argv[1:])
