"""Runs: the System contract (``system``), the Runner that trains one (``runner``), how a resume
is resolved (``resume``), the run folder's lock and file rules (``lock``), and systems rebuilt
from a checkpoint (``saved``)."""
from .resume import Launch, Resume, open_resume, resolve
from .runner import Runner, RunResult
from .saved import load_system, system_of
from .system import EngineOptions, NotOffered, RunContext, System, engine_for, note, notes_shown

__all__ = ["System", "RunContext", "EngineOptions", "NotOffered", "note", "notes_shown", "Runner", "RunResult",
           "engine_for", "load_system", "system_of", "Launch", "Resume", "open_resume", "resolve"]
