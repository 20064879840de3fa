"""multinet: train systems of several networks, each with its own optimizer."""
from .checkpoint import CheckpointManager, load_checkpoint, save_checkpoint
from .config import ConfigError, load_recipe
from .freeze import apply_norm_mode, frozen, set_trainable
from .groups import GroupRule, audit_groups, group_preset, plan_groups
from .nets import Net, NetSpec, resolve_device
from .optimizers import OPTIMIZERS, build_optimizer, load_named_state_dict, named_state_dict
from .pretrained import LoadReport, PretrainedSpec, load_partial
from .schedules import ScheduleSpec, build_scheduler
from .weights import InitRule, bilinear_kernel, init_preset, init_weights

__version__ = "0.1.0"
