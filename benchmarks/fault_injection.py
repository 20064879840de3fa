"""Fault injection: kill -9 a training run at random moments, or signal it during each of its
evaluations, and check nothing is lost or corrupted.

    python benchmarks/fault_injection.py --kills 30 --steps 3000 --seed 0
    python benchmarks/fault_injection.py --evaluations

``--evaluations``: for every evaluation a run makes (the autoencoder's phase switch and the end of
its last phase, its final evaluation with baselines; the GAN's periodic and final evaluations)
and every fault (SIGKILL, SIGTERM, two SIGINTs 2.1 s apart), a run is started, the fault is sent
as soon as that evaluation has begun (its step's loss row is in ``metrics.jsonl``, or, for the
final one, the last checkpoint is on disk), and the run is resumed until it finishes. Its
``summary.json``, curves (``bler.csv``) and evaluation rows must equal an uninterrupted run's.
Prints one JSON line per fault and one of totals; a fault "landed" when it arrived before that
evaluation's results were saved (so the resume had to run it again).

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
            "networks.generator.ema=0.9", *extra]


def weights(path: Path) -> dict:
    from multinet import load_checkpoint
    ck = load_checkpoint(path)
    return {f"{n}.{k}": v for n, s in ck["networks"].items() for k, v in s["module"].items()}


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


EVAL_AE = [sys.executable, "-m", "multinet.autoencoder", "ae_7_4", "--device", "cpu", "--no-progress", "--steps", "8",
           "train.checkpoint_every=3", "train.log_every=1", "eval.max_blocks=20000000", "eval.batch=1000000",
           "eval.min_errors=1000000000", "channel.eval_db=[0.0, 2.0, 4.0]", "link.batch_size=256",
           "train.tensorboard=false", "eval.ml_errors=20", "eval.osd_max_blocks=20000"]
EVAL_GAN = [sys.executable, "-m", "multinet.gan", "gan_digits", "--device", "cpu", "--no-progress", "--steps", "20",
            "train.eval_every=10", "train.checkpoint_every=5", "train.log_every=1", "train.sample_every=0",
            "train.tensorboard=false", "eval.samples=2000", "eval.classifier_epochs=1", "networks.generator.ema=0",
            "eval.standard_metrics=true", "eval.features='random-conv'", "eval.fid_samples=6000",
            "eval.fid_reference=1797"]
# (name, command, when the evaluation has begun: a loss row of this step, or "final", and the
# sign that its results were saved before the fault: a checkpoint at that step, or a summary).
EVALUATIONS = [("autoencoder phase switch (step 6)", EVAL_AE + ["eval.baselines=false"], 6),
               ("autoencoder last phase end (step 8)", EVAL_AE + ["eval.baselines=false"], 8),
               ("autoencoder final evaluation (baselines)", EVAL_AE + ["eval.baselines=true"], "final"),
               ("GAN periodic evaluation (step 10)", EVAL_GAN, 10),
               ("GAN final evaluation", EVAL_GAN, "final")]
FAULTS = {"SIGKILL": [signal.SIGKILL], "SIGTERM": [signal.SIGTERM], "SIGINT x2": [signal.SIGINT, signal.SIGINT]}


def _begun(out: Path, when: int | str, steps: int) -> bool:
    if when == "final":
        return (out / "checkpoints" / f"step_{steps:08d}.pt").exists()
    try:
        return any(r["step"] == when and any(k.startswith("loss/") for k in r) for r in rows(out))
    except (OSError, ValueError):  # not written yet, or a line being written
        return False


def _results(out: Path) -> dict:
    kept = {"summary": json.loads((out / "summary.json").read_text())}
    kept["evaluation_rows"] = [r for r in rows(out) if any(k.startswith("eval/") for k in r)]
    if (out / "bler.csv").exists():
        kept["bler.csv"] = (out / "bler.csv").read_text()
    kept["summary"].pop("resumed", None)
    return kept


def evaluations(work: Path) -> None:
    from multinet import load_checkpoint
    totals = {"faults": 0, "landed_in_evaluation": 0, "results_kept": 0}
    for name, cmd, when in EVALUATIONS:
        steps = int(cmd[cmd.index("--steps") + 1])
        ref = work / f"ref-{len(totals)}-{steps}-{when}"
        subprocess.run(cmd + ["--out", str(ref)], env=ENV, check=True, capture_output=True)
        want = _results(ref)
        for fault, signals in FAULTS.items():
            out = work / f"{name.split()[0]}-{when}-{fault.replace(' ', '')}"
            proc = subprocess.Popen(cmd + ["--out", str(out)], env=ENV, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
            while proc.poll() is None and not _begun(out, when, steps):
                time.sleep(0.005)
            for i, sig in enumerate(signals):
                if i:
                    time.sleep(2.1)  # a second Ctrl-C within 2 s counts once
                if proc.poll() is None:
                    proc.send_signal(sig)
            rc = proc.wait()
            said = [line for line in proc.stderr.read().splitlines() if not line.startswith("warning:")]
            last = out / "checkpoints" / "last.pt"
            if when == "final":  # the final evaluation's results were not written
                landed = not (out / "summary.json").exists()
            elif fault == "SIGKILL":  # killed before that step's checkpoint (written after its evaluations)
                landed = not (out / "checkpoints" / f"step_{when:08d}.pt").exists()
            else:  # the stop came at that step (the signal arrived during its handlers, not after them),
                # or a second Ctrl-C broke off the evaluation before that step's checkpoint
                landed = not (out / "checkpoints" / f"step_{when:08d}.pt").exists() or \
                    (last.exists() and load_checkpoint(last)["engine"]["iteration"] == when)
            resumes = 0
            while resumes < 3 and not (out / "summary.json").exists() or resumes == 0 and rc != 0:
                r = subprocess.run(cmd + ["--out", str(out), "--resume"], env=ENV, capture_output=True, text=True)
                resumes += 1
                if r.returncode:
                    raise SystemExit(f"{name} / {fault}: resume failed: {r.stderr[-600:]}")
            kept = _results(out) == want
            totals["faults"] += 1
            totals["landed_in_evaluation"] += landed
            totals["results_kept"] += kept
            print(json.dumps({"evaluation": name, "fault": fault, "exit_code": rc, "landed_in_evaluation": landed,
                              "stderr": said, "resumes": resumes, "results_equal_uninterrupted": kept}), flush=True)
    print(json.dumps(totals))
    if totals["results_kept"] != totals["faults"]:
        raise SystemExit(1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--evaluations", action="store_true", help="faults during every evaluation instead of random kills")
    p.add_argument("--kills", type=int, default=30)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--after", type=float, nargs=2, default=(2.0, 5.0), help="kill this many seconds after a start")
    args = p.parse_args()
    if args.evaluations:
        return evaluations(Path(tempfile.mkdtemp(prefix="multinet-eval-faults-")))
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
