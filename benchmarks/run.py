"""Speed benchmarks: prints medians as JSON. Record results in BENCHMARKS.md with the command.

    python benchmarks/run.py                 # everything this machine has (CPU, and CUDA if present)
    python benchmarks/run.py --only gan      # one workload: gan, dcgan, ae
    python benchmarks/run.py --device cuda

Workloads
- gan: the seeds' MLP GAN (TARGETS.md §4: D 784-256-256-1, G 100-256-256-784, batch 64, Adam 3e-4,
  BCE, one D then one G step) on the 10,000 MNIST test images from ../shared/data, as
  (a) the seeds' hand-written loop (DataLoader, Sigmoid + BCELoss, fresh noise for the G step),
  (a') the same loop with the data already in a tensor on the device (a stronger baseline),
  (b) the engine with default settings (logging every 50 steps),
  (c) the engine's fastest settings with the same update semantics,
  (d) (c) plus reuse of the D-step fake batch in the G step (different semantics: reported apart),
  (e) with --compile: (c) with every network torch.compile'd (train.compile=true).
- dcgan: the dcgan_mnist recipe's iteration rate with the fastest settings (fused Adam, channels_last
  convolution weights; bf16 autocast on a GPU), and the same without channels_last.
- ae: the (7,4) autoencoder's training iterations/s, beside a hand loop of the same joint-phase
  updates, and BLER evaluation blocks/s.

Repetitions are interleaved (a, b, c, d, a, b, c, d, ...) so drift hits every variant alike.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from multinet.config import load_recipe  # noqa: E402
from timing import engine_seconds_per_iteration, seconds_per_iteration, sync  # noqa: E402  (benchmarks/)

MNIST_RAW = Path(os.environ.get("MULTINET_MNIST_RAW", ROOT.parent / "shared" / "data" / "MNIST" / "raw"))


def matmul_rate(device: torch.device, dtype=torch.float32) -> float:
    """GFLOP/s of a large square matmul: the machine's compute limit for these workloads."""
    n = 2048 if device.type == "cpu" else 8192
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    reps, t = 5, time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


# -- (a) the seeds' hand-written loop ---------------------------------------------------------
class SeedD(nn.Module):
    def __init__(self):
        super().__init__()
        self.dis = nn.Sequential(nn.Linear(784, 256), nn.LeakyReLU(0.2), nn.Linear(256, 256), nn.LeakyReLU(0.2),
                                 nn.Linear(256, 1), nn.Sigmoid())

    def forward(self, x):
        return self.dis(x)


class SeedG(nn.Module):
    def __init__(self):
        super().__init__()
        self.gen = nn.Sequential(nn.Linear(100, 256), nn.ReLU(True), nn.Linear(256, 256), nn.ReLU(True),
                                 nn.Linear(256, 784), nn.Tanh())

    def forward(self, x):
        return self.gen(x)


def mnist_test_images() -> torch.Tensor:
    from multinet.data import read_idx
    x = torch.from_numpy(read_idx(MNIST_RAW / "t10k-images-idx3-ubyte.gz").copy()).float()
    return (x / 127.5 - 1).view(-1, 784)


def hand_loop(images: torch.Tensor, device: torch.device, steps: int, dataloader: bool) -> float:
    torch.manual_seed(0)
    D, G = SeedD().to(device), SeedG().to(device)
    criterion = nn.BCELoss()
    d_optimizer = torch.optim.Adam(D.parameters(), lr=0.0003)
    g_optimizer = torch.optim.Adam(G.parameters(), lr=0.0003)
    if dataloader:
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=64, shuffle=True,
                                             drop_last=True)
        def batches():
            while True:
                for (img,) in loader:
                    yield img.to(device)
    else:
        data = images.to(device)
        def batches():
            while True:
                perm = torch.randperm(len(data), device=device)
                for i in range(0, len(data) - 63, 64):
                    yield data[perm[i:i + 64]]
    it = batches()
    real_label, fake_label = torch.ones(64, 1, device=device), torch.zeros(64, 1, device=device)

    def one():
        real_img = next(it)
        real_out = D(real_img)
        d_loss_real = criterion(real_out, real_label)
        z = torch.randn(64, 100, device=device)
        fake_img = G(z).detach()
        fake_out = D(fake_img)
        d_loss_fake = criterion(fake_out, fake_label)
        d_loss = d_loss_real + d_loss_fake
        d_optimizer.zero_grad()
        d_loss.backward()
        d_optimizer.step()
        z = torch.randn(64, 100, device=device)
        fake_img = G(z)
        output = D(fake_img)
        g_loss = criterion(output, real_label)
        g_optimizer.zero_grad()
        g_loss.backward()
        g_optimizer.step()

    return 1 / seconds_per_iteration(one, steps, device=device)


def hand_loop_flops(images: torch.Tensor) -> float:
    """FLOPs of one hand-loop iteration, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode
    D, G = SeedD(), SeedG()
    real = images[:64]
    with FlopCounterMode(display=False) as fc:
        d_loss = nn.functional.binary_cross_entropy(D(real), torch.ones(64, 1)) + \
            nn.functional.binary_cross_entropy(D(G(torch.randn(64, 100)).detach()), torch.zeros(64, 1))
        d_loss.backward()
        nn.functional.binary_cross_entropy(D(G(torch.randn(64, 100))), torch.ones(64, 1)).backward()
    return float(fc.get_total_flops())


# -- (b, c, d) the engine ---------------------------------------------------------------------
def engine_gan(device: torch.device, steps: int, fast: bool, reuse: bool, recipe: str = "gan_mnist_mlp",
               extra: list[str] = (), compile: bool = False, channels_last: bool = True,
               bf16: bool = False) -> float:
    from multinet.gan import GanRecipe, GanSystem
    from multinet.run import engine_for
    overrides = ["data.name=idx", f"data.root={MNIST_RAW}", "data.train_fraction=1.0", f"device={device.type!r}",
                 f"train.steps={steps + 20}", "train.tensorboard=false", *extra]
    if fast:
        overrides += ["networks.generator.fused=true", "networks.discriminator.fused=true"]
        if recipe == "dcgan_mnist":  # convolutions: NHWC weights, and bf16 autocast where asked
            overrides += [f"networks.{n}.channels_last={str(channels_last).lower()}" for n in ("generator", "discriminator")]
            overrides += ["train.amp=bf16"] if bf16 else []
    if reuse:
        overrides.append("gan.reuse_fake=true")
    cfg = load_recipe(GanRecipe, recipe, overrides)
    torch.manual_seed(0)
    e = engine_for(GanSystem(cfg, device))
    if not fast:  # what the CLI does by default: a synced log line every 50 steps
        e.on("iteration", lambda e: e.scalars(), every=50)
    if compile:  # train.compile=true; the warm-up below absorbs the compilation
        for net in e.nets.values():
            net.module.compile()
    return 1 / engine_seconds_per_iteration(e, steps, device=device)


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 matmuls in hardware (AVX512-BF16 or AMX); elsewhere torch
    emulates bf16 and autocast only slows things down."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def ae_rates(device: torch.device, steps: int) -> dict[str, float]:
    from multinet.autoencoder.bler import monte_carlo
    from multinet.autoencoder import AeRecipe, AeSystem
    from multinet.run import engine_for
    cfg = load_recipe(AeRecipe, "ae_7_4", [f"device={device.type!r}", "train.tensorboard=false",
                                            f"train.steps={steps + 20}"])
    system = AeSystem(cfg, device)
    e = engine_for(system)
    train = 1 / engine_seconds_per_iteration(e, steps, device=device)
    cb = system.codebook()
    dec = e.nets["decoder"].module.eval()
    gen = torch.Generator(device=device).manual_seed(0)
    monte_carlo(cb, dec, 4, 8.0, min_errors=1, max_blocks=400_000, batch=400_000, generator=gen)
    sync(device)
    t = time.perf_counter()
    r = monte_carlo(cb, dec, 4, 8.0, min_errors=100, max_blocks=50_000_000,
                    batch=1_000_000 if device.type == "cpu" else 4_000_000, generator=gen)
    sync(device)
    dt = time.perf_counter() - t
    return {"train_it_per_s": train, "bler_8db_blocks_per_s": r.blocks / dt, "bler_8db_seconds": dt,
            "bler_8db_errors": r.errors, "bler_8db_blocks": r.blocks, "bler_8db": r.bler}


def ae_hand_loop(device: torch.device, steps: int, warmup: int = 20) -> float:
    """it/s of the ``ae_7_4`` joint phase's updates as a plain loop: the recipe's networks, Adam 3e-3
    on each with cosine decay to 0.01×, 4,096 messages a batch, codeword normalisation, AWGN at an
    Eb/N0 drawn per block in [2, 8] dB, cross-entropy."""
    from multinet.autoencoder import MessageDecoder, MessageEncoder, ebn0_to_sigma
    torch.manual_seed(0)
    enc, dec = MessageEncoder(16, 7, 128).to(device), MessageDecoder(16, 7, 128).to(device)
    opts = [torch.optim.Adam(net.parameters(), lr=3e-3) for net in (enc, dec)]
    total = warmup + steps
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, lambda t: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t / total)))
              for o in opts]
    gen = torch.Generator(device=device).manual_seed(1)

    def one() -> None:
        msg = torch.randint(16, (4096,), generator=gen, device=device)
        x = enc(msg)
        x = x * 7 ** 0.5 / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        db = 2.0 + 6.0 * torch.rand(4096, 1, generator=gen, device=device)
        y = x + ebn0_to_sigma(db, 4 / 7) * torch.randn(x.shape, generator=gen, device=device)
        torch.nn.functional.cross_entropy(dec(y), msg).backward()
        for o, sch in zip(opts, scheds):
            o.step()
            o.zero_grad(set_to_none=True)
            sch.step()

    return 1 / seconds_per_iteration(one, steps, warmup, device)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="auto")
    p.add_argument("--only", choices=["gan", "dcgan", "ae"])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--compile", action="store_true", help="add (e): (c) with torch.compile'd networks")
    args = p.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    if args.device != "auto":
        devices = [torch.device(args.device)]
    report: dict = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    for dev in devices:
        r: dict = {"matmul_gflops": matmul_rate(dev)}
        if dev.type == "cpu":
            r["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
            r["native_bf16"] = native_bf16_cpu()
            if r["native_bf16"]:  # the limit for bf16 work (the fp32 figure stays the reference)
                r["matmul_gflops_bf16"] = matmul_rate(dev, torch.bfloat16)
        if dev.type == "cuda":
            r["gpu"] = torch.cuda.get_device_name(dev)
        if args.only in (None, "gan"):
            images = mnist_test_images()
            flops = hand_loop_flops(images)
            variants = {
                "hand_loop_dataloader": lambda: hand_loop(images, dev, args.steps, dataloader=True),
                "hand_loop_tensor": lambda: hand_loop(images, dev, args.steps, dataloader=False),
                "engine_default": lambda: engine_gan(dev, args.steps, fast=False, reuse=False),
                "engine_fast": lambda: engine_gan(dev, args.steps, fast=True, reuse=False),
                "engine_fast_reuse_fake": lambda: engine_gan(dev, args.steps, fast=True, reuse=True),
            }
            if args.compile:
                variants["engine_fast_compile"] = lambda: engine_gan(dev, args.steps, fast=True, reuse=False, compile=True)
            runs: dict[str, list[float]] = {k: [] for k in variants}
            for _ in range(args.reps):
                for k, fn in variants.items():
                    runs[k].append(fn())
            med = {k: statistics.median(v) for k, v in runs.items()}
            base = med["hand_loop_dataloader"]
            r["gan_mlp"] = {
                "it_per_s": {k: round(v, 1) for k, v in med.items()},
                "ratio_to_hand_loop": {k: round(v / base, 2) for k, v in med.items()},
                "ratio_to_tensor_hand_loop": {k: round(v / med["hand_loop_tensor"], 2) for k, v in med.items()},
                "hand_loop_gflop_per_it": round(flops / 1e9, 3),
                "compute_limit_it_per_s": round(r["matmul_gflops"] * 1e9 / flops, 1),
                "fraction_of_limit": {k: round(v * flops / (r["matmul_gflops"] * 1e9), 3) for k, v in med.items()},
                "runs": {k: [round(x, 1) for x in v] for k, v in runs.items()},
            }
        if args.only in (None, "dcgan"):
            dc_steps = max(20, args.steps // 10 if dev.type == "cpu" else args.steps)
            dc: dict[str, list[float]] = {"fast": [], "fast_without_channels_last": []}
            if r.get("native_bf16"):  # a CPU with AMX / AVX512-BF16: bf16 convolutions in hardware
                dc["fast_bf16"] = []
            for _ in range(args.reps):  # interleaved
                for k in dc:
                    dc[k].append(engine_gan(dev, dc_steps, fast=True, reuse=False, recipe="dcgan_mnist",
                                            channels_last=k != "fast_without_channels_last",
                                            bf16=dev.type == "cuda" or k == "fast_bf16"))
            r["dcgan_mnist_it_per_s"] = {k: round(statistics.median(v), 2) for k, v in dc.items()}
        if args.only in (None, "ae"):
            rs = []
            for _ in range(args.reps):  # interleaved with the hand loop of the same updates
                rs.append({**ae_rates(dev, args.steps * 3), "hand_loop_train_it_per_s": ae_hand_loop(dev, args.steps * 3)})
            r["ae_7_4"] = {k: statistics.median(x[k] for x in rs) for k in rs[0]}
            r["ae_7_4"]["train_engine_over_hand_loop"] = round(
                r["ae_7_4"]["train_it_per_s"] / r["ae_7_4"]["hand_loop_train_it_per_s"], 3)
        if dev.type == "cuda":
            r["peak_memory_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2 ** 20, 1)
        report[dev.type] = r
    try:
        import resource
        report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except ImportError:
        pass
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
