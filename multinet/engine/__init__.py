"""The engine: phases over networks (``phase``, with the on-device rates a step may return), the
update rule a phase runs (``update``), the loop that runs them (``loop``), the events handlers
listen to and the ways a run ends (``events``), the divergence check (``divergence``), what it
reports (``readout``) and what a checkpoint holds of it (``snapshot``)."""
from . import update
from .divergence import NanRecord, NonFiniteLoss, non_finite
from .events import EXIT_CODES, Event, HandlerError, Registration, StopReason
from .loop import AMP_MODES, Engine
from .phase import Phase, check_phases
from .readout import Readout
from .snapshot import engine_state, keep_plan, load_engine_state, load_problem
from .update import (LossError, StepError, backward, bit_error_rate, call_step, end_update, error_rate, manual,
                     optimizer_step, standard)

__all__ = ["Engine", "Phase", "Event", "StopReason", "EXIT_CODES", "Registration", "NonFiniteLoss", "StepError",
           "HandlerError", "AMP_MODES", "non_finite", "NanRecord", "check_phases", "keep_plan",
           "load_problem", "Readout", "engine_state", "load_engine_state", "error_rate", "bit_error_rate", "update",
           "standard", "manual", "call_step", "backward", "optimizer_step", "end_update", "LossError"]
