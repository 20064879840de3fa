"""What a sweep costs and whether it survives kills: prints JSON. Record results in BENCHMARKS.md.

    python benchmarks/sweeps.py overhead            # N runs by hand (one at a time) vs a sweep of N
    python benchmarks/sweeps.py kill --kills 2      # kill -9 a sweep twice at random moments, finish it,
                                                    # compare its sweep.csv figures with an uninterrupted one
    python benchmarks/sweeps.py seeds --steps 3000  # gan_ring8 over seeds 0-4: one sweep (--jobs 2) beside
                                                    # five runs by hand (two at a time), figures compared

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


def seeds(work: Path, steps: int) -> dict:
    """Five seeds of gan_ring8 in one command, beside the same five runs started by hand."""
    figs = ("modes", "high_quality", "reverse_kl")
    common = ["gan_ring8", "--steps", str(steps), "train.tensorboard=false"]
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "multinet", "sweep", "gan", *common, "--seeds", "0-4", "--jobs", "2",
                    "--objective", "high_quality", "--out", str(work / "sweep")], env=ENV, check=True,
                   capture_output=True)
    sweep_s = time.perf_counter() - t
    t, hand = time.perf_counter(), {}
    for pair in ([0, 1], [2, 3], [4]):  # two at a time, one thread each, as the sweep's two workers
        procs = [subprocess.Popen([sys.executable, "-m", "multinet", "train", "gan", *common, "--seed", str(s),
                                   "--out", str(work / f"hand-{s}"), "--no-progress"], env=ENV,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for s in pair]
        assert all(p.wait() == 0 for p in procs)
    hand_s = time.perf_counter() - t
    for s in range(5):  # the whole summary of each run (an infinite reverse KL is written as null)
        hand[s] = json.loads((work / f"hand-{s}" / "summary.json").read_text())
    swept = {s: json.loads((work / "sweep" / "trials" / "0000" / f"seed-{s}" / "summary.json").read_text())
             for s in range(5)}
    return {"steps": steps, "sweep_s": round(sweep_s, 1), "by_hand_s": round(hand_s, 1),
            "same_summaries": swept == hand, "by_seed": {s: {k: swept[s].get(k) for k in figs} for s in range(5)}, "table": (work / "sweep" / "sweep.md").read_text()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=("overhead", "kill", "seeds"))
    p.add_argument("--steps", type=int, default=3000, help="seeds: iterations of each gan_ring8 run")
    p.add_argument("--kills", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="for the kill moments")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="multinet-sweeps-"))
    report = (overhead(work) if args.what == "overhead" else kill(work, args.kills, args.seed)
              if args.what == "kill" else seeds(work, args.steps))
    shutil.rmtree(work, ignore_errors=True)  # kept when something failed, to look at
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
