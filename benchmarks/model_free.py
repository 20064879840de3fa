"""Model-free training against the differentiable-channel autoencoder (TARGETS.md §6).

    python -m multinet.autoencoder ae_7_4 --out runs/ae_7_4
    python -m multinet.autoencoder ae_7_4_model_free --out runs/ae_7_4_model_free
    python benchmarks/model_free.py runs/ae_7_4 runs/ae_7_4_model_free [--at 1e-3]

Reads each run's ``bler.csv`` (the autoencoder curve after the last phase), finds the Eb/N0 at
which it crosses the target BLER by log-linear interpolation between the bracketing points (and
the same for the ends of the 95 % intervals, giving a range), and prints the gap of every later
run to the first. Also prints both curves point by point.
"""
from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path


def last_curve(run: Path) -> list[dict]:
    rows = list(csv.DictReader(open(run / "bler.csv")))
    names = [r["curve"] for r in rows if r["curve"].startswith("autoencoder after") and "[" not in r["curve"]]
    return sorted((r for r in rows if r["curve"] == names[-1]), key=lambda r: float(r["ebn0_db"]))


def crossing(rows: list[dict], key: str, target: float) -> float | None:
    pts = [(float(r["ebn0_db"]), float(r[key])) for r in rows if r[key] and float(r[key]) > 0]
    for (d0, b0), (d1, b1) in zip(pts, pts[1:]):
        if b0 >= target >= b1:
            return d0 + (d1 - d0) * (math.log(b0) - math.log(target)) / (math.log(b0) - math.log(b1))
    return None


def _span(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "not bracketed"
    return f"{min(a, b):.2f}..{max(a, b):.2f} dB"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+")
    p.add_argument("--at", type=float, default=1e-3)
    a = p.parse_args()
    curves = {run: last_curve(Path(run)) for run in a.runs}
    ref = None
    for run, rows in curves.items():
        x = crossing(rows, "bler", a.at)
        lo, hi = crossing(rows, "bler_high", a.at), crossing(rows, "bler_low", a.at)
        ref = x if ref is None else ref
        gap = "" if x is None or ref is None or run == a.runs[0] else f", {x - ref:+.2f} dB from {a.runs[0]}"
        print(f"{run}: {rows[0]['curve']}: BLER {a.at:g} at {x if x is None else round(x, 2)} dB "
              f"(95 % interval {_span(lo, hi)}){gap}")
        print("   " + "  ".join(f"{float(r['ebn0_db']):g} dB: {float(r['bler']):.3g} ({r['errors']} err)" for r in rows))


if __name__ == "__main__":
    main()
