"""The GAN's typed config: ``[model]``, ``[gan]``, ``[networks.*]``, ``[train]``, ``[eval]`` of a recipe."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar, Literal

from ..config import FieldError, RunConfig, TrainConfig, at_least, key, within
from ..data import DataConfig
from ..nets.spec import NetConfig

__all__ = ["GanRecipe", "ModelConfig", "AdversarialConfig", "GanEvalConfig", "GanTrainConfig", "GanNetworks"]


# The largest width, latent size or feature count a recipe may ask for, and the most samples
# an evaluation may draw at once (10^7 8x8 digits are 2.5 GB).
SIZE = 1 << 16
SAMPLES = 10 ** 7


@dataclass
class ModelConfig:
    """The ``[model]`` table: the generator / discriminator pair the GAN builds."""

    arch: Literal["mlp", "dcgan", "resnet"] = key("mlp", "The pair: `mlp` (fully connected, any data), `dcgan` "
                                                         "(DCGAN-style conv pair, images of a side divisible by 4) "
                                                         "or `resnet` (the SNGAN / BigGAN ResNet pair, spectral norm "
                                                         "in D; train it with `gan.loss = \"hinge\"`).")
    conditional: bool = key(False, "Make the pair class-conditional on the data's labels: the label's embedding "
                                   "joins z in G (and conditional BN in a dcgan / resnet G), a projection term in D.")
    latent_dim: int = key(100, "Size of z, the generator's input noise.")
    hidden: int = key(256, "MLP only: width of the hidden layers (the discriminator's too unless `d_hidden` is set).")
    layers: int = key(2, "MLP only: number of hidden layers (the discriminator's too unless `d_layers` is set).")
    width: int = key(64, "Conv pairs (dcgan, resnet) only: the base channel count, which the other layers' counts "
                         "multiply.")
    pack: int = key(1, "PacGAN: the discriminator judges this many samples jointly (1 = off); `data.batch_size` "
                       "must be a multiple of it.")
    spectral_norm: bool = key(False, "Spectral norm on every conv / linear layer of an mlp or dcgan discriminator "
                                     "(dcgan: instead of batch norm); the resnet discriminator always has it.")
    d_hidden: int = key(0, "MLP only: the discriminator's hidden width, when it differs from the generator's "
                           "(0 = `hidden`).")
    d_layers: int = key(0, "MLP only: the discriminator's number of hidden layers, when it differs from the "
                           "generator's (0 = `layers`).")
    g_batch_norm: bool = key(False, "MLP only: batch norm in the generator's hidden layers.")
    d_maxout: int = key(0, "MLP only: maxout units of this many pieces in the discriminator instead of LeakyReLU "
                           "(0 or 1 = LeakyReLU).")
    d_fourier: int = key(0, "MLP only: the discriminator first maps each sample to this many random Fourier "
                            "features (sin and cos each), frequencies drawn at `d_fourier_scales` (0 = off).")
    d_fourier_scales: list[float] = key(factory=lambda: [0.5, 2.0, 8.0], doc=(
        "MLP only: the scales (standard deviations, in cycles per data unit) the Fourier features' random "
        "frequencies are drawn at, in turn; used when `d_fourier` > 0."))

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
    """The ``[gan]`` table: the adversarial game, its penalties and how each step is run."""
    OLD_KEYS: ClassVar[dict[str, str]] = {"ema": "it is networks.generator.ema since 1.0"}  # 0.1 keys: their error

    loss: Literal["bce", "hinge", "wgan-gp", "lsgan"] = key(
        "bce", "The adversarial loss on D's logits: `bce` (non-saturating G loss), `hinge`, `wgan-gp` (Wasserstein "
               "with gradient penalty) or `lsgan` (least squares).")
    d_steps: int = key(1, "Discriminator steps per iteration.")
    g_steps: int = key(1, "Generator steps per iteration.")
    gp_weight: float = key(10.0, "Weight of the WGAN-GP gradient penalty (`loss = \"wgan-gp\"`).")
    r1: float = key(0.0, "Weight γ of the R1 penalty γ/2 ‖∇D(real)‖² (Mescheder et al. 2018); 0 = off.")
    reuse_fake: bool = key(False, "The G step reuses the last D step's fake batch (its graph through G) instead of "
                                  "drawing its own.")
    d_concat: Literal["auto", "on", "off"] = key(
        "auto", "One D forward over [real; fake] instead of two: the same per-sample math and loss, fewer kernels "
                "and no gradient accumulation. `auto` uses it when D has no batch-norm layer (batch statistics "
                "would then mix real and fake samples) and `r1` is 0.")
    topk: float = key(1.0, "Top-k generator updates (Sinha et al. 2020): the G loss keeps only the fake samples "
                           "(packs under PacGAN) that D scores as most realistic, a fraction max(topk, topk_decay ** "
                           "(it / topk_every)) of the batch; 1 = off. Under torch.distributed each rank keeps its own "
                           "top k.")
    topk_decay: float = key(0.99, "Top-k: the factor the kept fraction shrinks by every `topk_every` iterations, "
                                  "down to `topk`.")
    topk_every: int = key(0, "Top-k: iterations between shrinks of the kept fraction (0 = one data epoch, or 1,000 "
                             "iterations for the endless mixture samplers).")
    diffaugment: str = key("", "DiffAugment (Zhao et al. 2020) for small image sets: `color,translation,cutout` or a "
                               "subset, comma-separated (empty = off); the same random augmentation on real and fake "
                               "images before D, in both phases.")

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
    """The GAN's ``[train]`` table: ``TrainConfig`` and how often to draw samples."""

    sample_every: int = key(500, "Iterations between sample grids / scatter plots; 0 = off.")

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, 0, "sample_every", note=" (0 turns it off)")


@dataclass
class GanEvalConfig:
    """The GAN's ``[eval]`` table: sample counts, rejection sampling and the standard image metrics."""

    samples: int = key(2500, "Generated samples per evaluation (classifier IS / FD, mixture coverage, standard "
                             "metrics).")
    classifier_epochs: int = key(8, "Epochs of the digit classifier that classifier IS / FD use, trained once per "
                                    "dataset.")
    rejection: Literal["none", "drs"] = key(
        "none", "`drs`: also score samples drawn by discriminator rejection sampling (Azadi et al. 2019), reported "
                "as drs_* beside the plain generator's figures (mixture coverage, or classifier IS / FD). DRS reads "
                "D's logit as log p_data / p_g, which holds for the BCE loss. `none`: the plain generator only.")
    drs_shift: float = key(0.0, "DRS: the shift γ (in logits) that trades exactness for acceptance: > 0 accepts "
                                "fewer samples, < 0 more.")
    drs_refit: int = key(0, "DRS: when > 0, read a fresh critic fitted for this many steps to the final generator "
                            "alone (G fixed; an MLP 256 × 2 over Fourier features at `model.d_fourier_scales`, Adam "
                            "1e-3 with cosine decay) instead of the trained discriminator, which was fitted to a "
                            "moving generator.")
    drs_refit_batch: int = key(4096, "DRS refit: real samples per critic batch, with as many generated ones.")
    drs_refit_fourier: int = key(128, "DRS refit: the Fourier features the fresh critic reads.")
    drs_quantile: float = key(
        1.0, "DRS: D* (the logit of the best candidate, which sets the acceptance scale) is the largest logit seen "
             "(1.0, exact under an optimal D) or this quantile of the first candidates' logits; candidates above it "
             "are always kept. A critic that finds a few candidates far more real than the rest otherwise accepts "
             "almost nothing (the quantile is the bound M of Azadi et al., relaxed).")
    standard_metrics: bool = key(True, "Compute FID / KID / IS / precision-recall (torch-fidelity) on image data.")
    features: str = key("inception", "The standard metrics' feature network: `inception` (the standard weights), "
                                     "`random-conv` (a fixed untrained net: a plumbing check, figures named "
                                     "features_*) or the import path of a feature network.")
    inception_weights: str = key("", "The Inception weights file for `features = \"inception\"` (empty = torch's "
                                     "hub cache); missing, the evaluation says which file to put where and goes on "
                                     "without them.")
    fid_samples: int = key(10_000, "Generated samples the standard metrics read.")
    fid_reference: int = key(50_000, "Real training examples (at most this many) the standard metrics compare the "
                                     "generated ones with; their features are computed once and cached.")

    def __post_init__(self) -> None:
        within(self, "samples", "classifier_epochs", "drs_refit_batch", low=1, high=SAMPLES)
        within(self, "fid_samples", "fid_reference", low=2, high=SAMPLES)
        within(self, "drs_refit", low=0)
        within(self, "drs_refit_fourier", low=0, high=SIZE)
        within(self, "drs_quantile", low=0, high=1, open_low=True)


@dataclass
class GanNetworks:
    """The GAN's ``[networks]`` table: one ``NetConfig`` per network."""

    generator: NetConfig = key(factory=NetConfig, doc="How the generator is trained.")
    discriminator: NetConfig = key(factory=NetConfig, doc="How the discriminator is trained.")


@dataclass
class GanRecipe(RunConfig):
    """A GAN recipe: ``[data]``, ``[model]``, ``[gan]``, ``[networks.generator]`` /
    ``[networks.discriminator]``, ``[train]``, ``[eval]``."""
    task: Literal["gan"] = key("gan", "Which system a recipe is for (checked when it is read).")
    data: DataConfig = key(factory=DataConfig, doc="The `[data]` table: the real examples.")
    model: ModelConfig = key(factory=ModelConfig, doc="The `[model]` table: the generator / discriminator pair.")
    gan: AdversarialConfig = key(factory=AdversarialConfig, doc="The `[gan]` table: the adversarial game.")
    networks: GanNetworks = key(factory=GanNetworks, doc="The `[networks]` table: how each network is trained.")
    train: GanTrainConfig = key(factory=GanTrainConfig, doc="The `[train]` table: length, precision, logging, "
                                                            "checkpoints, evaluation and sample grids.")
    eval: GanEvalConfig = key(factory=GanEvalConfig, doc="The `[eval]` table: what an evaluation measures, "
                                                         "and on how many samples.")

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
