"""GAN engine: recipes, networks, losses, metrics. ``python -m multinet.gan`` runs a recipe."""
from .losses import d_loss, g_loss, gradient_penalty, r1_penalty
from .metrics import mixture_coverage
from .networks import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from .recipe import GanRecipe, GanSystem, build
