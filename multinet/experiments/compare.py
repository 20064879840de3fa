"""``python -m multinet compare RUN... [--out FILE.png]``: runs of one system side by side.

The final figures (``summary.json``) as one table, a column per run; with ``--out``, a plot:
BLER curves from ``bler.csv`` with their 95 % intervals (autoencoders), or each evaluation figure
over the steps from ``metrics.jsonl`` (``train.eval_every``), or, for runs never evaluated during
training, each network's logged loss over the steps. Runs are of one system when their
``recipe.toml`` names the same task (or, for a system of your own, has the same sections)."""
from __future__ import annotations

import csv
import io
import math
import tomllib
from pathlib import Path

from ..config import ConfigError, flatten
from ..state.checkpoint import atomic_path
from ..state.runfiles import MAX_METRICS, parse_json, read_json, read_text

__all__ = ["compare_runs"]


def _kind(run: Path) -> str:
    try:
        recipe = tomllib.loads(read_text(run / "recipe.toml", run))
    except (OSError, tomllib.TOMLDecodeError, RecursionError) as e:
        raise ConfigError(f"{run}: not a run folder (no readable recipe.toml: {type(e).__name__})") from None
    return str(recipe.get("task") or "sections " + ",".join(sorted(k for k, v in recipe.items() if isinstance(v, dict))))


def _summary(run: Path) -> dict[str, float]:
    path = run / "summary.json"
    if not path.exists():
        return {}
    flat = flatten(read_json(path, run, what="a run's summary"), sep="/")
    return {k: float(v) for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def compare_runs(runs: list[str], out: str | None = None) -> str:
    """The Markdown table of the runs' final figures; with ``out``, also the plot."""
    folders = [Path(r) for r in runs]
    if len(folders) < 1:
        raise ConfigError("compare: name one or more run folders")
    kinds = {f: _kind(f) for f in folders}
    if len(set(kinds.values())) > 1:
        said = ", ".join(f"{f} ({k})" for f, k in kinds.items())
        raise ConfigError(f"compare: runs of different systems: {said}; compare runs of one system")
    summaries = {f: _summary(f) for f in folders}
    keys = sorted({k for s in summaries.values() for k in s})
    names = [f.name if [g.name for g in folders].count(f.name) == 1 else str(f) for f in folders]
    lines = ["| figure | " + " | ".join(names) + " |", "|---|" + "---|" * len(folders)]
    for k in keys:
        cells = [f"{summaries[f][k]:.6g}" if k in summaries[f] else "–" for f in folders]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    if out:
        _plot(folders, names, Path(out))
    return "\n".join(lines) + "\n"


def _read_bler(run: Path) -> dict[str, list[dict[str, float]]]:
    curves: dict[str, list[dict[str, float]]] = {}
    path = run / "bler.csv"
    try:
        for row in csv.DictReader(io.StringIO(read_text(path, run, MAX_METRICS), newline="")):
            # An analytic curve (uncoded BPSK) has no interval: its bounds are the value itself.
            point = {k: float(row[k]) if row.get(k) else math.nan for k in ("ebn0_db", "bler", "bler_low", "bler_high")}
            point["bler_low"] = point["bler"] if math.isnan(point["bler_low"]) else point["bler_low"]
            point["bler_high"] = point["bler"] if math.isnan(point["bler_high"]) else point["bler_high"]
            curves.setdefault(str(row["curve"]), []).append(point)
    except (csv.Error, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a BLER table ({type(e).__name__}: {e})") from None
    except ValueError as e:  # a figure that is not a number; the file's own refusals name it already
        raise ValueError(str(e) if str(e).startswith(str(path)) else f"{path}: not a BLER table ({e})") from None
    return curves


def _read_series(run: Path, prefix: str) -> dict[str, list[tuple[int, float]]]:
    """The figures of ``metrics.jsonl`` whose names start with ``prefix``, each as (step, value)."""
    series: dict[str, list[tuple[int, float]]] = {}
    path = run / "metrics.jsonl"
    if not path.exists():
        return series
    for line in read_text(path, run, MAX_METRICS).splitlines():
        try:
            row = parse_json(line, str(path))
        except ValueError:  # a line cut by a kill: the rest is still read
            continue
        if not isinstance(row, dict) or isinstance(row.get("step", 0), bool) \
                or not isinstance(row.get("step", 0), int):
            continue
        for k, v in row.items():
            if k.startswith(prefix) and isinstance(v, (int, float)) and math.isfinite(v):
                series.setdefault(k.removeprefix("eval/"), []).append((int(row.get("step", 0)), float(v)))
    return series


def _plot(folders: list[Path], names: list[str], out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if all((f / "bler.csv").exists() for f in folders):
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        for f, name in zip(folders, names):
            for curve, pts in _read_bler(f).items():
                pts = [p for p in pts if p["bler"] > 0 and not math.isnan(p["ebn0_db"])]
                x = [p["ebn0_db"] for p in pts]
                line, = ax.semilogy(x, [p["bler"] for p in pts], "o-", label=f"{name}: {curve}")
                ax.fill_between(x, [p["bler_low"] for p in pts], [p["bler_high"] for p in pts],
                                color=line.get_color(), alpha=0.2)
        ax.set(xlabel="Eb/N0 (dB)", ylabel="BLER")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    else:
        evals = {f: _read_series(f, "eval/") for f in folders}
        if not any(evals.values()):  # never evaluated during training: the networks' losses
            evals = {f: _read_series(f, "loss/") for f in folders}
        keys = sorted({k for s in evals.values() for k in s})[:8]
        if not keys:
            raise ConfigError("compare --out: the runs have neither bler.csv nor evaluations or losses in "
                              "metrics.jsonl")
        fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
        for ax, k in zip(axes[0], keys):
            for f, name in zip(folders, names):
                if k in evals[f]:
                    steps, vals = zip(*evals[f][k])
                    ax.plot(steps, vals, "o-", label=name)
            ax.set(xlabel="step", title=k)
        axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".") or "png", dpi=100)
    plt.close(fig)
