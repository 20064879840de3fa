"""Operator calls and device-to-host reads per training iteration: every shipped recipe through the
engine (between log steps), and the hand loops of the same updates where one exists. Prints JSON.

    python benchmarks/op_counts.py

An operator call is one ATen dispatch (what a TorchDispatchMode sees: each costs a launch on a GPU,
and Python overhead everywhere). A read is ``aten._local_scalar_dense`` / ``is_nonzero`` (``.item()``,
``float(t)``, ``if t``). Engine figures are given with the recipe's own optimizers and with
``fused=true`` (fused optimizers keep their step counts as tensors; the default ones read their
CPU step counter once per parameter tensor, which on a GPU is a CPU read, not a stall). The MNIST
recipes run on the bundled digits at 28×28 (the operator count does not depend on the data).
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from multinet.config import load_recipe  # noqa: E402
from multinet.engine import Event  # noqa: E402
from multinet.run import engine_for  # noqa: E402

READS = {"aten._local_scalar_dense", "aten.is_nonzero"}
RECIPES = [
    ("gan", "gan_digits", []),
    ("gan", "gan_ring8", []),
    ("gan", "gan_grid25", []),
    ("gan", "gan_mnist_mlp", ["data.name=digits", "data.image_size=28"]),
    ("gan", "dcgan_mnist", ["data.name=digits", "data.image_size=28"]),
    ("gan", "dcgan_mnist_cond", ["data.name=digits", "data.image_size=28"]),
    ("autoencoder", "ae_7_4", []),
    ("autoencoder", "ae_7_4_model_free", []),
    ("autoencoder", "ae_bits_ldpc", []),
    ("autoencoder", "ae_images_awgn", []),
]


class Ops(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops, self.reads = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        self.reads += str(func.overloadpacket) in READS
        return func(*args, **(kwargs or {}))


def engine_counts(task: str, recipe: str, extra: list[str], fused: bool, n: int = 8) -> dict[str, float]:
    if task == "gan":
        from multinet.gan import GanRecipe as Recipe, GanSystem as System
        nets = ("generator", "discriminator")
    else:
        from multinet.autoencoder import AeRecipe as Recipe, AeSystem as System
        nets = ("encoder", "decoder")
    over = ["device='cpu'", "train.steps=100", "train.log_every=50", "train.tensorboard=false", *extra]
    over += [f"networks.{x}.fused=true" for x in nets] if fused else []
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = engine_for(System(load_recipe(Recipe, recipe, over), torch.device("cpu")))
    mode = Ops()

    def window(e):  # iterations 11 .. 10 + n: past warm-up, no log step
        if e.iteration == 10:
            mode.__enter__()
        elif e.iteration == 10 + n:
            mode.__exit__(None, None, None)
    e.on(Event.ITERATION_COMPLETED, window)
    e.run(stop_at=11 + n)
    return {"ops_per_it": mode.ops / n, "reads_per_it": mode.reads / n}


def hand_counts(fn, n: int = 8) -> dict[str, float]:
    mode = Ops()
    with mode:
        fn(n)
    return {"ops_per_it": mode.ops / (n + 20), "reads_per_it": mode.reads / (n + 20)}  # + 20 warm-up


def main() -> None:
    torch.set_num_threads(1)
    report: dict[str, dict] = {}
    for task, recipe, extra in RECIPES:
        report[recipe] = {"engine": engine_counts(task, recipe, extra, fused=False),
                          "engine_fused": engine_counts(task, recipe, extra, fused=True)}
    import digits_default  # noqa: E402  (benchmarks/)
    from multinet.data import load_data
    cfg = digits_default.recipe(100)
    images = load_data(cfg.data, torch.device("cpu"), 0).train
    report["gan_digits"]["hand_loop"] = hand_counts(lambda n: digits_default.hand_loop(cfg, images, n))
    import run as speed  # noqa: E402  (benchmarks/run.py: the seeds' MLP GAN loop)
    seeds = torch.rand(640, 784) * 2 - 1
    report["gan_mnist_mlp"]["seeds_hand_loop"] = hand_counts(
        lambda n: speed.hand_loop(seeds, torch.device("cpu"), n, dataloader=False))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
