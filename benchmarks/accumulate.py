"""Gradient accumulation on the bundled default: ``gan_digits`` at batch 64 against 4 micro-batches
of 16 (``train.accumulate=4``, the same effective batch), over seeds, interleaved: the final
classifier IS / FD of each and the training time. Prints JSON; record it in BENCHMARKS.md.

    python benchmarks/accumulate.py                       # seeds 0-2, 6,000 steps each
    python benchmarks/accumulate.py --seeds 5 --steps 15000

Both variants see 64 real images per discriminator step and 64 fakes per generator step, with the
same learning rates: accumulation should match the whole batch within the spread over seeds, and
cost the time of four small steps instead of one large one.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from multinet.config import load_recipe  # noqa: E402
from multinet.gan import GanRecipe, GanSystem  # noqa: E402
from multinet.run.runner import Runner  # noqa: E402

VARIANTS = {"batch 64": ["data.batch_size=64"], "4 x 16": ["data.batch_size=16", "train.accumulate=4"]}


def one_run(seed: int, steps: int, extra: list[str], out: Path) -> dict[str, float]:
    cfg = load_recipe(GanRecipe, "gan_digits", [f"seed={seed}", f"train.steps={steps}", "device='cpu'",
                                                "train.tensorboard=false", "train.sample_every=0",
                                                f"train.checkpoint_every={steps}", *extra])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = Runner(GanSystem, cfg, out, progress=False, echo=False).fit()
    assert result.code == 0, result.error
    return {"is": result.summary["classifier_is"], "fd": result.summary["classifier_fd"],
            "ms_per_it": 1000 * result.seconds / steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for name, extra in VARIANTS.items():  # interleaved: a slow spell of the machine hits both
                rows[name].append(one_run(seed, args.steps, extra, Path(tmp) / f"{seed}-{len(rows[name])}-{name[0]}"))
                print(json.dumps({"seed": seed, "variant": name, **rows[name][-1]}), file=sys.stderr)
    out = {"recipe": "gan_digits", "steps": args.steps, "seeds": args.seeds, "threads": 1}
    for name, runs in rows.items():
        out[name] = {k: {"mean": round(statistics.mean(r[k] for r in runs), 3),
                         "sd": round(statistics.stdev(r[k] for r in runs), 3) if len(runs) > 1 else 0.0,
                         "each": [round(r[k], 3) for r in runs]} for k in runs[0]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
