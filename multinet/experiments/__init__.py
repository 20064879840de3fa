"""Experiments over many runs: seeds, grids and searches on an Optuna study (``sweep``), and runs
side by side (``compare``). Above the runner: every trial is an ordinary run."""
from .compare import compare_runs
from .plan import Dist, SweepPlan
from .report import interval, write_report
from .sweep import run_sweep

__all__ = ["run_sweep", "SweepPlan", "Dist", "compare_runs", "write_report", "interval"]
