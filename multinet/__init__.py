"""multinet: train systems of several networks, each with its own optimizer."""
import os as _os

# MKL may otherwise pick its thread count per call, which changes float summation order between
# two runs of the same recipe; exact resume on CPU needs the same order every time.
_os.environ.setdefault("MKL_DYNAMIC", "FALSE")
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
