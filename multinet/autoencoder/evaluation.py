"""Scoring an autoencoder: BLER / BER by Monte Carlo (messages; bit systems inside their LDPC code,
``coded``) or PSNR (images) under every channel, the classical baselines, and the files a run
writes (``bler.csv`` with 95 % intervals, ``bler.png`` with error bars, ``constellation.png``)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ..nets.freeze import eval_mode
from ..state.checkpoint import atomic_path
from . import coded
from .bler import (hamming74_codebook, hamming74_hard_bler, ml_decoder, monte_carlo, result_row, uncoded_bpsk_bler)
from .channels import Channel, sionna_available

if TYPE_CHECKING:
    from .system import AeSystem

__all__ = ["evaluate", "baselines", "write_rows", "plot", "plot_constellation", "table", "COLUMNS"]

COLUMNS = ["curve", "ebn0_db", "bler", "bler_low", "bler_high", "ber", "ber_low", "ber_high", "blocks", "errors"]


@torch.no_grad()
def evaluate(system: "AeSystem", label: str) -> list[dict[str, Any]]:
    """BLER/BER (messages) or PSNR (images) of the system as it is now, under every channel."""
    if system.cfg.system.kind == "bits":
        return coded.learned_ldpc_rows(system, label)
    rows = []
    k = system.cfg.system.k
    with eval_mode(system.nets["decoder"].module) as dec:
        gen = system.streams.fresh("ae.eval", system.device)
        cb = system.codebook() if system.cfg.system.kind == "messages" else None
        for ch_name, ch in system.channels.items():
            curve = f"autoencoder after {label}" + ("" if ch_name == "train" else f" [{ch_name} channel]")
            for db in ch.cfg.eval_db:
                if cb is not None:
                    r = _mc(system, cb, dec, db, gen, ch)
                    rows.append(result_row(curve, db, r.blocks, r.errors, r.bit_errors, k))
                else:
                    rows.append({"curve": curve, "snr_db": db, "psnr": _psnr(system, ch, db)})
    return rows


def _mc(system: "AeSystem", cb: torch.Tensor, decode: Any, db: float, gen: torch.Generator, ch: Channel) -> Any:
    ev = system.cfg.eval
    # The fast path draws AWGN itself; any other channel (fading, Sionna, a quantiser) is called.
    channel = None if ch.plain_awgn else (lambda x, d: ch(x, d, gen))
    return monte_carlo(cb, decode, system.cfg.system.k, db, ev.min_errors, ev.max_blocks, ev.batch,
                       gen if ch.plain_awgn else None, channel)


def _psnr(system: "AeSystem", ch: Channel, db: float) -> float:
    enc, dec = system.nets["encoder"].module, system.nets["decoder"].module
    x = system.data.held_out if system.data.held_out is not None else system.data.train
    mse = F.mse_loss(dec(ch(ch.normalize(enc(x)), db)), x)
    return float(10 * torch.log10(4.0 / mse))


@torch.no_grad()
def baselines(system: "AeSystem") -> list[dict[str, Any]]:
    """Message systems: uncoded BPSK (exact), Hamming(7,4) hard (exact), soft-ML (Monte Carlo) and
    Sionna's OSD, and ML decoding of the learned code (the receiver's ceiling). Bit systems: QAM
    with the same LDPC / Polar code (Sionna). All over AWGN; Sionna's rows only when it is installed."""
    s, ev = system.cfg.system, system.cfg.eval
    with_sionna = ev.sionna_baselines and sionna_available()
    if s.kind == "bits":
        return coded.qam_baselines(system) if with_sionna else []
    rows: list[dict[str, Any]] = []
    gen = system.streams.fresh("ae.baselines", system.device)
    cb, hc = system.codebook(), hamming74_codebook().to(system.device)

    def exact(curve: str, db: float, bler: float) -> dict[str, Any]:
        return {**dict.fromkeys(COLUMNS), "curve": curve, "ebn0_db": db, "bler": bler}
    for db in system.cfg.channel.eval_db:
        rows.append(exact(f"uncoded BPSK ({s.k},{s.k})", db, uncoded_bpsk_bler(db, s.k)))
        if (s.n, s.k) == (7, 4):
            rows.append(exact("Hamming(7,4) hard", db, hamming74_hard_bler(db)))
            r = monte_carlo(hc, ml_decoder(hc), 4, db, ev.ml_errors, 20 * ev.max_blocks, ev.batch, gen)
            rows.append(result_row("Hamming(7,4) ML", db, r.blocks, r.errors, r.bit_errors, 4))
        r = monte_carlo(cb, ml_decoder(cb), s.k, db, ev.min_errors, ev.max_blocks, ev.batch, gen)
        rows.append(result_row("learned code, ML decoding", db, r.blocks, r.errors, r.bit_errors, s.k))
    if with_sionna and (s.n, s.k) == (7, 4):
        rows += coded.hamming_osd_rows(system)
    return rows


def table(rows: list[dict[str, Any]], kind: str) -> dict[str, dict[str, float]]:
    """``{curve: {db: bler or psnr}}``."""
    key = "psnr" if kind == "images" else "bler"
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        out.setdefault(r["curve"], {})[f"{r.get('ebn0_db', r.get('snr_db')):g}"] = r[key]
    return out


def write_rows(out: Path, rows: list[dict[str, Any]], kind: str) -> None:
    cols = COLUMNS if kind != "images" else ["curve", "snr_db", "psnr"]
    name = "bler.csv" if kind != "images" else "psnr.csv"
    with atomic_path(out / name) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in cols})


def plot(out: Path, rows: list[dict[str, Any]], title: str) -> None:
    """BLER against Eb/N0, one line per curve, Monte Carlo points with their 95 % intervals."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    curves: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("bler"):
            curves.setdefault(r["curve"], []).append(r)
    for name, pts in curves.items():
        pts.sort(key=lambda r: r["ebn0_db"])
        x, y = [r["ebn0_db"] for r in pts], [r["bler"] for r in pts]
        learned = name.startswith("autoencoder")
        if pts[0].get("bler_low") is not None:
            err = [[b - (r["bler_low"] or b * 1e-3) for r, b in zip(pts, y)], [r["bler_high"] - b for r, b in zip(pts, y)]]
            ax.errorbar(x, y, yerr=err, fmt="-o" if learned else "--.", label=name, markersize=4, capsize=2)
        else:
            ax.plot(x, y, "--", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("Eb/N0 [dB]")
    ax.set_ylabel("block error rate")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out / "bler.png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def plot_constellation(out: Path, points: torch.Tensor, labels: list[str] | None, title: str) -> None:
    """The transmitted points in the I/Q plane (one complex use), labelled with their bits."""
    plt = _pyplot()
    pts = points.detach().cpu().float() * 0.5 ** 0.5  # unit average energy per complex symbol
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(pts[:, 0], pts[:, 1], s=18)
    for i, (a, b) in enumerate(pts.tolist()):
        ax.annotate(labels[i] if labels else str(i), (a, b), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_aspect("equal")
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel("in-phase")
    ax.set_ylabel("quadrature")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(out / "constellation.png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def _pyplot() -> Any:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
