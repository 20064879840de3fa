"""Speed beside Sionna (TARGETS.md §5), on the same models and the same amount of work.

    python -m multinet.autoencoder ae_7_4 --out runs/ae_7_4
    python -m multinet.autoencoder ae_8_8 --out runs/ae_8_8
    python benchmarks/sionna_speed.py sweep runs/ae_7_4 runs/ae_8_8      # BLER sweeps vs sim_ber
    python benchmarks/sionna_speed.py train [--steps 300]                   # bit system training it/s

sweep: for each saved message system, the BLER of its own network receiver at every Eb/N0 of
its recipe, by ``multinet.autoencoder.bler.monte_carlo`` and by Sionna's ``sim_ber`` with an
``mc_fun`` made of Sionna's AWGN block and the same decoder: the same batch, the same target of
block errors, the same block cap. Prints blocks, errors and seconds per point, and the ratio.

train: the bit system of ``ae_bits_ldpc`` (16 trainable points, neural demapper, BCE over AWGN,
batch 4096) trained for N steps by the engine (``Runner``, no checkpoints or logs in between)
against the same model written with Sionna blocks (``Constellation(trainable)``, ``Mapper``,
``AWGN``, ``ebnodb2no``) and a hand loop of Adam steps; median of three interleaved runs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from multinet.autoencoder.bler import monte_carlo  # noqa: E402
from multinet.nets.freeze import eval_mode  # noqa: E402
from multinet.run.runner import load_system  # noqa: E402
from timing import seconds_per_iteration  # noqa: E402  (benchmarks/)


def sweep(runs: list[str], target: int, batch: int, cap: int) -> None:
    import sionna.phy as sp
    for run in runs:
        system, _ = load_system(Path(run) / "checkpoints/last.pt", device="cpu")
        s = system.cfg.link
        cb = system.codebook()
        m, n, k = cb.shape[0], s.n, s.k
        bits = ((torch.arange(m)[:, None] >> torch.arange(k - 1, -1, -1)) & 1).float()
        awgn = sp.channel.AWGN(device="cpu")
        with eval_mode(system.nets["decoder"].module) as dec:
            def mc_fun(batch_size: int, ebno_db: torch.Tensor):
                msg = torch.randint(m, (batch_size,))
                x = cb[msg]
                no = sp.utils.ebnodb2no(ebno_db, 1, k / n)  # real symbols: in-phase noise no/2 = σ²
                y = awgn(torch.complex(x, torch.zeros_like(x)), no).real
                return bits[msg], bits[dec(y).argmax(1)]

            print(f"\n{run}: ({n},{k}), network receiver, target {target} block errors, batch {batch}, cap {cap}")
            print(f"{'Eb/N0':>6} | {'multinet blocks':>15} {'errors':>7} {'s':>7} | {'sim_ber blocks':>15} "
                  f"{'errors':>7} {'s':>7} | blocks/s ratio")
            tot_a = tot_b = 0.0
            blk_a = blk_b = 0
            for db in system.cfg.channel.eval_db:
                t0 = time.perf_counter()
                r = monte_carlo(cb, dec, k, db, target, cap, batch, torch.Generator().manual_seed(0))
                ta = time.perf_counter() - t0
                seen: dict = {}

                def count(mc_iter, snr_idx, ebno_dbs, bit_e, block_e, nb_bits, nb_blocks):
                    seen["blocks"], seen["errors"] = int(nb_blocks[snr_idx]), int(block_e[snr_idx])
                    return sp.utils.sim_ber.CALLBACK_CONTINUE
                t0 = time.perf_counter()
                sp.utils.sim_ber(mc_fun, [db], batch, cap // batch, num_target_block_errors=target,
                                 verbose=False, callback=count, early_stop=False)
                tb = time.perf_counter() - t0
                tot_a, tot_b, blk_a, blk_b = tot_a + ta, tot_b + tb, blk_a + r.blocks, blk_b + seen["blocks"]
                print(f"{db:6.1f} | {r.blocks:15d} {r.errors:7d} {ta:7.2f} | {seen['blocks']:15d} {seen['errors']:7d} "
                      f"{tb:7.2f} | {(r.blocks / ta) / (seen['blocks'] / tb):5.1f}x")
            print(f"{'all':>6} | {blk_a:15d} {'':7} {tot_a:7.2f} | {blk_b:15d} {'':7} {tot_b:7.2f} | "
                  f"{(blk_a / tot_a) / (blk_b / tot_b):5.1f}x  ({blk_a / tot_a:.3g} vs {blk_b / tot_b:.3g} blocks/s)")


def _engine_run(steps: int) -> float:
    from multinet import Runner
    from multinet.autoencoder import AeRecipe, BitAutoencoder
    from multinet.config import load_recipe
    from multinet.handlers import AtSteps
    cfg = load_recipe(AeRecipe, "ae_bits_ldpc", ["device='cpu'", f"train.steps={steps + 20}", "train.tensorboard=false",
                                                 "train.log_every=100", "train.checkpoint_every=0", "eval.baselines=false",
                                                 "phases=[{name='joint', steps=1}]"])
    times: dict = {}

    class Timed(BitAutoencoder):  # time training only: the coded evaluation after it is not part of this
        def handlers(self, ctx):  # the clock starts after 20 warm-up steps, as in the hand loop
            return [AtSteps([20], lambda step: times.__setitem__("start", time.perf_counter()))]

        def finish(self, ctx):
            times["end"] = time.perf_counter()
            return {}
    with tempfile.TemporaryDirectory() as out:
        Runner(Timed, cfg, Path(out) / "r", progress=False, echo=False).fit()
    return steps / (times["end"] - times["start"])


def _sionna_hand_loop(steps: int) -> float:
    import sionna.phy as sp
    from multinet.autoencoder.networks import NeuralDemapper
    torch.manual_seed(0)
    m, batch, rate = 4, 4096, 0.5
    # Sionna 2.x trains a "custom" constellation whose points are a tensor that requires grad.
    points = torch.nn.Parameter(torch.view_as_real(sp.mapping.Constellation("qam", m).points.clone()))
    const = sp.mapping.Constellation("custom", m, points=torch.view_as_complex(points), normalize=True, center=True,
                                     device="cpu")
    mapper, awgn, bsrc = sp.mapping.Mapper(constellation=const, device="cpu"), sp.channel.AWGN(device="cpu"), \
        sp.mapping.BinarySource(device="cpu")
    demap = NeuralDemapper(2, m)
    opt_c, opt_d = torch.optim.Adam([points], 1e-2), torch.optim.Adam(demap.parameters(), 3e-3)
    ebno = torch.empty(batch)

    def step() -> None:
        const.points = torch.view_as_complex(points)
        b = bsrc([batch, m])
        x = mapper(b).reshape(batch)
        no = sp.utils.ebnodb2no(ebno.uniform_(2.0, 6.0), m, rate)
        y = awgn(x, no)
        llr = demap(torch.stack([y.real, y.imag], 1) * 2 ** 0.5)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(llr, b)
        opt_c.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_c.step()
        opt_d.step()
    return 1 / seconds_per_iteration(step, steps)


def train(steps: int) -> None:
    ours, theirs = [], []
    for _ in range(3):
        ours.append(_engine_run(steps))
        theirs.append(_sionna_hand_loop(steps))
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"bit system, batch 4096, {steps} steps, median of 3 interleaved runs")
    print(f"multinet engine: {a:.1f} it/s {[round(x, 1) for x in ours]}")
    print(f"Sionna blocks + hand loop: {b:.1f} it/s {[round(x, 1) for x in theirs]}")
    print(f"ratio: {a / b:.2f}x")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("sweep")
    s.add_argument("runs", nargs="+")
    s.add_argument("--target", type=int, default=100)
    s.add_argument("--batch", type=int, default=200_000)
    s.add_argument("--cap", type=int, default=20_000_000)
    t = sub.add_parser("train")
    t.add_argument("--steps", type=int, default=300)
    a = p.parse_args()
    torch.set_num_threads(2)
    sweep(a.runs, a.target, a.batch, a.cap) if a.what == "sweep" else train(a.steps)
