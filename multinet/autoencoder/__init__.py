"""Autoencoder: encoder → channel → decoder. ``python -m multinet.autoencoder`` runs a recipe."""
from .bler import hamming74_codebook, hamming74_hard_bler, ml_decoder, monte_carlo, uncoded_bpsk_bler, wilson_interval
from .channels import Channel, ChannelConfig, ebn0_to_sigma, make_channel, quantize
from .config import AeRecipe, phase_bounds
from .model_free import log_policy, perturb, policy_loss
from .networks import (Constellation, ImageDecoder, ImageEncoder, MessageDecoder, MessageEncoder, NeuralDemapper,
                       gray_qam)
from . import evaluation
from .system import AeSystem
