"""Handlers: one concern each, attached to an engine with ``attach(engine)`` (``Engine(handlers=[...])``).

Write your own as any object with ``attach(engine)`` that calls ``engine.on(Event..., fn, every)``.
"""
from ..engine.divergence import NonFiniteLoss
from ..engine.events import EXIT_CODES
from .checkpointer import Checkpointer
from .periodic import AtSteps, EvaluateEvery, SampleEvery
from .progress import ProgressBar
from .scalars import LogScalars
from .signals import StopOnSignal
from .timer import Timer

__all__ = ["AtSteps", "Checkpointer", "EvaluateEvery", "LogScalars", "NonFiniteLoss", "ProgressBar",
           "SampleEvery", "StopOnSignal", "Timer", "EXIT_CODES"]
