"""Networks: one network and everything that trains it, as small pure modules imported in build
order — ``patterns`` (names and module types), ``weights`` (init rules), ``pretrained`` (partial
loads), ``freeze``, ``groups`` (parameter-group rules), ``optimizers``, ``schedules``, ``spec``
(``NetConfig``, the one description of a network's training) and ``net`` (``Net``, which builds it)."""
from .freeze import NORM_MODES, NORM_TYPES, apply_norm_mode, eval_mode, frozen, frozen_tensors, is_frozen_norm, set_trainable
from .groups import PARAM_KINDS, GroupPlan, GroupRule, audit_groups, group_preset, named_trainable, plan_groups
from .device import resolve_device
from .ema import Ema
from .net import Net
from .optimizers import OPTIMIZERS, build_optimizer, load_named_state_dict, named_state_dict
from .patterns import name_matches, resolve_types, type_names
from .pretrained import LoadReport, PretrainedSpec, load_partial
from .schedules import (SCHEDULES, FactorScheduler, PlateauScheduler, ScheduleSpec, advance,
                        build_scheduler, schedule_function)
from .spec import OPTIMIZER_NAMES, NetConfig
from .weights import INIT_METHODS, PRESETS, InitReport, InitRule, bilinear_kernel, init_preset, init_weights

__all__ = ["Net", "NetConfig", "Ema", "resolve_device", "GroupRule", "GroupPlan", "plan_groups", "group_preset",
           "audit_groups", "named_trainable", "InitRule", "InitReport", "init_weights", "init_preset", "bilinear_kernel",
           "ScheduleSpec", "FactorScheduler", "PlateauScheduler", "build_scheduler", "advance",
           "schedule_function",
           "PretrainedSpec", "LoadReport", "load_partial", "OPTIMIZERS", "OPTIMIZER_NAMES", "build_optimizer",
           "named_state_dict", "load_named_state_dict", "set_trainable", "frozen", "frozen_tensors", "eval_mode", "apply_norm_mode",
           "is_frozen_norm", "name_matches", "resolve_types", "type_names", "NORM_MODES", "NORM_TYPES", "PARAM_KINDS",
           "SCHEDULES", "INIT_METHODS", "PRESETS"]
