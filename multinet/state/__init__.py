"""What a run saves and reads back: checkpoints (``checkpoint``), exported networks (``export``),
named random streams (``streams``), and the rule for what a saved file may make Python import
(``imports``)."""
from .checkpoint import (CheckpointManager, atomic_path, load_checkpoint, rng_state, save_checkpoint, set_rng_state,
                         write_text_atomic)
from .export import export_module, load_exported, read_export
from .imports import CodeRefused, import_class, import_function, import_object, object_path, saved_file
from .streams import RandomStreams, derive_seed, forked_rng, seed_everything

__all__ = ["CheckpointManager", "save_checkpoint", "load_checkpoint", "atomic_path", "write_text_atomic", "rng_state",
           "set_rng_state", "export_module", "load_exported", "read_export", "CodeRefused", "import_object",
           "import_class", "import_function", "object_path", "saved_file", "RandomStreams", "derive_seed",
           "forked_rng", "seed_everything"]
