"""Run under torchrun by tests/run/test_distributed.py: the engine API on two ranks.

    python -m torch.distributed.run --nproc-per-node=2 tests/dist_worker.py MODE[,MODE...] OUT

MODE ``frozen``: a GAN-shaped two-network system; checks that each network has its own DDP
built without find_unused_parameters, that the frozen network's .grad stays None on every rank,
and that the weights are equal on every rank. ``bare``: a step calls a trained network's bare
module (the error must say so). ``nan``: rank 1 alone has a NaN loss at step 4; both ranks
must report that step. ``fail`` (last, with OUT): through the CLI, rank 1 dies at step 3 (the
other rank must not hang). ``accumulate``: micro-batches under DDP match one batch, with one all-reduce per step.
"""
import sys

import torch
import torch.distributed as dist
from torch import nn

import multinet
from multinet import distributed


def two_nets():
    distributed.init("cpu", timeout_s=60)
    torch.manual_seed(0)
    g = multinet.Net("g", nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)), multinet.NetConfig(lr=1e-2), "cpu")
    d = multinet.Net("d", nn.Sequential(nn.Linear(3, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1)), multinet.NetConfig(lr=1e-2), "cpu")
    return {"g": g, "d": d}


def frozen_mode() -> None:
    nets = two_nets()
    gen = torch.Generator().manual_seed(1)
    seen = []

    def d_step(e):
        real = distributed.randn(8, 3, generator=gen, device="cpu") + 2
        fake = e.model("g")(distributed.randn(8, 4, generator=gen, device="cpu"))
        out = e.model("d")(torch.cat([real, fake]))
        return {"loss": nn.functional.softplus(-out[:8]).mean() + nn.functional.softplus(out[8:]).mean()}

    def g_step(e):
        out = e.model("d")(e.model("g")(distributed.randn(8, 4, generator=gen, device="cpu")))
        loss = nn.functional.softplus(-out).mean()
        loss.register_hook(lambda _: seen.append(all(p.grad is None for p in e.nets["d"].module.parameters())))
        return {"loss": loss}

    e = multinet.Engine(nets, [multinet.Phase("d", ("d",), d_step), multinet.Phase("g", ("g",), g_step)], 20)
    assert e.model("d") is nets["d"].module  # outside a phase every network is called bare
    e.run()
    for net in nets.values():
        assert isinstance(net.wrapped, nn.parallel.DistributedDataParallel)
        assert net.wrapped.find_unused_parameters is False
        flat = torch.cat([p.detach().flatten() for p in net.module.parameters()])
        every = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
        dist.all_gather(every, flat)
        assert all(torch.equal(every[0], x) for x in every), f"{net.name}: weights differ across ranks"
    assert seen and all(seen), "the frozen discriminator got weight gradients during the generator step"
    e.check_finite()
    print(f"rank {dist.get_rank()}: frozen OK after {e.iteration} iterations")


def bare_mode() -> None:
    nets = two_nets()

    def g_step(e):
        return {"loss": e.nets["g"].module(torch.randn(8, 4)).pow(2).mean()}  # bypasses the DDP wrapper

    e = multinet.Engine(nets, [multinet.Phase("g", ("g",), g_step)], 3)
    try:
        e.run()
    except RuntimeError as err:
        print(f"rank {dist.get_rank()}: {err}")


def nan_mode() -> None:
    nets = two_nets()

    def g_step(e):
        loss = e.model("g")(torch.randn(8, 4)).pow(2).mean()
        return {"loss": loss * float("nan") if e.iteration == 3 and dist.get_rank() == 1 else loss}

    e = multinet.Engine(nets, [multinet.Phase("g", ("g",), g_step)], 8)
    try:
        e.run()  # the engine checks over all ranks by itself: every rank stops with the same message
    except multinet.NonFiniteLoss as err:
        print(f"rank {dist.get_rank()}: {err}")


def accumulate_mode() -> None:
    """Two micro-batches of 4 per step on each rank give the update of one batch of 8 per rank,
    and the gradients are all-reduced once per optimizer step (DDP's no_sync on the first)."""
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    def train(batch, k):
        nets = two_nets()
        gen = torch.Generator().manual_seed(7 + dist.get_rank())
        data = torch.randn(64, 4, generator=gen)
        taken = {"i": 0}
        reductions = []

        def count(state, bucket):
            reductions.append(1)
            return default_hooks.allreduce_hook(state, bucket)

        def g_step(e):
            i = taken["i"]
            taken["i"] += batch
            return {"loss": e.model("g")(data[i:i + batch]).pow(2).mean()}

        nets["g"].wrapped.register_comm_hook(dist.group.WORLD, count)
        multinet.Engine(nets, [multinet.Phase("g", ("g",), g_step, accumulate=k)], 3).run()
        return [p.detach().clone() for p in nets["g"].module.parameters()], len(reductions)

    whole, once = train(8, 1)
    parts, reduced = train(4, 2)
    for a, b in zip(whole, parts):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert reduced == once, (reduced, once)
    print(f"rank {dist.get_rank()}: accumulate OK, {reduced} reductions")


def fail_mode(out: str) -> None:
    from multinet.cli import main

    sys.exit(main(["train", "__main__:FailingGan", "gan_digits", "--out", out, "--steps", "1000", "--device", "cpu",
                   "--no-progress", "train.tensorboard=false", "train.dist_timeout=60"]))


def _failing_gan():
    from multinet.gan import GanSystem

    class FailingGan(GanSystem):
        """A user system whose rank 1 fails at step 3."""

        def d_step(self, e):
            if e.iteration == 3 and distributed.info().rank == 1:
                raise ValueError("injected failure on rank 1")
            return super().d_step(e)
    return FailingGan


FailingGan = _failing_gan()


if __name__ == "__main__":
    for one in sys.argv[1].split(","):  # several modes in turn share one process group (one start-up)
        if one == "fail":  # ends the job: last
            fail_mode(sys.argv[2])
        {"frozen": frozen_mode, "bare": bare_mode, "nan": nan_mode, "accumulate": accumulate_mode}[one]()
    distributed.shutdown()
