"""Where a run's figures go: TensorBoard and ``metrics.jsonl`` (``tracker``), MLflow and Weights &
Biases beside them (``backends``)."""
from .backends import MlflowTracker, WandbTracker, make_trackers
from .tracker import NullTracker, Tracker

__all__ = ["Tracker", "NullTracker", "MlflowTracker", "WandbTracker", "make_trackers"]
