"""Autoencoder: encoder → channel → decoder. ``python -m multinet.autoencoder`` runs a recipe."""
from .bler import hamming74_codebook, hamming74_hard_bler, ml_decoder, monte_carlo, uncoded_bpsk_bler
from .channel import Channel, ChannelConfig, ebn0_to_sigma
from .config import AeRecipe, phase_bounds
from .networks import ImageDecoder, ImageEncoder, MessageDecoder, MessageEncoder
from . import evaluation
from .system import AeSystem
