"""Typed configs: the shared tables (``schema``), fields with their meaning and range checks
(``fields``), and recipes, the TOML files and ``key=value`` overrides they are read from
(``loading``)."""
from .fields import FieldError, at_least, error_line, key, key_meaning, within
from .loading import (ConfigError, find_recipe, flatten, from_dict, list_recipes, load_recipe, merge,
                      parse_overrides, to_dict, to_toml)
from .schema import MAX_SEED, MAX_STEPS, RunConfig, TrainConfig

__all__ = ["MAX_STEPS", "MAX_SEED", "ConfigError", "key", "key_meaning", "FieldError", "at_least", "within",
           "TrainConfig", "RunConfig", "from_dict", "flatten", "error_line", "to_dict", "to_toml", "parse_overrides",
           "merge", "find_recipe", "load_recipe", "list_recipes"]
