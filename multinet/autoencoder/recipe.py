"""The autoencoder recipe: encoder → channel → decoder, trained in phases (joint, then decoder).

Setup order: task (messages or images) → networks → Net (device → init → groups → optimizer →
schedule) → channels → phases (lengths scaled to ``train.steps``) → engine → handlers (BLER or
PSNR after every phase; bler.csv / bler.png / codebook.npy at the end).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from .. import distributed
from ..cli import Run
from ..config import TrainConfig as BaseTrainConfig
from ..config import at_least, to_dict
from ..data import DataConfig, load_data
from ..engine import Engine, Phase
from ..freeze import eval_mode
from ..netconfig import NetConfig, to_spec
from ..nets import Net
from .bler import hamming74_codebook, hamming74_hard_bler, ml_decoder, monte_carlo, uncoded_bpsk_bler
from .channel import Channel, ChannelConfig
from .networks import ImageDecoder, ImageEncoder, MessageDecoder, MessageEncoder

__all__ = ["AeRecipe", "build"]


@dataclass
class SystemConfig:
    kind: Literal["messages", "images"] = "messages"
    n: int = 7
    k: int = 4
    hidden: int = 128
    batch_size: int = 1024

    def __post_init__(self) -> None:
        at_least(self, 1, "n", "k", "hidden", "batch_size")


@dataclass
class PhaseConfig:
    name: Literal["joint", "decoder", "encoder"] = "joint"
    steps: int = 1000
    channel: Literal["train", "finetune"] = "train"

    def __post_init__(self) -> None:
        at_least(self, 1, "steps")


@dataclass
class TrainConfig(BaseTrainConfig):
    steps: int = 0  # 0 = the sum of the phases' steps; otherwise phases are scaled to it
    log_every: int = 100


@dataclass
class EvalConfig:
    min_errors: int = 100
    max_blocks: int = 2_000_000
    batch: int = 200_000
    baselines: bool = True
    ml_errors: int = 400

    def __post_init__(self) -> None:
        at_least(self, 1, "min_errors", "max_blocks", "batch", "ml_errors")


@dataclass
class Networks:
    encoder: NetConfig = field(default_factory=NetConfig)
    decoder: NetConfig = field(default_factory=NetConfig)


@dataclass
class AeRecipe:
    task: Literal["autoencoder"] = "autoencoder"
    description: str = ""
    seed: int = 0
    device: str = "auto"
    system: SystemConfig = field(default_factory=SystemConfig)
    data: DataConfig = field(default_factory=DataConfig)
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    finetune_channel: ChannelConfig | None = None
    phases: list[PhaseConfig] = field(default_factory=lambda: [PhaseConfig()])
    networks: Networks = field(default_factory=Networks)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        if not self.phases:
            raise ValueError("phases: at least one phase is needed")
        if any(p.channel == "finetune" for p in self.phases) and self.finetune_channel is None:
            raise ValueError("a phase uses channel 'finetune' but [finetune_channel] is not set")
        if self.train.steps == 0:
            self.train.steps = sum(p.steps for p in self.phases)


def phase_bounds(phases: list[PhaseConfig], total: int) -> list[tuple[int, int]]:
    """Phase lengths scaled to ``total`` iterations (every phase keeps at least one step)."""
    declared = sum(p.steps for p in phases)
    bounds, start = [], 0
    for i, p in enumerate(phases):
        length = total - start if i == len(phases) - 1 else max(1, round(p.steps * total / declared))
        bounds.append((start, start + length))
        start += length
    return bounds


_NETS = {"joint": ("encoder", "decoder"), "decoder": ("decoder",), "encoder": ("encoder",)}


class AeSystem:
    def __init__(self, cfg: AeRecipe, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        s = cfg.system
        self.m = 2 ** s.k
        self.channels = {"train": Channel(cfg.channel, s.n, s.k, device, cfg.seed + 11)}
        if cfg.finetune_channel is not None:
            self.channels["finetune"] = Channel(cfg.finetune_channel, s.n, s.k, device, cfg.seed + 12)
        self.msg_gen = torch.Generator(device=device).manual_seed(cfg.seed + 13)
        self.data = load_data(cfg.data, device, cfg.seed) if s.kind == "images" else None

    def step_fn(self, channel: str, spans: list[tuple[int, int]]):
        """The step of a phase on ``channel``; ``spans`` are all phase ranges on that channel
        (a scheduled channel level moves across them)."""
        ch = self.channels[channel]
        total = sum(b - a for a, b in spans)

        def step(e: Engine) -> dict[str, torch.Tensor]:
            done = sum(min(max(e.iteration - a, 0), b - a) for a, b in spans)
            ch.progress = done / max(1, total - 1)
            enc, dec = e.model("encoder"), e.model("decoder")
            if self.cfg.system.kind == "messages":
                msg = distributed.randint(self.m, self.cfg.system.batch_size, generator=self.msg_gen, device=self.device)
                logits = dec(ch(ch.normalize(enc(msg))))
                loss = F.cross_entropy(logits, msg)
                return {"loss": loss, "block_error": (logits.detach().argmax(1) != msg).float().mean()}
            x, _ = self.data.sampler.next()
            rec = dec(ch(ch.normalize(enc(x))))
            loss = F.mse_loss(rec, x)
            return {"loss": loss, "psnr": 10 * torch.log10(4.0 / loss.detach())}
        return step

    @torch.no_grad()
    def codebook(self, e: Engine) -> torch.Tensor:
        with eval_mode(e.nets["encoder"].module) as enc:
            return self.channels["train"].normalize(enc.codebook())

    @torch.no_grad()
    def evaluate(self, e: Engine, label: str) -> list[dict[str, Any]]:
        """BLER/BER (messages) or PSNR (images) of the current system under every channel."""
        rows = []
        with eval_mode(e.nets["decoder"].module) as dec:
            gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed + 99)
            cb = self.codebook(e) if self.cfg.system.kind == "messages" else None
            for ch_name, ch in self.channels.items():
                curve = f"autoencoder after {label}" + ("" if ch_name == "train" else f" [{ch_name} channel]")
                for db in ch.cfg.eval_db:
                    if cb is not None:
                        r = self._mc(cb, dec, db, gen, ch)
                        rows.append({"curve": curve, "ebn0_db": db, "bler": r.bler, "ber": r.ber, "blocks": r.blocks,
                                     "errors": r.errors})
                    else:
                        rows.append({"curve": curve, "snr_db": db, "psnr": self._psnr(e, ch, db)})
        return rows

    def _mc(self, cb, decode, db, gen, ch):
        ev = self.cfg.eval
        fading = ch.cfg.fading != "none"
        channel = (lambda x, d: ch(x, d, gen)) if fading else None
        return monte_carlo(cb, decode, self.cfg.system.k, db, ev.min_errors, ev.max_blocks, ev.batch,
                           gen if not fading else None, channel)

    def _psnr(self, e: Engine, ch: Channel, db: float) -> float:
        enc, dec = e.nets["encoder"].module, e.nets["decoder"].module
        x = self.data.held_out if self.data.held_out is not None else self.data.train
        mse = F.mse_loss(dec(ch(ch.normalize(enc(x)), db)), x)
        return float(10 * torch.log10(4.0 / mse))

    def baselines(self, e: Engine) -> list[dict[str, Any]]:
        s, ev = self.cfg.system, self.cfg.eval
        rows = []
        gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed + 7)
        cb, hc = self.codebook(e), hamming74_codebook().to(self.device)
        for db in self.cfg.channel.eval_db:
            rows.append({"curve": f"uncoded BPSK ({s.k},{s.k})", "ebn0_db": db, "bler": uncoded_bpsk_bler(db, s.k),
                         "ber": None, "blocks": None, "errors": None})
            if (s.n, s.k) == (7, 4):
                rows.append({"curve": "Hamming(7,4) hard", "ebn0_db": db, "bler": hamming74_hard_bler(db),
                             "ber": None, "blocks": None, "errors": None})
                r = monte_carlo(hc, ml_decoder(hc), 4, db, ev.ml_errors, 20 * ev.max_blocks, ev.batch, gen)
                rows.append({"curve": "Hamming(7,4) ML", "ebn0_db": db, "bler": r.bler, "ber": r.ber,
                             "blocks": r.blocks, "errors": r.errors})
            r = monte_carlo(cb, ml_decoder(cb), s.k, db, ev.min_errors, ev.max_blocks, ev.batch, gen)
            rows.append({"curve": "learned code, ML decoding", "ebn0_db": db, "bler": r.bler, "ber": r.ber,
                         "blocks": r.blocks, "errors": r.errors})
        return rows


def build(cfg: AeRecipe, out: Path, device: torch.device) -> Run:
    s = cfg.system
    system = AeSystem(cfg, device)
    if s.kind == "messages":
        enc, dec = MessageEncoder(system.m, s.n, s.hidden), MessageDecoder(system.m, s.n, s.hidden)
    else:
        shape = system.data.shape
        enc, dec = ImageEncoder(shape, s.n, s.hidden), ImageDecoder(shape, s.n, s.hidden)
    bounds = phase_bounds(cfg.phases, cfg.train.steps)
    steps_of = {"encoder": 0, "decoder": 0}
    for p, (a, b) in zip(cfg.phases, bounds):
        for n in _NETS[p.name]:
            steps_of[n] += b - a
    nets = {"encoder": Net("encoder", to_spec(cfg.networks.encoder, enc), device, steps_of["encoder"]),
            "decoder": Net("decoder", to_spec(cfg.networks.decoder, dec), device, steps_of["decoder"])}
    names = [f"{i}_{p.name}" if len(cfg.phases) > 1 else p.name for i, p in enumerate(cfg.phases)]
    spans = {c: [ab for p, ab in zip(cfg.phases, bounds) if p.channel == c] for c in ("train", "finetune")}
    phases = [Phase(name, _NETS[p.name], system.step_fn(p.channel, spans[p.channel]), start=a, stop=b)
              for name, p, (a, b) in zip(names, cfg.phases, bounds)]
    generators = {"messages": system.msg_gen, **{f"channel_{k}": c.gen for k, c in system.channels.items()}}
    stateful = {"data": system.data.sampler} if system.data is not None else {}
    engine = Engine(nets, phases, cfg.train.steps, amp=cfg.train.amp, generators=generators, stateful=stateful,
                    config=to_dict(cfg), log_every=cfg.train.log_every)
    engine.system = system
    results: list[dict[str, Any]] = []

    def after_phase(e: Engine) -> None:
        for name, (a, b) in zip(names, bounds):
            if e.iteration == b:
                rows = system.evaluate(e, name)
                results.extend(rows)
                key = "bler" if s.kind == "messages" else "psnr"
                e.tracker.scalars(e.iteration, {f"eval/{r['curve']}/{r.get('ebn0_db', r.get('snr_db'))}dB": r[key]
                                                for r in rows})
                _write_rows(out, results, s.kind)  # survives a later crash

    def finish() -> dict[str, Any]:
        summary: dict[str, Any] = {"recipe": cfg.description, "system": f"({s.n},{s.k})" if s.kind == "messages" else "images"}
        if not results:  # resumed after the last phase boundary: evaluate the final state once
            results.extend(system.evaluate(engine, names[-1]))
        rows = list(results)
        if s.kind == "messages":
            np.save(out / "codebook.npy", system.codebook(engine).cpu().numpy())
            if cfg.eval.baselines:
                rows += system.baselines(engine)
            _plot(out, rows, s)
        _write_rows(out, rows, s.kind)
        key = "bler" if s.kind == "messages" else "psnr"
        table: dict[str, dict[str, float]] = {}
        for r in rows:
            table.setdefault(r["curve"], {})[f"{r.get('ebn0_db', r.get('snr_db')):g}"] = r[key]
        summary["curves"] = table
        return summary

    run = Run(engine, finish, [n.report() for n in nets.values()])
    run.handlers = [("iteration", after_phase, 1)]
    return run


def _write_rows(out: Path, rows: list[dict[str, Any]], kind: str) -> None:
    cols = ["curve", "ebn0_db", "bler", "ber", "blocks", "errors"] if kind == "messages" else ["curve", "snr_db", "psnr"]
    name = "bler.csv" if kind == "messages" else "psnr.csv"
    with open(out / name, "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in cols})


def _plot(out: Path, rows: list[dict[str, Any]], s: SystemConfig) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.5))
    curves: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r["bler"] and r["bler"] > 0:
            curves.setdefault(r["curve"], []).append((r["ebn0_db"], r["bler"]))
    for i, (name, pts) in enumerate(curves.items()):
        pts.sort()
        style = "--" if "BPSK" in name or "Hamming" in name or "ML decoding" in name else "-o"
        ax.semilogy(*zip(*pts), style, label=name, markersize=4)
    ax.set_xlabel("Eb/N0 [dB]")
    ax.set_ylabel("block error rate")
    ax.set_title(f"({s.n},{s.k}) autoencoder over AWGN")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "bler.png", dpi=110)
    plt.close(fig)
