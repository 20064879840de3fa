"""multinet: train systems of several networks, each with its own optimizer."""
import os as _os
import sys as _sys

if _sys.argv[:1] == ["-m"] and any(a == "-m" and b.split(".")[0] == "multinet"
                                   for a, b in zip(_sys.orig_argv, _sys.orig_argv[1:])):
    # imported to run ``python -m multinet...``: see multinet.startup
    from .startup import quiet_interrupts_while_starting as _quiet
    _quiet()

# Without this, MKL may choose a different thread count for the same call from one run to the
# next, which changes float summation order: exact resume on CPU needs the same order every time.
_os.environ.setdefault("MKL_DYNAMIC", "FALSE")
from .checkpoint import CheckpointManager, load_checkpoint, save_checkpoint
from .config import ConfigError, RunConfig, TrainConfig, load_recipe
from .engine import Engine, Event, NonFiniteLoss, Phase
from .freeze import apply_norm_mode, eval_mode, frozen, set_trainable
from .groups import GroupRule, audit_groups, group_preset, plan_groups
from .netspec import NetConfig
from .nets import Net, resolve_device
from .optimizers import OPTIMIZERS, build_optimizer, load_named_state_dict, named_state_dict
from .pretrained import LoadReport, PretrainedSpec, load_partial
from .runner import Runner, RunResult
from .saved import load_system
from .schedules import ScheduleSpec, build_scheduler
from .streams import RandomStreams
from .system import EngineOptions, NotOffered, RunContext, System
from .tracking import Tracker
from .weights import InitRule, bilinear_kernel, init_preset, init_weights

__version__ = "0.1.0"
