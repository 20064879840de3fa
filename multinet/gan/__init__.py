"""GAN: config, networks, losses, sampling, evaluation. ``python -m multinet.gan`` runs a recipe."""
from .recipe import AdversarialConfig, GanEvalConfig, GanNetworks, GanRecipe, GanTrainConfig, ModelConfig
from .losses import d_loss, g_loss, gradient_penalty, r1_penalty
from .metrics import mixture_coverage
from .networks import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from .system import GanSystem

__all__ = ["GanSystem", "GanRecipe", "ModelConfig", "AdversarialConfig", "GanTrainConfig", "GanEvalConfig",
           "GanNetworks", "d_loss", "g_loss", "gradient_penalty", "r1_penalty", "mixture_coverage",
           "DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator"]
