"""Fault injection: kill -9 a training run at random moments and check nothing is lost or corrupted.

    python benchmarks/fault_injection.py --kills 30 --steps 1500 --seed 0

One thread per run (bit-exact on the CPU). The run checkpoints every step and logs every step.
After each kill: every checkpoint file left in the folder must load (checksum and parts), and
the next start (``--resume``, or ``--overwrite`` when the kill came before the first checkpoint)
must take over the stale lock. At the end the run finishes; its final weights must equal an
uninterrupted reference run's bit for bit, its ``metrics.jsonl`` must hold every step once with
the reference's values, and no temporary file may be left. Prints one JSON line of figures.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def command(out: Path, steps: int, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "multinet.gan", "gan_digits", "--device", "cpu", "--no-progress", "--out", str(out),
            "--steps", str(steps), "train.checkpoint_every=1", "train.log_every=1", "train.keep_last=3",
            "train.sample_every=0", "train.tensorboard=false", "eval.samples=100", "eval.classifier_epochs=1",
            "gan.ema=0.9", *extra]


def weights(path: Path) -> dict:
    from multinet import load_checkpoint
    ck = load_checkpoint(path)
    return {f"{n}.{k}": v for n, s in ck["networks"].items() for k, v in s["module"].items()}


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kills", type=int, default=30)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--after", type=float, nargs=2, default=(2.0, 5.0), help="kill this many seconds after a start")
    args = p.parse_args()
    import torch
    from multinet import load_checkpoint
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="multinet-faults-"))
    ref, out = work / "ref", work / "run"
    t0 = time.time()
    subprocess.run(command(ref, args.steps, []), env=ENV, check=True, capture_output=True)
    kills = loaded = temp_seen = starts = 0
    kill_steps = []
    while kills < args.kills:
        extra = ["--resume"] if (out / "checkpoints" / "last.pt").exists() else (["--overwrite"] if out.exists() else [])
        proc = subprocess.Popen(command(out, args.steps, extra), env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        starts += 1
        try:
            proc.wait(timeout=rng.uniform(*args.after))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            raise SystemExit(f"the run ended before it was killed (rc {proc.returncode}): {proc.stderr.read()[-500:]}"
                             " - raise --steps")
        for f in sorted((out / "checkpoints").glob("*.pt")) if (out / "checkpoints").exists() else []:
            load_checkpoint(f)  # raises on a torn or corrupt file
            loaded += 1
        temp_seen += len(list((out / "checkpoints").glob(".*.tmp"))) if (out / "checkpoints").exists() else 0
        if (out / "checkpoints" / "last.pt").exists():
            kill_steps.append(load_checkpoint(out / "checkpoints" / "last.pt")["engine"]["iteration"])
    final = subprocess.run(command(out, args.steps, ["--resume"]), env=ENV, capture_output=True, text=True)
    if final.returncode:
        raise SystemExit(f"final resume failed: {final.stderr[-800:]}")
    a, b = weights(ref / "checkpoints" / "last.pt"), weights(out / "checkpoints" / "last.pt")
    exact = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    got, want = rows(out), rows(ref)
    steps_once = [r["step"] for r in got] == [r["step"] for r in want]
    same_values = got == want
    leftovers = [str(f.relative_to(out)) for f in out.rglob("*.tmp")] + ([".lock"] if (out / ".lock").exists() else [])
    print(json.dumps({"kills": kills, "starts": starts + 1, "steps": args.steps, "checkpoints_loaded": loaded,
                      "temp_files_seen_after_kills": temp_seen, "last_step_at_kills": kill_steps,
                      "final_bit_exact": exact, "metrics_each_step_once": steps_once,
                      "metrics_equal_reference": same_values, "leftover_files": leftovers,
                      "wall_s": round(time.time() - t0, 1)}))
    if not (exact and steps_once and same_values and not leftovers):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
