"""Autoencoder quality against the classic codes (TARGETS.md §1), from finished run folders.

    python -m multinet.autoencoder ae_7_4 --out runs/ae_7_4 eval.max_blocks=20000000
    python benchmarks/ae_targets.py runs/ae_7_4 [runs/ae_2_2 runs/ae_8_8 ...]

For each run: the final autoencoder curve (after the last phase) beside its references, with
Wilson 95 % intervals; for (7,4) whether it is at or below Hamming(7,4) soft-ML at every point
(its interval's lower end not above ML's upper end); for (k,k) the Eb/N0 gap to uncoded BPSK.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from multinet.autoencoder.bler import uncoded_bpsk_bler, wilson_interval  # noqa: E402


def _gap_db(bler: float, k: int) -> float:
    """Eb/N0 (dB) where uncoded BPSK with k bits has this BLER, by bisection."""
    lo, hi = -10.0, 20.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if uncoded_bpsk_bler(mid, k) > bler else (lo, mid)
    return (lo + hi) / 2


def report(run: Path) -> dict:
    rows = list(csv.DictReader(open(run / "bler.csv")))
    summary = json.loads((run / "summary.json").read_text())
    n, k = map(int, summary["system"].strip("()").split(","))
    ae_curves = [r["curve"] for r in rows if r["curve"].startswith("autoencoder after") and "[" not in r["curve"]]
    last = ae_curves[-1]
    out: dict = {"run": str(run), "system": summary["system"], "curve": last, "points": []}
    for r in rows:
        if r["curve"] != last:
            continue
        db, bler = float(r["ebn0_db"]), float(r["bler"])
        errors, blocks = int(r["errors"]), int(r["blocks"])
        p = {"ebn0_db": db, "bler": bler, "ci95": wilson_interval(errors, blocks), "errors": errors}
        ml = [x for x in rows if x["curve"] == "Hamming(7,4) ML" and float(x["ebn0_db"]) == db]
        if ml:
            m = ml[0]
            m_ci = wilson_interval(int(m["errors"]), int(m["blocks"]))
            p.update({"hamming_ml": float(m["bler"]), "hamming_ml_ci95": m_ci, "at_or_below_ml": p["ci95"][0] <= m_ci[1]})
        if n == k:
            p["uncoded"] = uncoded_bpsk_bler(db, k)
            p["gap_to_uncoded_db"] = round(db - _gap_db(bler, k), 3) if bler > 0 else None
        out["points"].append(p)
    if any("at_or_below_ml" in p for p in out["points"]):
        out["at_or_below_ml_everywhere"] = all(p["at_or_below_ml"] for p in out["points"])
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(json.dumps(report(Path(arg)), indent=1))
