"""Data: what a recipe trains on (``sources``: ``load_data``, ``DataConfig``, ``DataSource``), the
samplers that draw its batches (``samplers``), and image files read batch by batch (``files``)."""
from .files import UnreadableImage, celeba, image_folder, iterate
from .samplers import LoaderSampler, MixtureSampler, TensorSampler
from .sources import DataConfig, DataSource, LazyData, data_shape, load_data, load_images, mixture_means, read_idx

__all__ = ["DataConfig", "DataSource", "LazyData", "load_data", "load_images", "data_shape", "mixture_means",
           "read_idx", "TensorSampler", "MixtureSampler", "LoaderSampler", "UnreadableImage", "image_folder", "celeba",
           "iterate"]
