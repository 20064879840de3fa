"""What the bundled default (``gan_digits``) costs per iteration on this machine, and how much of it
the engine adds: prints JSON. Record results in BENCHMARKS.md with the command.

    python benchmarks/digits_default.py                # 3 interleaved repetitions of 1,000 iterations
    python benchmarks/digits_default.py --reps 5 --steps 2000

Variants, each on the recipe's own networks and settings (G 32-512-512-64, D 64-1024-1, batch 64,
BCE, Adam 4e-4 / 2e-4 with β1 0.5, DiffAugment translation, top-k, EMA 0.999):
- hand_loop: the same updates written as a plain PyTorch loop (data in one tensor, [real; fake] in
  one D forward, G frozen in the D step and D in the G step, a foreach EMA): what the math costs
  without the engine, its handlers or the system's streams;
- engine: the recipe through ``engine_for`` (the command line's training loop, without the
  progress bar, logging, samples or checkpoints);
- also the matmul-only time of one iteration (every linear layer's forward and backward at this
  machine's rate for those shapes), a floor no implementation of these updates can go under.
``seconds_for_recipe`` is ms/it × the recipe's iterations: the training part of a default run
(start-up and evaluation add 4–6 s).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from multinet.config import load_recipe  # noqa: E402
from multinet.gan import GanRecipe, GanSystem  # noqa: E402
from multinet.gan.diffaugment import augment  # noqa: E402
from multinet.gan.networks import MLPDiscriminator, MLPGenerator  # noqa: E402
from multinet.run import engine_for  # noqa: E402
from timing import engine_seconds_per_iteration, seconds_per_iteration  # noqa: E402  (benchmarks/)


def recipe(steps: int) -> GanRecipe:
    return load_recipe(GanRecipe, "gan_digits", ["device='cpu'", f"train.steps={steps}", "train.tensorboard=false"])


def hand_loop(cfg: GanRecipe, real_images: torch.Tensor, steps: int, warmup: int = 20) -> float:
    """ms per iteration of the recipe's updates as a plain loop."""
    torch.manual_seed(0)
    m, g, b = cfg.model, cfg.gan, cfg.data.batch_size
    G = MLPGenerator(m.latent_dim, (1, 8, 8), m.hidden, m.layers)
    D = MLPDiscriminator((1, 8, 8), m.d_hidden, m.d_layers)
    ng, nd = cfg.networks.generator, cfg.networks.discriminator
    opt_g = torch.optim.Adam(G.parameters(), ng.lr, betas=tuple(ng.betas))
    opt_d = torch.optim.Adam(D.parameters(), nd.lr, betas=tuple(nd.betas))
    ema = [p.detach().clone() for p in G.parameters()]
    aug = torch.Generator().manual_seed(1)
    keep = max(1, int(b * g.topk))

    def one() -> None:
        real = real_images[torch.randint(len(real_images), (b,))]
        G.requires_grad_(False)
        with torch.no_grad():
            fake = G(torch.randn(b, m.latent_dim))
        d_real, d_fake = D(augment(torch.cat([real, fake]), g.policy, aug)).chunk(2)
        (F.softplus(-d_real).mean() + F.softplus(d_fake).mean()).backward()
        opt_d.step()
        opt_d.zero_grad(set_to_none=True)
        G.requires_grad_(True)
        D.requires_grad_(False)
        logits = D(augment(G(torch.randn(b, m.latent_dim)), g.policy, aug)).topk(keep).values
        F.softplus(-logits).mean().backward()
        opt_g.step()
        opt_g.zero_grad(set_to_none=True)
        D.requires_grad_(True)
        with torch.no_grad():
            torch._foreach_lerp_(ema, list(G.parameters()), 1 - cfg.networks.generator.ema)

    return seconds_per_iteration(one, steps, warmup) * 1e3


def engine(steps: int, warmup: int = 20) -> float:
    """ms per iteration of the recipe through the engine."""
    torch.manual_seed(0)
    with warnings.catch_warnings():  # the EMA note for a run this short
        warnings.simplefilter("ignore")
        e = engine_for(GanSystem(recipe(warmup + steps), torch.device("cpu")))
    return engine_seconds_per_iteration(e, steps, warmup) * 1e3


def matmul_floor(cfg: GanRecipe, reps: int = 200) -> float:
    """ms per iteration spent in the linear layers alone: each layer's forward (x Wᵀ + b) and its
    backward (input and weight gradients where the update needs them), timed as bare matmuls."""
    m, b = cfg.model, cfg.data.batch_size
    g_dims = [m.latent_dim] + [m.hidden] * m.layers + [64]
    d_dims = [64] + [m.d_hidden] * m.d_layers + [1]
    shapes = []  # (rows, in, out, times): D step = G forward, D on 2b, D weight grads; G step = G, D fwd+bwd
    for i, o in zip(g_dims, g_dims[1:]):
        shapes += [(b, i, o, 2), (b, o, i, 1), (o, b, i, 1)]  # two forwards; input and weight gradients once
    for i, o in zip(d_dims, d_dims[1:]):
        shapes += [(2 * b, i, o, 1), (i, 2 * b, o, 1), (b, i, o, 1), (b, o, i, 1)]
    total = 0.0
    for rows, k, n, times in shapes:
        x, w = torch.randn(rows, k), torch.randn(n, k)
        for _ in range(5):
            x @ w.T
        t = time.perf_counter()
        for _ in range(reps):
            x @ w.T
        total += (time.perf_counter() - t) / reps * times
    return total * 1e3


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=1000)
    args = p.parse_args()
    cfg = recipe(15000)
    full = load_recipe(GanRecipe, "gan_digits", [])
    real = GanSystem(cfg, torch.device("cpu")).data.train
    runs: dict[str, list[float]] = {"hand_loop": [], "engine": []}
    for _ in range(args.reps):  # interleaved, so drift hits both alike
        runs["hand_loop"].append(hand_loop(cfg, real, args.steps))
        runs["engine"].append(engine(args.steps))
    med = {k: statistics.median(v) for k, v in runs.items()}
    floor = matmul_floor(cfg)
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "ms_per_it": {k: round(v, 2) for k, v in med.items()},
        "engine_over_hand_loop": round(med["engine"] / med["hand_loop"], 3),
        "matmul_floor_ms_per_it": round(floor, 2),
        "seconds_for_recipe": {k: round(v * full.train.steps / 1e3, 1) for k, v in
                               {**med, "matmul_floor": floor}.items()},
        "recipe_steps": full.train.steps,
        "runs_ms_per_it": {k: [round(x, 2) for x in v] for k, v in runs.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
