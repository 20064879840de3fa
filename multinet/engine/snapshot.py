"""What a checkpoint holds of an engine, and putting it back: networks (weights, optimizer and
schedule state), EMA copies, AMP scalers, stateful objects (data samplers), the iteration and
phase counts, the phase plan that has run, the random streams, and the run's config and meta."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import error_line
from ..state.checkpoint import rng_state, set_rng_state
from ..notes import note

if TYPE_CHECKING:
    from .phase import Phase

__all__ = ["engine_state", "load_engine_state", "load_problem", "keep_plan"]


def load_problem(e: Exception) -> str:
    """The first concrete line of a multi-line ``load_state_dict`` error (``size mismatch for ...``)."""
    detail = [x.strip() for x in str(e).splitlines() if x.strip().startswith(("size mismatch", "Missing key",
                                                                                 "Unexpected key"))]
    return detail[0][:300] if detail else error_line(e)


def engine_state(engine: Any) -> dict[str, Any]:
    """Everything a checkpoint holds of ``engine``'s run."""
    return {
        "networks": {k: n.state_dict() for k, n in engine.nets.items()},
        "ema": {k: m.state_dict() for k, m in engine.ema.items()},
        "scalers": {k: s.state_dict() for k, s in engine.scalers.items()},
        "stateful": {k: s.state_dict() for k, s in engine.stateful.items()},
        "engine": {"iteration": engine.iteration, "phase_steps": dict(engine.phase_steps),
                   "world_size": engine.dist.world, "phase": [p.name for p in engine.phases if p.active(engine.iteration)],
                   "total_steps": engine.total_steps, "plan": {p.name: [p.start, p.stop] for p in engine.phases}},
        "rng": rng_state(engine.generators),
        "config": engine.config,
        "meta": engine.meta,
    }


def load_engine_state(engine: Any, state: dict[str, Any]) -> None:
    """Put a checkpoint's state back into ``engine`` (built for the same networks and phases); the
    phase plan that has run stays (``keep_plan``)."""
    for k, net in engine.nets.items():
        if k not in state["networks"]:
            raise ValueError(f"checkpoint has no network {k!r} (has: {', '.join(state['networks'])})")
        try:
            net.load_state_dict(state["networks"][k])
        except (RuntimeError, KeyError, TypeError) as e:  # another architecture, or a broken entry
            raise ValueError(f"network {k!r} does not fit this run's: {load_problem(e)}") from None
    for k, m in engine.ema.items():
        if k in state["ema"]:
            m.load_state_dict(state["ema"][k])
    for k, s in engine.scalers.items():
        if state["scalers"].get(k):
            s.load_state_dict(state["scalers"][k])
    engine.iteration = int(state["engine"]["iteration"])
    engine.phase_steps.update(state["engine"]["phase_steps"])
    # Before the stateful objects: a system reads its plan when its state loads.
    keep_plan(engine.phases, state["engine"].get("plan"), state["engine"].get("total_steps"), engine.total_steps,
              engine.iteration)
    for k, s in engine.stateful.items():
        if k in state["stateful"]:
            s.load_state_dict(state["stateful"][k])
        elif not getattr(s, "optional_state", False):
            raise ValueError(f"checkpoint has no state for {k!r} (has: {', '.join(state['stateful']) or 'none'})")
    set_rng_state(state["rng"], engine.generators)


def keep_plan(phases: list[Phase], saved: dict[str, Any] | None, saved_total: int | None, total: int,
              done: int = 0) -> None:
    """The one home of the phase plan on resume: the plan a run was trained with stays. A system
    that computes its phase boundaries from ``train.steps`` would otherwise move them when a run is
    extended (``--resume --steps M``), re-running a stage that has ended. Each phase keeps its saved
    start and stop; a phase that ran to the end of the saved run runs to the end of the new one
    (``total``), said in a note. A resume at iteration ``done`` that would end before a planned
    phase starts is an error. Phases the checkpoint does not name (or a checkpoint from before
    plans were saved) keep the new plan."""
    if not isinstance(saved, dict) or not isinstance(saved_total, int):
        return
    for p in phases:
        bounds = saved.get(p.name)
        if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
            continue
        start, stop = bounds
        if stop is not None and stop < saved_total:  # ended before the saved run did: stays ended
            p.start, p.stop = int(start), int(stop)
            continue
        if done < total <= int(start):  # a phase boundary cannot move: the stage it starts would be skipped
            raise ValueError(f"train.steps={total} would end before phase {p.name!r} starts (step {start}); the phase "
                             "boundaries of a resumed run do not move")
        p.start, p.stop = int(start), None if p.stop is None or p.stop <= start else p.stop
        if stop is not None and total != saved_total:
            note(f"{saved_total} -> {total} steps: phase {p.name!r} now ends at step {p.stop or total} (was {stop}); "
                 "earlier phase boundaries stay where they were")
