"""GAN mode coverage on the 2-D mixtures (TARGETS.md §2), several seeds in parallel processes.

    python benchmarks/mixtures.py gan_ring8 gan_grid25 --seeds 5 [--jobs 2] [key=value ...]
    python benchmarks/mixtures.py --rescore RUN_DIR ... eval.rejection=drs   # finished runs, other eval.*

Prints per-seed figures and mean ± standard error of modes captured, high-quality %, reverse
KL (and the drs_* figures of discriminator rejection sampling where the recipe sets
eval.rejection = "drs"), and the wall time of each run (one CPU thread per run).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ["modes", "high_quality", "reverse_kl"]
DRS = ["drs_modes", "drs_high_quality", "drs_reverse_kl", "drs_acceptance"]  # with eval.rejection=drs


# One CPU thread per run, so that --jobs runs side by side do not oversubscribe the cores.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def one(recipe: str, seed: int, overrides: list[str]) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"{recipe}-{seed}-"))
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "multinet.gan", recipe, *overrides, "--seed", str(seed),
                        "--out", str(out), "--device", "cpu", "--no-progress", "train.tensorboard=false"],
                       capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        return {"recipe": recipe, "seed": seed, "error": r.stderr.strip().splitlines()[-1:]}
    s = json.loads((out / "summary.json").read_text())
    return {"recipe": recipe, "seed": seed, **{k: s[k] for k in FIGURES + DRS if k in s}, "wall_s": round(wall, 1)}


def rescore(run: str, overrides: list[str]) -> dict:
    ckpt = Path(run) / "checkpoints" / "last.pt"
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "multinet.gan", "evaluate", str(ckpt), *overrides],
                       capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        return {"run": run, "error": r.stderr.strip().splitlines()[-1:]}
    s = json.loads(r.stdout.strip().splitlines()[-1])
    cfg = (Path(run) / "recipe.toml").read_text()
    recipe = "gan_ring8" if 'name = "ring8"' in cfg else "gan_grid25" if 'name = "grid25"' in cfg else run
    return {"recipe": recipe, "run": run, "step": s["step"], **{k: s[k] for k in FIGURES + DRS if k in s},
            "wall_s": round(wall, 1)}


def stats(xs: list[float]) -> str:
    m = sum(xs) / len(xs)
    se = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs)) if len(xs) > 1 else 0.0
    return f"{m:.3f} ± {se:.3f}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("items", nargs="+", help="recipes (or, with --rescore, run folders), then key=value overrides")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--jobs", type=int, default=os.cpu_count())
    p.add_argument("--rescore", action="store_true",
                   help="score the last checkpoints of finished runs again (only eval.* overrides)")
    args = p.parse_intermixed_args()  # overrides may come before or after the options
    named = [i for i in args.items if "=" not in i]
    overrides = [i for i in args.items if "=" in i]
    with ThreadPoolExecutor(args.jobs) as pool:
        if args.rescore:
            results = list(pool.map(lambda run: rescore(run, overrides), named))
            recipes = sorted({r["recipe"] for r in results if "recipe" in r})
        else:
            recipes = named
            tasks = [(r, s) for r in recipes for s in range(args.seeds)]
            results = list(pool.map(lambda t: one(t[0], t[1], overrides), tasks))
    for r in results:
        print(json.dumps(r))
    for rec in recipes:
        rs = [r for r in results if r.get("recipe") == rec and "error" not in r]
        if rs:
            keys = [k for k in FIGURES + DRS + ["wall_s"] if all(k in r for r in rs)]
            print(json.dumps({"recipe": rec, "overrides": overrides, "seeds": len(rs),
                              **{k: stats([r[k] for r in rs]) for k in keys}}))


if __name__ == "__main__":
    main()
