"""``gan_ring8``'s training iteration through the engine against a hand loop of the same updates:
prints JSON (ms per iteration, interleaved repetitions, medians). Record results in BENCHMARKS.md.

    python benchmarks/ring8_loop.py                  # 3 repetitions of 300 iterations each

Both build the recipe's networks (``build_pair``: G 2-400×4 with batch norm, a PacGAN-2 maxout D
200×3) and make per iteration two D steps (1,024 ring points and 1,024 fakes in one D forward, BCE)
and one G step (D frozen), Adam 2e-4 with β1 0.8 and cosine decay, and an EMA of G (0.999).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from multinet.config import load_recipe  # noqa: E402
from multinet.data import mixture_means  # noqa: E402
from multinet.gan import GanRecipe, GanSystem  # noqa: E402
from multinet.gan.networks import build_pair  # noqa: E402
from multinet.run import engine_for  # noqa: E402
from timing import engine_seconds_per_iteration, seconds_per_iteration  # noqa: E402  (benchmarks/)


def recipe(steps: int) -> GanRecipe:
    return load_recipe(GanRecipe, "gan_ring8", ["device='cpu'", f"train.steps={steps}", "train.tensorboard=false"])


def hand_loop(steps: int, warmup: int = 20) -> float:
    cfg = recipe(warmup + steps)
    torch.manual_seed(0)
    G, D = build_pair(cfg.model, (2,))
    means, sigma = mixture_means("ring8")
    gen = torch.Generator().manual_seed(1)
    b, total = cfg.data.batch_size, warmup + steps
    ng, nd = cfg.networks.generator, cfg.networks.discriminator
    opt_g = torch.optim.Adam(G.parameters(), ng.lr, betas=tuple(ng.betas))
    opt_d = torch.optim.Adam(D.parameters(), nd.lr, betas=tuple(nd.betas))
    cosine = (lambda n: (lambda t: 0.5 * (1 + math.cos(math.pi * min(t, n) / n))))
    sch_g = torch.optim.lr_scheduler.LambdaLR(opt_g, cosine(total))
    sch_d = torch.optim.lr_scheduler.LambdaLR(opt_d, cosine(2 * total))
    ema = [t.detach().clone() for t in (*G.parameters(), *G.buffers()) if t.is_floating_point()]

    def one() -> None:
        for _ in range(cfg.gan.d_steps):
            real = means[torch.randint(len(means), (b,), generator=gen)] + sigma * torch.randn(b, 2, generator=gen)
            G.requires_grad_(False)
            with torch.no_grad():
                fake = G(torch.randn(b, 2, generator=gen))
            d_real, d_fake = D(torch.cat([real, fake])).chunk(2)
            (F.softplus(-d_real).mean() + F.softplus(d_fake).mean()).backward()
            opt_d.step()
            opt_d.zero_grad(set_to_none=True)
            sch_d.step()
        G.requires_grad_(True)
        D.requires_grad_(False)
        F.softplus(-D(G(torch.randn(b, 2, generator=gen)))).mean().backward()
        opt_g.step()
        opt_g.zero_grad(set_to_none=True)
        sch_g.step()
        D.requires_grad_(True)
        with torch.no_grad():
            torch._foreach_lerp_(ema, [t for t in (*G.parameters(), *G.buffers()) if t.is_floating_point()],
                                 1 - ng.ema)

    return seconds_per_iteration(one, steps, warmup) * 1e3


def engine(steps: int, warmup: int = 20) -> float:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = engine_for(GanSystem(recipe(warmup + steps), torch.device("cpu")))
    return engine_seconds_per_iteration(e, steps, warmup) * 1e3


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args()
    runs: dict[str, list[float]] = {"hand_loop": [], "engine": []}
    for _ in range(args.reps):  # interleaved
        runs["hand_loop"].append(hand_loop(args.steps))
        runs["engine"].append(engine(args.steps))
    med = {k: round(statistics.median(v), 3) for k, v in runs.items()}
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "ms_per_it": med,
                      "engine_over_hand_loop": round(med["engine"] / med["hand_loop"], 3),
                      "runs_ms_per_it": {k: [round(x, 3) for x in v] for k, v in runs.items()}}, indent=2))


if __name__ == "__main__":
    main()
