"""Scoring an autoencoder: BLER / BER by Monte Carlo (messages; bit systems inside their LDPC code,
``coded``) or PSNR (images) under every channel, the classical baselines, and the files a run
writes (``bler.csv`` with 95 % intervals, ``bler.png`` with error bars, ``constellation.png``)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..nets.freeze import eval_mode
from ..state.checkpoint import atomic_path
from . import coded
from .bler import (hamming74_codebook, hamming74_hard_bler, learned_curve, ml_decoder, monte_carlo, result_row,
                   uncoded_bpsk_bler)
from .channels import Channel, sionna_available
from .recipe import AeEvalConfig, LinkConfig

__all__ = ["message_rows", "image_rows", "message_baselines", "write_rows", "plot", "plot_constellation", "table",
           "COLUMNS", "IMAGE_COLUMNS"]

COLUMNS = ["curve", "ebn0_db", "bler", "bler_low", "bler_high", "ber", "ber_low", "ber_high", "blocks", "errors"]
IMAGE_COLUMNS = ["curve", "snr_db", "psnr"]


@torch.no_grad()
def message_rows(codebook: torch.Tensor, decoder: nn.Module, channels: dict[str, Channel], k: int,
                 ev: AeEvalConfig, gen: torch.Generator, label: str) -> list[dict[str, Any]]:
    """BLER / BER of ``codebook`` (M × n) and ``decoder`` under every channel, at its ``eval_db``."""
    rows = []
    with eval_mode(decoder) as dec:
        for ch_name, ch in channels.items():
            for db in ch.cfg.eval_db:
                # The fast path draws AWGN itself; any other channel (fading, Sionna, a quantiser) is called.
                channel = None if ch.plain_awgn else (lambda x, d, ch=ch: ch(x, d, gen))
                r = monte_carlo(codebook, dec, k, db, ev.min_errors, ev.max_blocks, ev.batch,
                                gen if ch.plain_awgn else None, channel)
                rows.append(result_row(learned_curve(label, ch_name), db, r.blocks, r.errors, r.bit_errors, k))
    return rows


@torch.no_grad()
def image_rows(encoder: nn.Module, decoder: nn.Module, channels: dict[str, Channel], images: torch.Tensor,
               label: str) -> list[dict[str, Any]]:
    """PSNR of ``images`` sent through ``encoder`` → each channel → ``decoder``, at its ``eval_db``."""
    rows = []
    with eval_mode(decoder) as dec:
        for ch_name, ch in channels.items():
            for db in ch.cfg.eval_db:
                mse = F.mse_loss(dec(ch(ch.normalize(encoder(images)), db)), images)
                rows.append({"curve": learned_curve(label, ch_name), "snr_db": db, "psnr": float(10 * torch.log10(4.0 / mse))})
    return rows


@torch.no_grad()
def message_baselines(codebook: torch.Tensor, s: LinkConfig, ev: AeEvalConfig, eval_db: list[float],
                      gen: torch.Generator, osd_gen: torch.Generator) -> list[dict[str, Any]]:
    """Uncoded BPSK (exact), Hamming(7,4) hard (exact), soft-ML (Monte Carlo) and Sionna's OSD
    (``osd_gen``, when Sionna is installed and asked for), and ML decoding of the learned
    ``codebook`` (the receiver's ceiling), over AWGN."""
    rows: list[dict[str, Any]] = []
    hc = hamming74_codebook().to(codebook.device)

    def exact(curve: str, db: float, bler: float) -> dict[str, Any]:
        return {**dict.fromkeys(COLUMNS), "curve": curve, "ebn0_db": db, "bler": bler}
    for db in eval_db:
        rows.append(exact(f"uncoded BPSK ({s.k},{s.k})", db, uncoded_bpsk_bler(db, s.k)))
        if (s.n, s.k) == (7, 4):
            rows.append(exact("Hamming(7,4) hard", db, hamming74_hard_bler(db)))
            r = monte_carlo(hc, ml_decoder(hc), 4, db, ev.ml_errors, 20 * ev.max_blocks, ev.batch, gen)
            rows.append(result_row("Hamming(7,4) ML", db, r.blocks, r.errors, r.bit_errors, 4))
        r = monte_carlo(codebook, ml_decoder(codebook), s.k, db, ev.min_errors, ev.max_blocks, ev.batch, gen)
        rows.append(result_row("learned code, ML decoding", db, r.blocks, r.errors, r.bit_errors, s.k))
    if ev.sionna_baselines and sionna_available() and (s.n, s.k) == (7, 4):
        rows += coded.hamming_osd_rows(ev, eval_db, osd_gen)
    return rows


def table(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, float]]:
    """``{curve: {db: rows' key}}`` (BLER or PSNR)."""
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        out.setdefault(r["curve"], {})[f"{r.get('ebn0_db', r.get('snr_db')):g}"] = r[key]
    return out


def write_rows(path: Path, rows: list[dict[str, Any]], cols: list[str]) -> None:
    """``rows`` as CSV with columns ``cols`` (an empty cell for None), replacing ``path`` whole."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
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
            # Never negative, even for rows from an older bler.csv whose bound rounded past the BLER.
            err = [[max(0.0, b - (r["bler_low"] or b * 1e-3)) for r, b in zip(pts, y)],
                   [max(0.0, r["bler_high"] - b) for r, b in zip(pts, y)]]
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
