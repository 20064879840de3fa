"""Autoencoder: encoder → channel → decoder. ``python -m multinet.autoencoder`` runs a recipe.

``AeSystem(cfg, device)`` is the kind ``link.kind`` names: ``MessageAutoencoder``,
``BitAutoencoder`` or ``ImageAutoencoder`` (importing this package registers the three)."""
from . import evaluation
from .bits import BitAutoencoder
from .bler import hamming74_codebook, hamming74_hard_bler, ml_decoder, monte_carlo, uncoded_bpsk_bler, wilson_interval
from .channels import Channel, ChannelConfig, ebn0_to_sigma, make_channel, quantize
from .recipe import (AeEvalConfig, AeNetworks, AeRecipe, AeTrainConfig, LinkConfig, PhaseConfig,
                     phase_bounds)
from .images import ImageAutoencoder
from .messages import MessageAutoencoder
from .model_free import log_policy, perturb, policy_loss
from .networks import (Constellation, ImageDecoder, ImageEncoder, MessageDecoder, MessageEncoder, NeuralDemapper,
                       gray_qam)
from .system import AeSystem

__all__ = ["AeSystem", "MessageAutoencoder", "BitAutoencoder", "ImageAutoencoder", "AeRecipe", "LinkConfig", "PhaseConfig",
           "AeTrainConfig", "AeEvalConfig", "AeNetworks", "phase_bounds",
           "Channel", "ChannelConfig", "ebn0_to_sigma", "make_channel", "quantize", "hamming74_codebook",
           "hamming74_hard_bler", "ml_decoder", "monte_carlo", "uncoded_bpsk_bler", "wilson_interval", "log_policy",
           "perturb", "policy_loss", "Constellation", "ImageDecoder", "ImageEncoder", "MessageDecoder",
           "MessageEncoder", "NeuralDemapper", "gray_qam", "evaluation"]
