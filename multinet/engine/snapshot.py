"""What a checkpoint holds of an engine, and putting it back: networks (weights, optimizer and
schedule state), EMA copies, AMP scalers, stateful objects (data samplers), the iteration and
phase counts, the phase plan that has run, the random streams, and the run's config and meta."""
from __future__ import annotations

from typing import Any

from ..config import error_line
from ..state.checkpoint import rng_state, set_rng_state
from .phase import keep_plan

__all__ = ["engine_state", "load_engine_state", "load_problem"]


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
