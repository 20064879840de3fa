"""The engine: phases over networks (``phase``, with the on-device rates a step may return), the
loop that runs them (``loop``), the events handlers listen to (``events``), the divergence check
(``divergence``), what it reports (``readout``) and what a checkpoint holds of it (``snapshot``)."""
from .divergence import NEAR_OVERFLOW, NonFiniteLoss, non_finite, weight_headroom
from .events import Event
from .loop import AMP_MODES, Engine
from .phase import Phase, StepError, bit_error_rate, check_phases, error_rate, keep_plan
from .readout import Readout
from .snapshot import Snapshot, load_problem

__all__ = ["Engine", "Phase", "Event", "NonFiniteLoss", "StepError", "AMP_MODES", "non_finite", "weight_headroom",
           "NEAR_OVERFLOW", "check_phases", "keep_plan", "load_problem", "Readout", "Snapshot",
           "error_rate", "bit_error_rate"]
