"""Handlers: one concern each, attached to an engine with ``attach(engine)`` (``Engine(handlers=[...])``).

Write your own as any object with ``attach(engine)`` that calls ``engine.on(Event..., fn, every)``.
"""
from .checkpointer import Checkpointer
from .nan_guard import NanGuard, NonFiniteLoss
from .periodic import AtSteps, EvaluateEvery, SampleEvery
from .progress import ProgressBar
from .scalars import LogScalars
from .signals import EXIT_CODES, StopOnSignal
from .timer import Timer
from .unfreeze import UnfreezeAt

__all__ = ["AtSteps", "Checkpointer", "EvaluateEvery", "LogScalars", "NanGuard", "NonFiniteLoss", "ProgressBar",
           "SampleEvery", "StopOnSignal", "Timer", "UnfreezeAt", "EXIT_CODES"]
