"""multinet: train systems of several networks, each with its own optimizer.

Layers, bottom to top (each imports only those below it): ``config`` → ``state`` → ``nets`` →
``data`` → ``engine`` → ``handlers`` / ``tracking`` → ``run`` → ``cli``; the shipped systems
(``gan``, ``autoencoder``) are built on ``run`` like any system of yours.
"""
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

from .config import ConfigError, RunConfig, TrainConfig, load_recipe  # noqa: E402
from .engine import Engine, Event, NonFiniteLoss, Phase  # noqa: E402
from .nets import (OPTIMIZERS, GroupRule, InitRule, LoadReport, Net, NetConfig, PretrainedSpec,  # noqa: E402
                   ScheduleSpec, apply_norm_mode, audit_groups, bilinear_kernel, build_optimizer, build_scheduler,
                   eval_mode, frozen, group_preset, init_preset, init_weights, load_named_state_dict, load_partial,
                   named_state_dict, plan_groups, resolve_device, set_trainable)
from .run import EngineOptions, NotOffered, RunContext, Runner, RunResult, System, load_system  # noqa: E402
from .state import CheckpointManager, RandomStreams, load_checkpoint, save_checkpoint  # noqa: E402
from .tracking import Tracker  # noqa: E402


__all__ = ["ConfigError", "RunConfig", "TrainConfig", "load_recipe", "Engine", "Event", "NonFiniteLoss", "Phase",
           "OPTIMIZERS", "GroupRule", "InitRule", "LoadReport", "Net", "NetConfig", "PretrainedSpec", "ScheduleSpec",
           "apply_norm_mode", "audit_groups", "bilinear_kernel", "build_optimizer", "build_scheduler", "eval_mode",
           "frozen", "group_preset", "init_preset", "init_weights", "load_named_state_dict", "load_partial",
           "named_state_dict", "plan_groups", "resolve_device", "set_trainable", "EngineOptions", "NotOffered",
           "RunContext", "Runner", "RunResult", "System", "load_system", "CheckpointManager", "RandomStreams",
           "load_checkpoint", "save_checkpoint", "Tracker"]
__version__ = "1.0.0"
