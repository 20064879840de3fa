"""What a sweep leaves to read: ``sweep.csv`` (one row per run: trial, params, seed, every figure,
state, seconds), ``sweep.md`` (per config: mean, standard deviation and a 95 % interval over seeds
of every figure; the best config) and ``sweep.png`` (the objective per trial, the parameters'
importances where Optuna can compute them, the objective against each varied parameter).

Figures come from the run folders' ``summary.json``, so a report written again after more trials
(or by hand: ``python -m multinet sweep ... --report``) always shows what is on disk."""
from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path
from typing import Any

from ..config import flatten
from ..state.checkpoint import atomic_path, write_text_atomic
from .plan import SweepPlan
from ..state.runfiles import read_json
from .trials import folder_of, live_trials, params_of, run_folder, trial_seconds

__all__ = ["write_report", "interval"]


def interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, sample standard deviation, half-width of the 95 % t interval) of ``values``."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan, math.nan
    from scipy.stats import t
    sd = statistics.stdev(values)
    return mean, sd, float(t.ppf(0.975, len(values) - 1)) * sd / math.sqrt(len(values))


def _numbers(summary: dict[str, Any]) -> dict[str, float]:
    """The numeric figures; one saved as null (non-finite) is NaN here, so its column stays."""
    return {k: math.nan if v is None else float(v) for k, v in flatten(summary, sep="/").items()
            if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}


def _rows(study: Any, plan: SweepPlan, out: Path) -> list[dict[str, Any]]:
    rows = []
    latest = {}  # an interrupted trial and the one that finished it share runs: the latter speaks
    trials = {t.number: t for t in live_trials(study)}
    for t in trials.values():
        if "pid" in t.user_attrs:  # a worker took it (the folder itself is derived, never read)
            latest[(folder_of(t, plan, trials), params_of(t, plan).get("seed"))] = t
    for (folder, own), t in latest.items():
        for seed in plan.seeds if own is None else [own]:  # a grid's trial: its one seed
            run = run_folder(out, folder, seed)
            summary = run / "summary.json"
            figures = _numbers(read_json(summary, run, what="a run's summary")) if summary.exists() else {}
            if not figures and t.state.name != "COMPLETE" and not run.exists():
                continue
            rows.append({"trial": t.number, "folder": folder, "state": t.state.name.lower(),
                         **{f"param/{k}": v for k, v in params_of(t, plan).items() if k != "seed"}, "seed": seed,
                         "seconds": trial_seconds(t, seed), **figures})
    return rows


def write_report(study: Any, plan: SweepPlan, out: Path) -> str:
    """Write sweep.csv, sweep.md and sweep.png; return the Markdown table."""
    rows = _rows(study, plan, out)
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    with atomic_path(out / "sweep.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, columns)
        w.writeheader()
        w.writerows(rows)
    table = _table(rows, plan)
    write_text_atomic(out / "sweep.md", table)
    _plot(study, plan, rows, out / "sweep.png")
    return table


def _table(rows: list[dict[str, Any]], plan: SweepPlan) -> str:
    configs: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["state"] == "complete":
            configs.setdefault(r["folder"], []).append(r)
    figures = _figures(rows, plan)
    params = sorted({k for r in rows for k in r if k.startswith("param/")})
    head = ["config", *[p[6:] for p in params], "seeds", *figures]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    scored = []
    for folder, rs in configs.items():
        cells = [folder, *[str(rs[0].get(p, "")) for p in params], str(len(rs))]
        for fig in figures:
            vals = [r[fig] for r in rs if isinstance(r.get(fig), float) and math.isfinite(r[fig])]
            if not vals:
                cells.append("–")
                continue
            mean, sd, half = interval(vals)
            cells.append(f"{mean:.4g}" + (f" ± {half:.2g} (sd {sd:.2g})" if math.isfinite(half) else ""))
            if fig == plan.objective:
                scored.append((mean, folder))
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + ("\n\nMean ± half-width of the 95 % t interval over seeds "
                                      "(sd: their sample standard deviation).\n")
    if scored and plan.objective:
        best = (max if plan.direction == "maximize" else min)(scored)
        text += f"Best config ({plan.direction} {plan.objective}): {best[1]}, {best[0]:.6g}\n"
    pruned = len({r["trial"] for r in rows if r["state"] == "pruned"})
    return text + (f"Pruned trials: {pruned}\n" if pruned else "")


def _figures(rows: list[dict[str, Any]], plan: SweepPlan) -> list[str]:
    """The table's figures: the objective, then the top-level figures, then nested ones (curves/...),
    eight at most."""
    fixed = {"trial", "folder", "state", "seed", "seconds", "steps", "world_size", plan.objective}
    found = {k for r in rows for k in r if k not in fixed and not k.startswith("param/") and isinstance(r[k], float)}
    return ([plan.objective] if plan.objective else []) + sorted(found, key=lambda k: ("/" in k, k))[:8 - bool(plan.objective)]


def _plot(study: Any, plan: SweepPlan, rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    # (trial, its parameters, value): a search plots what Optuna was told (each config's mean over
    # seeds); a grid, each run's figure from its summary (the objective, else the table's first).
    name = plan.objective or next(iter(_figures(rows, plan)), "")
    if plan.search:
        points = [(t.number, t.params, t.value) for t in study.get_trials(deepcopy=False)
                  if t.state.name == "COMPLETE" and t.value is not None]
    else:
        points = [(r["trial"], {k[6:]: v for k, v in r.items() if k.startswith("param/")}, r[name]) for r in rows
                  if r["state"] == "complete" and isinstance(r.get(name), float) and math.isfinite(r[name])]
    keys = sorted({k for _, params, _ in points for k in params if k != "seed"})
    importances: dict[str, float] = {}
    if len(points) >= 2 and keys and plan.search:
        try:
            import optuna
            importances = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError, ImportError):  # too few distinct values to fit
            importances = {}
    panels = 1 + bool(importances) + len(keys)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), squeeze=False)
    ax = axes[0][0]
    ax.plot([n for n, _, _ in points], [v for _, _, v in points], "o", label="complete")
    pruned = [(t.number, t.intermediate_values[max(t.intermediate_values)]) for t in study.get_trials(deepcopy=False)
              if t.state.name == "PRUNED" and t.intermediate_values]
    if pruned:  # where a pruned trial stood when it was stopped
        ax.plot(*zip(*pruned), "x", color="grey", label="pruned (last evaluation)")
        ax.legend(fontsize=7)
    ax.set(xlabel="trial", ylabel=name, title=f"{'objective' if plan.objective else name} per trial")
    i = 1
    if importances:
        axes[0][i].barh([k.split(".", 1)[-1] for k in importances], list(importances.values()))
        axes[0][i].set(title="parameter importance")
        i += 1
    for k in keys:
        pts = [(params[k], v) for _, params, v in points if k in params]
        numeric = all(isinstance(x, (int, float)) for x, _ in pts)
        xs = [x if numeric else str(x) for x, _ in pts]
        axes[0][i].plot(xs, [v for _, v in pts], "o")
        if numeric and plan.search.get(k) is not None and plan.search[k].kind == "loguniform":
            axes[0][i].set_xscale("log")
            axes[0][i].xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            axes[0][i].xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
            axes[0][i].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axes[0][i].set(xlabel=k, ylabel=name)
        i += 1
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
