"""Data-parallel scaling: iterations/s of a recipe at a fixed global batch, 1..N processes.

    python benchmarks/ddp_scaling.py [--recipe gan_digits] [--global-batch 256] [--nprocs 1 2]
                                     [--device cpu|cuda] [--steps 300] [key=value ...]

Each point launches ``torchrun --standalone --nproc-per-node=P`` on this file (worker mode),
which builds the recipe, trains ``--steps`` iterations after a warm-up and reports the rate from
rank 0. On the CPU each process gets cores / P threads, so the comparison is at equal cores
(gloo); on CUDA each process drives one GPU (NCCL). Prints one JSON line per point, then a table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def worker(args: argparse.Namespace) -> None:
    import torch

    from multinet import distributed
    from multinet.config import load_recipe
    from multinet.nets import resolve_device

    device = resolve_device(args.device)
    world = distributed.init(device.type)
    per_rank = args.global_batch // world.world
    key = "link.batch_size" if args.recipe.startswith("ae_") else "data.batch_size"
    from multinet.run import engine_for
    if args.recipe.startswith("ae_"):
        from multinet.autoencoder import AeSystem as System
    else:
        from multinet.gan import GanSystem as System
    cfg = load_recipe(System.Config, args.recipe, [f"{key}={per_rank}", f"train.steps={args.steps + args.warmup}",
                                           *args.overrides])
    torch.manual_seed(cfg.seed)
    engine = engine_for(System(cfg, device))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    engine.run(stop_at=args.warmup)
    sync()
    distributed.barrier()
    t = time.perf_counter()
    engine.run()
    sync()
    distributed.barrier()
    wall = time.perf_counter() - t
    if world.main:
        print(json.dumps({"recipe": args.recipe, "device": str(device.type), "processes": world.world,
                          "global_batch": per_rank * world.world, "per_rank_batch": per_rank,
                          "threads_per_process": torch.get_num_threads(), "it_per_s": round(args.steps / wall, 1),
                          "samples_per_s": round(args.steps * per_rank * world.world / wall)}), flush=True)
    distributed.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="gan_digits")
    p.add_argument("--global-batch", type=int, default=256)
    p.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    if args.worker:
        return worker(args)
    cores = os.cpu_count() or 1
    rows = []
    for n in args.nprocs:
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        if args.device == "cpu":
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(max(1, cores // n))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", __file__,
               "--worker", "--recipe", args.recipe, "--global-batch", str(args.global_batch), "--device", args.device,
               "--steps", str(args.steps), "--warmup", str(args.warmup), *args.overrides]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        line = next((x for x in r.stdout.splitlines() if x.startswith("{")), None)
        if r.returncode != 0 or line is None:
            sys.exit(f"{n} process(es) failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
        print(line, flush=True)
        rows.append(json.loads(line))
    base = rows[0]["it_per_s"]
    print(f"\n{'processes':>9} {'it/s':>8} {'samples/s':>10} {'speed-up':>8}")
    for r in rows:
        print(f"{r['processes']:>9} {r['it_per_s']:>8} {r['samples_per_s']:>10} {r['it_per_s'] / base:>8.2f}")


if __name__ == "__main__":
    main()
