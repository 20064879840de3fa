"""What a sweep costs and whether it survives kills: prints JSON. Record results in BENCHMARKS.md.

    python benchmarks/sweeps.py overhead            # N runs by hand (one at a time) vs a sweep of N
    python benchmarks/sweeps.py kill --kills 2      # kill -9 a sweep twice at random moments, finish it,
                                                    # compare its sweep.csv figures with an uninterrupted one

Both use the (2,2) autoencoder (``ae_2_2``, 1,500 steps, checkpoints every 100, scored at 4 dB on 20,000 blocks) over a grid
of four decoder learning rates, one thread per process. ``overhead`` also times ``--jobs 2``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
LRS = ["1e-3", "2e-3", "3e-3", "4e-3"]
BASE = ["ae_2_2", "eval.max_blocks=20000", "eval.batch=10000", "channel.eval_db=[4.0]",
        "train.checkpoint_every=100", "train.tensorboard=false"]
STEPS = ["--steps", "1500"]
FIG = "curves/autoencoder after 1_decoder/4"


def sweep_args(out: Path, jobs: int = 1) -> list[str]:
    return [sys.executable, "-m", "multinet", "sweep", "autoencoder", *BASE, *STEPS, f"networks.decoder.lr={','.join(LRS)}",
            "--objective", FIG, "--direction", "minimize", "--out", str(out), "--jobs", str(jobs)]


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=ENV, check=True, capture_output=True)
    return time.perf_counter() - t


def figures(out: Path) -> list[tuple[str, str, str]]:
    with open(out / "sweep.csv", newline="") as f:
        return sorted((r["param/networks.decoder.lr"], r["seed"], r[FIG]) for r in csv.DictReader(f))


def overhead(work: Path) -> dict:
    by_hand = sum(timed([sys.executable, "-m", "multinet", "train", "autoencoder", *BASE, *STEPS, f"networks.decoder.lr={lr}",
                         "--out", str(work / f"hand-{lr}"), "--no-progress"]) for lr in LRS)
    one = timed(sweep_args(work / "sweep1"))
    two = timed(sweep_args(work / "sweep2", jobs=2))
    return {"runs": len(LRS), "by_hand_s": round(by_hand, 1), "sweep_jobs1_s": round(one, 1),
            "sweep_jobs2_s": round(two, 1), "sweep_over_by_hand": round(one / by_hand, 3),
            "jobs2_speedup": round(one / two, 2), "same_figures_jobs1_jobs2": figures(work / "sweep1") ==
            figures(work / "sweep2")}


def kill(work: Path, kills: int, seed: int) -> dict:
    whole_s = timed(sweep_args(work / "whole"))
    rng, moments = random.Random(seed), []
    for _ in range(kills):
        p = subprocess.Popen(sweep_args(work / "killed"), env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        moment = rng.uniform(3.0, whole_s * 0.8)
        time.sleep(moment)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        moments.append(round(moment, 1))
    subprocess.run(sweep_args(work / "killed"), env=ENV, check=True, capture_output=True)
    a, b = figures(work / "whole"), figures(work / "killed")
    return {"uninterrupted_s": round(whole_s, 1), "killed_at_s": moments, "rows": len(b), "same_figures": a == b,
            "figures": {lr: fig for lr, _, fig in b}}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=("overhead", "kill"))
    p.add_argument("--kills", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="for the kill moments")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="multinet-sweeps-"))
    try:
        report = overhead(work) if args.what == "overhead" else kill(work, args.kills, args.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
