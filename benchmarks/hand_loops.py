"""The engine against plain loops of the same updates, on shipped recipes, and against Ignite and
Lightning loops of the seeds' MLP GAN: prints JSON (ms per iteration, medians of interleaved
repetitions, one thread). Record results in BENCHMARKS.md with the command.

    python benchmarks/hand_loops.py                       # every workload below, 3 repetitions
    python benchmarks/hand_loops.py --only dcgan_mnist --reps 5
    python benchmarks/hand_loops.py --only ae_bits_ldpc

Workloads (the MNIST ones on the 10,000 IDX test images of ../shared/data, or MULTINET_MNIST_RAW):
- ``gan_mnist_mlp`` (needs pytorch-ignite and lightning), ``dcgan_mnist``: the recipe as shipped through ``engine_for`` (the command
  line's loop without its progress bar, logging, samples or checkpoints) against a plain loop of
  its updates: the recipe's networks (``build_pair``) and Adam settings, one D step on a shuffled
  real batch and fresh fakes (G frozen; [real; fake] in one D forward where the system does that,
  R1 on the real batch where the recipe has it), one G step on fresh noise (D frozen), the EMA of G;
- ``ae_bits_ldpc``: the joint phase (constellation + demapper, 4,096 symbols, AWGN at an Eb/N0
  drawn per symbol in [2, 6] dB, bit-wise cross-entropy, Adam 1e-2 / 3e-3 with cosine decay to
  0.01×); the engine also computes the logged bit-error term every step, the plain loop does not;
- ``gan_mnist_mlp`` also runs its plain loop's updates as an Ignite ``Engine`` process function
  and as a Lightning module with manual optimisation (``toggle_optimizer`` freezing the other
  network), and every variant again with fused Adam; all read batches from the same tensor, so
  only the loop around the updates differs.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from multinet.autoencoder import AeRecipe, AeSystem, ebn0_to_sigma  # noqa: E402
from multinet.autoencoder.networks import Constellation, NeuralDemapper, bit_labels  # noqa: E402
from multinet.config import load_recipe  # noqa: E402
from multinet.gan import GanRecipe, GanSystem  # noqa: E402
from multinet.gan.networks import build_pair  # noqa: E402
from multinet.run import engine_for  # noqa: E402
from timing import engine_seconds_per_iteration, seconds_per_iteration  # noqa: E402  (benchmarks/)

MNIST_RAW = Path(os.environ.get("MULTINET_MNIST_RAW", ROOT.parent / "shared" / "data" / "MNIST" / "raw"))
CPU = torch.device("cpu")


# -- the GAN recipes ---------------------------------------------------------------------------
def gan_recipe(name: str, steps: int, fused: bool = False) -> GanRecipe:
    extra = [f"networks.{n}.fused=true" for n in ("generator", "discriminator")] if fused else []
    return load_recipe(GanRecipe, name, ["device='cpu'", "data.name=idx", f"data.root={str(MNIST_RAW)!r}",
                                         "data.train_fraction=1.0", f"train.steps={steps}",
                                         "train.tensorboard=false", *extra])


def engine_ms(system: Any, steps: int, warmup: int) -> float:
    torch.manual_seed(0)
    with warnings.catch_warnings():  # the EMA note for a run this short
        warnings.simplefilter("ignore")
        e = engine_for(system)
    return engine_seconds_per_iteration(e, steps, warmup) * 1e3


def real_batches(images: torch.Tensor, b: int) -> Callable[[], torch.Tensor]:
    """Shuffled batches without replacement, a new permutation each epoch (as the engine's sampler)."""
    state = {"perm": torch.randperm(len(images)), "pos": 0}

    def next_batch() -> torch.Tensor:
        if state["pos"] + b > len(images):
            state["perm"], state["pos"] = torch.randperm(len(images)), 0
        idx = state["perm"][state["pos"]:state["pos"] + b]
        state["pos"] += b
        return images[idx]
    return next_batch


def gan_updates(cfg: GanRecipe, images: torch.Tensor) -> tuple[Callable[[], None], dict[str, Any]]:
    """One iteration of ``cfg``'s updates as plain PyTorch, and the pieces (for the framework loops)."""
    torch.manual_seed(0)
    G, D = build_pair(cfg.model, tuple(images.shape[1:]))
    ng, nd, g, b = cfg.networks.generator, cfg.networks.discriminator, cfg.gan, cfg.data.batch_size
    opt_g = torch.optim.Adam(G.parameters(), ng.lr, **ng.optimizer_options())
    opt_d = torch.optim.Adam(D.parameters(), nd.lr, **nd.optimizer_options())
    bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in D.modules())
    concat = g.d_concat == "on" or (g.d_concat == "auto" and not bn and g.r1 == 0)
    ema = [t.detach().clone() for t in (*G.parameters(), *G.buffers()) if t.is_floating_point()] if ng.ema else []
    latent, next_batch = cfg.model.latent_dim, real_batches(images, b)

    def d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        if g.r1 > 0:
            x = real.detach().requires_grad_(True)
            d_real = D(x)
            (grad,) = torch.autograd.grad(d_real.sum(), x, create_graph=True)
            r1 = grad.flatten(1).pow(2).sum(1).mean()
            return F.softplus(-d_real).mean() + F.softplus(D(fake)).mean() + 0.5 * g.r1 * r1
        d_real, d_fake = D(torch.cat([real, fake])).chunk(2) if concat else (D(real), D(fake))
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()

    def g_loss() -> torch.Tensor:
        return F.softplus(-D(G(torch.randn(b, latent)))).mean()

    def update(real: torch.Tensor) -> None:
        G.requires_grad_(False)
        fake = G(torch.randn(b, latent))
        d_loss(real, fake).backward()
        opt_d.step()
        opt_d.zero_grad(set_to_none=True)
        G.requires_grad_(True)
        D.requires_grad_(False)
        g_loss().backward()
        opt_g.step()
        opt_g.zero_grad(set_to_none=True)
        D.requires_grad_(True)
        if ema:
            with torch.no_grad():
                torch._foreach_lerp_(ema, [t for t in (*G.parameters(), *G.buffers()) if t.is_floating_point()],
                                     1 - ng.ema)
    return (lambda: update(next_batch())), {"G": G, "D": D, "opt_g": opt_g, "opt_d": opt_d, "d_loss": d_loss,
                                            "g_loss": g_loss, "update": update, "next_batch": next_batch,
                                            "latent": latent, "b": b}


def gan_workload(name: str) -> Callable[[int, int], dict[str, float]]:
    def measure(steps: int, warmup: int) -> dict[str, float]:
        cfg = gan_recipe(name, warmup + steps)
        images = GanSystem(cfg, CPU).data.train
        one, _ = gan_updates(cfg, images)
        return {"hand_loop": seconds_per_iteration(one, steps, warmup) * 1e3,
                "engine": engine_ms(GanSystem(cfg, CPU), steps, warmup)}
    return measure


# -- the bit system's joint phase --------------------------------------------------------------
def bits_workload(steps: int, warmup: int) -> dict[str, float]:
    cfg = load_recipe(AeRecipe, "ae_bits_ldpc", ["device='cpu'", "train.tensorboard=false"])
    s, ch = cfg.link, cfg.channel
    torch.manual_seed(0)
    enc, dec = Constellation(s.bits_per_symbol, s.constellation_init), NeuralDemapper(2, s.bits_per_symbol, s.hidden)
    labels, gen = bit_labels(s.bits_per_symbol), torch.Generator().manual_seed(1)
    nets = [(enc, cfg.networks.encoder, cfg.phases[0].steps), (dec, cfg.networks.decoder, cfg.train.steps)]
    opts = [torch.optim.Adam(m.parameters(), c.lr, **c.optimizer_options()) for m, c, _ in nets]
    decay = (lambda n: (lambda t: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(t, n) / n))))
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, decay(n)) for o, (_, _, n) in zip(opts, nets)]
    rate, n = s.bits_per_symbol * s.code_rate / 2, s.batch_size

    def one() -> None:
        msg = torch.randint(2 ** s.bits_per_symbol, (n,), generator=gen)
        x = enc(msg)
        db = ch.db + (ch.db_max - ch.db) * torch.rand(n, 1, generator=gen)
        y = x + ebn0_to_sigma(db, rate) * torch.randn(x.shape, generator=gen)
        F.binary_cross_entropy_with_logits(dec(y), labels[msg], reduction="none").mean(1).mean().backward()
        for o, sch in zip(opts, scheds):
            o.step()
            o.zero_grad(set_to_none=True)
            sch.step()
    hand = seconds_per_iteration(one, steps, warmup) * 1e3
    return {"hand_loop": hand, "engine": engine_ms(AeSystem(cfg, CPU), steps, warmup)}


# -- Ignite and Lightning loops of the seeds' MLP GAN -----------------------------------------
def ignite_ms(cfg: GanRecipe, images: torch.Tensor, steps: int, warmup: int) -> float:
    from ignite.engine import Engine, Events
    _, p = gan_updates(cfg, images)

    def process(engine: Any, real: torch.Tensor) -> None:
        p["update"](real)  # the plain loop's own update, inside Ignite's loop

    trainer, clock = Engine(process), {}
    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=warmup), lambda _: clock.update(t0=time.perf_counter()))
    trainer.add_event_handler(Events.COMPLETED, lambda _: clock.update(t1=time.perf_counter()))
    trainer.run(iter(p["next_batch"], None), max_epochs=1, epoch_length=warmup + steps)
    return (clock["t1"] - clock["t0"]) / steps * 1e3


def lightning_ms(cfg: GanRecipe, images: torch.Tensor, steps: int, warmup: int) -> float:
    import lightning as L
    _, p = gan_updates(cfg, images)

    class Gan(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False
            self.G, self.D = p["G"], p["D"]

        def configure_optimizers(self) -> Any:
            return [p["opt_d"], p["opt_g"]]

        def training_step(self, real: torch.Tensor, batch_idx: int) -> None:
            opt_d, opt_g = self.optimizers()
            self.toggle_optimizer(opt_d)  # G frozen
            self.manual_backward(p["d_loss"](real, self.G(torch.randn(p["b"], p["latent"]))))
            opt_d.step()
            opt_d.zero_grad(set_to_none=True)
            self.untoggle_optimizer(opt_d)
            self.toggle_optimizer(opt_g)  # D frozen
            self.manual_backward(p["g_loss"]())
            opt_g.step()
            opt_g.zero_grad(set_to_none=True)
            self.untoggle_optimizer(opt_g)

    class Clock(L.Callback):
        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, batch_idx: int) -> None:
            if batch_idx == warmup:
                self.t0 = time.perf_counter()

        def on_train_end(self, trainer: Any, module: Any) -> None:
            self.t1 = time.perf_counter()

    class Batches(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(p["next_batch"], None)

    clock = Clock()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=warmup + steps,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[clock])
    trainer.fit(Gan(), torch.utils.data.DataLoader(Batches(), batch_size=None))
    return (clock.t1 - clock.t0) / steps * 1e3


def mlp_workload(steps: int, warmup: int) -> dict[str, float]:
    import logging
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    out = {}
    for fused in (False, True):
        cfg = gan_recipe("gan_mnist_mlp", warmup + steps, fused=fused)
        images = GanSystem(cfg, CPU).data.train
        tag = "_fused" if fused else ""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["hand_loop" + tag] = seconds_per_iteration(gan_updates(cfg, images)[0], steps, warmup) * 1e3
            out["ignite" + tag] = ignite_ms(cfg, images, steps, warmup)
            out["lightning" + tag] = lightning_ms(cfg, images, steps, warmup)
            out["engine" + tag] = engine_ms(GanSystem(cfg, CPU), steps, warmup)
    return out


WORKLOADS: dict[str, tuple[Callable[[int, int], dict[str, float]], int]] = {  # name: (measure, steps)
    "gan_mnist_mlp": (mlp_workload, 400),
    "dcgan_mnist": (gan_workload("dcgan_mnist"), 40),
    "ae_bits_ldpc": (bits_workload, 600),
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--only", choices=sorted(WORKLOADS), action="append")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=0, help="iterations per repetition (default: per workload)")
    args = p.parse_args()
    torch.set_num_threads(1)
    report: dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    for name in args.only or list(WORKLOADS):
        measure, steps = WORKLOADS[name]
        runs: dict[str, list[float]] = {}
        for _ in range(args.reps):  # each repetition measures every variant in turn: drift hits all alike
            for k, v in measure(args.steps or steps, 10).items():
                runs.setdefault(k, []).append(v)
        med = {k: statistics.median(v) for k, v in runs.items()}
        ratios = {k: round(v / med[k.replace("engine", "hand_loop")], 3) for k, v in med.items() if k.startswith("engine")}
        report[name] = {"ms_per_it": {k: round(v, 3) for k, v in med.items()}, "engine_over_hand_loop": ratios,
                        "runs_ms_per_it": {k: [round(x, 3) for x in v] for k, v in runs.items()}}
        if name == "gan_mnist_mlp":
            for tag in ("", "_fused"):
                best = min(med["ignite" + tag], med["lightning" + tag])
                report[name]["speed_over_best_framework" + tag] = round(best / med["engine" + tag], 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
