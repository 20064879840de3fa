"""The engine's own time per iteration: two tiny networks (so the math costs next to nothing) in a
GAN's two phases, through the engine and as a hand loop of the same updates. Prints JSON with the
median and spread of interleaved repetitions, in microseconds per iteration; the difference is
what the engine adds (freezing, autocast, the update function, the loss record, events).

    python benchmarks/engine_overhead.py                      # this tree
    PYTHONPATH=/path/to/other/tree python benchmarks/engine_overhead.py --tree-from-path

``--tree-from-path`` imports multinet from ``PYTHONPATH`` instead of this file's tree, to compare
two checkouts with one script.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

if "--tree-from-path" not in sys.argv:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import multinet  # noqa: E402
from multinet import Engine, Net, NetConfig, Phase  # noqa: E402


def nets() -> tuple[Net, Net]:
    torch.manual_seed(0)
    g = Net("g", nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2)), NetConfig(lr=1e-3), "cpu")
    d = Net("d", nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1)), NetConfig(lr=1e-3), "cpu")
    return g, d


def engine_run(steps: int) -> float:
    g, d = nets()
    real = torch.randn(8, 2)

    def d_step(e):
        fake = e.model("g")(torch.randn(8, 2))
        out = e.model("d")(torch.cat([real, fake]))
        return {"loss": F.softplus(-out[:8]).mean() + F.softplus(out[8:]).mean()}

    def g_step(e):
        return {"loss": F.softplus(-e.model("d")(e.model("g")(torch.randn(8, 2)))).mean()}

    e = Engine({"g": g, "d": d}, [Phase("d", "d", d_step), Phase("g", "g", g_step)], steps, log_every=steps)
    start = time.perf_counter()
    e.run()
    return time.perf_counter() - start


def hand_run(steps: int) -> float:
    g, d = nets()
    real = torch.randn(8, 2)
    gp, dp = list(g.module.parameters()), list(d.module.parameters())
    start = time.perf_counter()
    for _ in range(steps):
        for p in gp:
            p.requires_grad_(False)
        fake = g.module(torch.randn(8, 2))
        out = d.module(torch.cat([real, fake]))
        (F.softplus(-out[:8]).mean() + F.softplus(out[8:]).mean()).backward()
        for p in gp:
            p.requires_grad_(True)
        d.optimizer.step()
        d.optimizer.zero_grad(set_to_none=True)
        for p in dp:
            p.requires_grad_(False)
        F.softplus(-d.module(g.module(torch.randn(8, 2)))).mean().backward()
        for p in dp:
            p.requires_grad_(True)
        g.optimizer.step()
        g.optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--tree-from-path", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    runs: dict[str, list[float]] = {"engine": [], "hand_loop": []}
    engine_run(100), hand_run(100)  # warm-up
    for _ in range(args.reps):
        runs["engine"].append(1e6 * engine_run(args.steps) / args.steps)
        runs["hand_loop"].append(1e6 * hand_run(args.steps) / args.steps)
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(json.dumps({"multinet": str(Path(multinet.__file__).parent.parent), "steps": args.steps, "reps": args.reps,
                      "us_per_it_median": {k: round(v, 1) for k, v in med.items()},
                      "us_per_it_range": {k: [round(min(v), 1), round(max(v), 1)] for k, v in runs.items()},
                      "engine_adds_us": round(med["engine"] - med["hand_loop"], 1)}))


if __name__ == "__main__":
    main()
