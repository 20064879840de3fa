"""Scoring an autoencoder: BLER / BER by Monte Carlo (messages) or PSNR (images) under every
channel, the classical baselines, and the files a run writes (``bler.csv``, ``bler.png``)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..freeze import eval_mode
from .bler import hamming74_codebook, hamming74_hard_bler, ml_decoder, monte_carlo, uncoded_bpsk_bler
from .channel import Channel

if TYPE_CHECKING:
    from .system import AeSystem

__all__ = ["evaluate", "baselines", "write_rows", "plot", "table"]


@torch.no_grad()
def evaluate(system: "AeSystem", label: str) -> list[dict[str, Any]]:
    """BLER/BER (messages) or PSNR (images) of the system as it is now, under every channel."""
    rows = []
    with eval_mode(system.nets["decoder"].module) as dec:
        gen = system.streams.fresh("ae.eval", system.device)
        cb = system.codebook() if system.cfg.system.kind == "messages" else None
        for ch_name, ch in system.channels.items():
            curve = f"autoencoder after {label}" + ("" if ch_name == "train" else f" [{ch_name} channel]")
            for db in ch.cfg.eval_db:
                if cb is not None:
                    r = _mc(system, cb, dec, db, gen, ch)
                    rows.append({"curve": curve, "ebn0_db": db, "bler": r.bler, "ber": r.ber, "blocks": r.blocks,
                                 "errors": r.errors})
                else:
                    rows.append({"curve": curve, "snr_db": db, "psnr": _psnr(system, ch, db)})
    return rows


def _mc(system: "AeSystem", cb: torch.Tensor, decode: Any, db: float, gen: torch.Generator, ch: Channel) -> Any:
    ev = system.cfg.eval
    fading = ch.cfg.fading != "none"
    channel = (lambda x, d: ch(x, d, gen)) if fading else None
    return monte_carlo(cb, decode, system.cfg.system.k, db, ev.min_errors, ev.max_blocks, ev.batch,
                       gen if not fading else None, channel)


def _psnr(system: "AeSystem", ch: Channel, db: float) -> float:
    enc, dec = system.nets["encoder"].module, system.nets["decoder"].module
    x = system.data.held_out if system.data.held_out is not None else system.data.train
    mse = F.mse_loss(dec(ch(ch.normalize(enc(x)), db)), x)
    return float(10 * torch.log10(4.0 / mse))


@torch.no_grad()
def baselines(system: "AeSystem") -> list[dict[str, Any]]:
    """Uncoded BPSK (exact), Hamming(7,4) hard (exact) and soft-ML (Monte Carlo), and ML decoding
    of the learned code (the receiver's ceiling)."""
    s, ev = system.cfg.system, system.cfg.eval
    rows = []
    gen = system.streams.fresh("ae.baselines", system.device)
    cb, hc = system.codebook(), hamming74_codebook().to(system.device)
    for db in system.cfg.channel.eval_db:
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


def table(rows: list[dict[str, Any]], kind: str) -> dict[str, dict[str, float]]:
    """``{curve: {db: bler or psnr}}``."""
    key = "bler" if kind == "messages" else "psnr"
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        out.setdefault(r["curve"], {})[f"{r.get('ebn0_db', r.get('snr_db')):g}"] = r[key]
    return out


def write_rows(out: Path, rows: list[dict[str, Any]], kind: str) -> None:
    cols = ["curve", "ebn0_db", "bler", "ber", "blocks", "errors"] if kind == "messages" else ["curve", "snr_db", "psnr"]
    name = "bler.csv" if kind == "messages" else "psnr.csv"
    with open(out / name, "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in cols})


def plot(out: Path, rows: list[dict[str, Any]], n: int, k: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.5))
    curves: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r["bler"] and r["bler"] > 0:
            curves.setdefault(r["curve"], []).append((r["ebn0_db"], r["bler"]))
    for name, pts in curves.items():
        pts.sort()
        style = "--" if "BPSK" in name or "Hamming" in name or "ML decoding" in name else "-o"
        ax.semilogy(*zip(*pts), style, label=name, markersize=4)
    ax.set_xlabel("Eb/N0 [dB]")
    ax.set_ylabel("block error rate")
    ax.set_title(f"({n},{k}) autoencoder over AWGN")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "bler.png", dpi=110)
    plt.close(fig)
