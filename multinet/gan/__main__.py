"""python -m multinet.gan [RECIPE] [key=value ...] [--out DIR] [--steps N] [--seed S] [--device D] [--resume [CKPT]]
python -m multinet.gan sample CKPT --n N --out FILE.npy [--rejection drs]
python -m multinet.gan evaluate CKPT [eval.key=value ...]"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import cli
from ..checkpoint import load_checkpoint
from ..config import ConfigError, from_dict, merge, parse_overrides
from .recipe import GanRecipe, build


def _load(checkpoint: str, device: str, overrides: list[str] = ()) -> tuple[GanRecipe, Any]:
    """The run a checkpoint holds, rebuilt with its own recipe (``eval.*`` overrides applied)."""
    over = parse_overrides(list(overrides))
    if set(over) - {"eval"}:
        raise ConfigError(f"only eval.* keys can change for a saved run, got {', '.join(sorted(set(over) - {'eval'}))}")
    ckpt = load_checkpoint(checkpoint)
    cfg = from_dict(GanRecipe, merge(ckpt["config"], over))
    cfg.device, cfg.train.tensorboard = device, False
    run = build(cfg, Path(checkpoint).resolve().parent, torch.device(device))
    with warnings.catch_warnings():  # sampling uses its own seeds; saved RNG streams do not matter
        warnings.simplefilter("ignore")
        run.engine.load_state_dict(ckpt)
    return cfg, run


def sample_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m multinet.gan sample",
                                description="Draw samples from a GAN checkpoint (EMA generator when present).")
    p.add_argument("checkpoint")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--out", required=True, help="FILE.npy (a FILE.png grid is written too for images)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--rejection", choices=("none", "drs"), default="none",
                   help="drs: keep candidates by discriminator rejection sampling (the checkpoint's eval.drs_* "
                        "settings apply, a critic refit included)")
    args = p.parse_args(argv)
    try:
        if args.n <= 0:
            raise ConfigError("--n must be positive")
        cfg, run = _load(args.checkpoint, args.device)
        if args.rejection == "drs":
            if cfg.eval.drs_refit:
                print(f"fitting the rejection critic to the generator ({cfg.eval.drs_refit} steps)", file=sys.stderr)
            x, accepted = run.engine.system.sample_rejection(run.engine, args.n, cfg.eval.drs_shift)
            print(f"rejection sampling accepted {accepted:.1%} of the candidates")
        else:
            x = run.engine.system.sample(run.engine, args.n)
        x = x.cpu()
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, x.numpy().astype(np.float32))
    if x.ndim == 4:
        import torchvision
        torchvision.utils.save_image(x, out.with_suffix(".png"), nrow=int(args.n ** 0.5) or 1,
                                     normalize=True, value_range=(-1, 1))
    print(f"wrote {args.n} samples to {out}")
    return 0


def evaluate_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m multinet.gan evaluate",
                                description="Score a GAN checkpoint as a run's end does, optionally with other "
                                            "eval.* settings (e.g. eval.rejection=drs); prints JSON.")
    p.add_argument("checkpoint")
    p.add_argument("overrides", nargs="*", help="eval.key=value")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    try:
        _, run = _load(args.checkpoint, args.device, args.overrides)
        scores = run.engine.system.evaluate(run.engine)
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"checkpoint": args.checkpoint, "step": run.engine.iteration, **scores}))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sample"]:
        return sample_main(argv[1:])
    if argv[:1] == ["evaluate"]:
        return evaluate_main(argv[1:])
    return cli.main("gan", GanRecipe, "gan_digits", build, argv)


if __name__ == "__main__":
    sys.exit(main())
