"""The GAN's typed config: ``[model]``, ``[gan]``, ``[networks.*]``, ``[train]``, ``[eval]`` of a recipe."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

from ..config import FieldError, RunConfig, TrainConfig, at_least, within
from ..data import DataConfig
from ..nets.spec import NetConfig

__all__ = ["GanRecipe", "ModelConfig", "AdversarialConfig", "GanEvalConfig", "GanTrainConfig", "GanNetworks"]


# The largest width, latent size or feature count a recipe may ask for, and the most samples
# an evaluation may draw at once (10^7 8x8 digits are 2.5 GB).
SIZE = 1 << 16
SAMPLES = 10 ** 7


@dataclass
class ModelConfig:
    # "resnet": the SNGAN / BigGAN ResNet pair (spectral norm in D; train it with gan.loss = "hinge");
    # conditional = true makes the pair class-conditional on the data's labels: the label's embedding
    # joins z in G (and conditional BN in a dcgan / resnet G), a projection term in D.
    arch: Literal["mlp", "dcgan", "resnet"] = "mlp"
    conditional: bool = False
    latent_dim: int = 100
    hidden: int = 256
    layers: int = 2
    width: int = 64
    pack: int = 1
    spectral_norm: bool = False
    # MLP only: a discriminator of its own size (0 = the generator's), batch norm in the
    # generator's hidden layers, maxout units of that many pieces in the discriminator.
    d_hidden: int = 0
    d_layers: int = 0
    g_batch_norm: bool = False
    d_maxout: int = 0
    # MLP only: the discriminator first maps each sample to d_fourier random Fourier features
    # (sin and cos each), frequencies drawn at these scales in cycles per data unit (0 = off).
    d_fourier: int = 0
    d_fourier_scales: list[float] = field(default_factory=lambda: [0.5, 2.0, 8.0])

    def __post_init__(self) -> None:
        # Upper bounds far above any published network: a larger value is a typo that would
        # otherwise hang while allocating (d_fourier = 10^9 took minutes before failing).
        within(self, "latent_dim", "hidden", "width", low=1, high=SIZE)
        within(self, "d_hidden", "d_fourier", low=0, high=SIZE)
        within(self, "layers", low=1, high=256)
        within(self, "d_layers", low=0, high=256)
        within(self, "pack", low=1, high=256)
        within(self, "d_maxout", low=0, high=64)
        if self.d_fourier and self.arch != "mlp":
            raise FieldError("d_fourier", f"applies to arch = 'mlp' only, got arch = {self.arch!r}")
        if self.d_fourier and (not self.d_fourier_scales or not all(s > 0 for s in self.d_fourier_scales)):
            raise FieldError("d_fourier_scales", f"must be one or more positive numbers, got {self.d_fourier_scales}")


@dataclass
class AdversarialConfig:
    loss: Literal["bce", "hinge", "wgan-gp", "lsgan"] = "bce"  # adversarial loss on D's logits (bce: non-saturating G loss)
    d_steps: int = 1  # discriminator steps per iteration
    g_steps: int = 1  # generator steps per iteration
    gp_weight: float = 10.0  # weight of the WGAN-GP gradient penalty (loss = wgan-gp)
    r1: float = 0.0  # weight γ of the R1 penalty γ/2 ‖∇D(real)‖² (Mescheder et al. 2018); 0 = off
    reuse_fake: bool = False  # the G step reuses the last D step's fake batch (its graph through G) instead of drawing its own
    # One D forward over [real; fake] instead of two: the same per-sample math and loss, fewer
    # kernels and no gradient accumulation. "auto" uses it when D has no batch-norm layer
    # (batch statistics would then mix real and fake samples).
    d_concat: Literal["auto", "on", "off"] = "auto"
    # Top-k generator updates (Sinha et al. 2020): the G loss keeps only the fake samples (packs
    # under PacGAN) that D scores as most realistic, a fraction max(topk, topk_decay ** (it / every))
    # of the batch, where every = topk_every iterations (0: one data epoch, or 1,000 iterations
    # for the endless mixture samplers). Under torch.distributed each rank keeps its own top k.
    # topk = 1 is off.
    topk: float = 1.0
    topk_decay: float = 0.99
    topk_every: int = 0
    # DiffAugment (Zhao et al. 2020) for small image sets: "color,translation,cutout" or a subset;
    # the same random augmentation on real and fake images before D, in both phases.
    diffaugment: str = ""

    def __post_init__(self) -> None:
        from .diffaugment import POLICIES
        bad = [p for p in self.policy if p not in POLICIES]
        if bad:
            raise FieldError("diffaugment", f"unknown polic{'ies' if len(bad) > 1 else 'y'} {', '.join(bad)} "
                             f"(valid: {', '.join(POLICIES)}, comma-separated)")
        at_least(self, 1, "d_steps", "g_steps")
        at_least(self, 0, "gp_weight", "r1", "topk_every")
        within(self, "topk", "topk_decay", low=0, high=1, open_low=True)

    @property
    def policy(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.diffaugment.split(",") if p.strip())


@dataclass
class GanTrainConfig(TrainConfig):
    sample_every: int = 500  # iterations between sample grids / scatter plots; 0 = off

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, 0, "sample_every", note=" (0 turns it off)")


@dataclass
class GanEvalConfig:
    samples: int = 2500  # generated samples per evaluation (classifier IS / FD, mixture coverage, standard metrics)
    classifier_epochs: int = 8  # epochs of the digit classifier that classifier IS / FD use, trained once per dataset
    # "drs": also score samples drawn by discriminator rejection sampling (Azadi et al. 2019),
    # reported as drs_* beside the plain generator's figures (mixture coverage, or classifier
    # IS / FD). DRS reads D's logit as log p_data / p_g, which holds for the BCE loss.
    # drs_shift (γ, in logits) trades exactness for acceptance: > 0 accepts fewer, < 0 more.
    rejection: Literal["none", "drs"] = "none"
    drs_shift: float = 0.0
    # drs_refit > 0: DRS reads a fresh critic fitted for that many steps to the final generator
    # alone (G fixed, batches of drs_refit_batch real + as many generated samples; an MLP 256 × 2
    # over drs_refit_fourier Fourier features at model.d_fourier_scales, Adam 1e-3 with cosine
    # decay) instead of the trained discriminator, which was fitted to a moving generator.
    drs_refit: int = 0
    drs_refit_batch: int = 4096
    drs_refit_fourier: int = 128
    # D* (the logit of the best candidate, which sets the acceptance scale): the largest logit seen
    # (1.0, exact under an optimal D) or this quantile of the first candidates' logits; candidates
    # above it are always kept. A critic that finds a few candidates far more real than the rest
    # otherwise accepts almost nothing (the quantile is the bound M of Azadi et al., relaxed).
    drs_quantile: float = 1.0
    # FID / KID / IS / precision-recall (torch-fidelity) on image data: "inception" (the standard
    # weights, read from eval.inception_weights or torch's hub cache; missing, the evaluation
    # says which file to put where and goes on without them), "random-conv" (a fixed untrained
    # net: a plumbing check, figures named features_*) or the import path of a feature network.
    standard_metrics: bool = True
    features: str = "inception"
    inception_weights: str = ""
    fid_samples: int = 10_000
    fid_reference: int = 50_000

    def __post_init__(self) -> None:
        within(self, "samples", "classifier_epochs", "drs_refit_batch", low=1, high=SAMPLES)
        within(self, "fid_samples", "fid_reference", low=2, high=SAMPLES)
        within(self, "drs_refit", low=0)
        within(self, "drs_refit_fourier", low=0, high=SIZE)
        within(self, "drs_quantile", low=0, high=1, open_low=True)


@dataclass
class GanNetworks:
    generator: NetConfig = field(default_factory=NetConfig)
    discriminator: NetConfig = field(default_factory=NetConfig)


@dataclass
class GanRecipe(RunConfig):
    """A GAN recipe: ``[data]``, ``[model]``, ``[gan]``, ``[networks.generator]`` /
    ``[networks.discriminator]``, ``[train]``, ``[eval]``."""
    task: Literal["gan"] = "gan"  # which system a recipe is for (checked when it is read)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    gan: AdversarialConfig = field(default_factory=AdversarialConfig)
    networks: GanNetworks = field(default_factory=GanNetworks)
    train: GanTrainConfig = field(default_factory=GanTrainConfig)
    eval: GanEvalConfig = field(default_factory=GanEvalConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model.conditional and self.eval.rejection != "none":
            raise FieldError("eval.rejection", "rejection sampling is for unconditional generators "
                             "(model.conditional = true)")
        if self.gan.policy and self.data.name in ("ring8", "grid25"):
            raise FieldError("gan.diffaugment", f"augments images; data.name={self.data.name!r} is 2-D points")
        if self.eval.rejection == "drs" and not self.eval.drs_refit and self.gan.loss != "bce":
            warnings.warn(f"eval.rejection='drs' reads D's logit as log p_data/p_g, which only gan.loss='bce' "
                          f"trains it to be (gan.loss={self.gan.loss!r}); eval.drs_refit > 0 fits a critic that is")
        if self.eval.drs_refit and self.data.name in ("imagefolder", "celeba"):  # else it fails after training
            raise FieldError("eval.drs_refit", f"fits a critic to real examples held in memory; "
                             f"data.name={self.data.name!r} streams from files")
