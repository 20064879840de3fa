"""Coded links with Sionna's codes: the bit system under a 5G LDPC code, and the classical baselines.

Every link here is ``bits → encoder → symbols → channel → LLRs → decoder → bits`` run by one
Monte Carlo loop (``coded_monte_carlo``) until ``min_errors`` block errors or ``max_blocks``. The
information bits and the channel noise come from the evaluation's own generator (the channel
object is the system's, so a Sionna or a built-in channel is the same here); Sionna's encoders,
decoders, mappers and demappers draw nothing. LLRs follow Sionna: ln p(b=1) / p(b=0).

- the learned link: the system's constellation and neural demapper inside a 5G LDPC code;
- baselines at the same code and rate: Gray QAM / PAM with Sionna's exact ("app") demapper under
  5G LDPC and under 5G Polar with SCL decoding; Hamming(7,4) with ordered-statistics decoding
  (``OSDecoder``, t = k = 4: maximum likelihood) for the (7,4) message system.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..nets.freeze import eval_mode
from .bler import learned_curve, result_row
from .channels import Channel, require_sionna
from .recipe import AeEvalConfig, LinkConfig

__all__ = ["coded_monte_carlo", "learned_ldpc_rows", "qam_baselines", "hamming_osd_rows"]

Trial = Callable[[torch.Tensor], torch.Tensor]  # information bits (B, k) -> decoded bits (B, k)


@torch.no_grad()
def coded_monte_carlo(trial: Trial, k: int, min_errors: int, max_blocks: int, batch: int, gen: torch.Generator,
                      device: torch.device) -> tuple[int, int, int]:
    """(blocks, block errors, bit errors) of ``trial`` on uniform random information bits."""
    blocks = errors = bit_errors = 0
    while errors < min_errors and blocks < max_blocks:
        b = min(batch, max_blocks - blocks)
        u = torch.randint(0, 2, (b, k), generator=gen, device=device).float()
        wrong = trial(u) != u
        errors += int(wrong.any(1).sum())
        bit_errors += int(wrong.sum())
        blocks += b
    return blocks, errors, bit_errors


def _to_index(c: torch.Tensor, m: int) -> torch.Tensor:
    """Codeword bits (B, n) → symbol indices (B·n/m,), the first bit most significant."""
    weights = 2 ** torch.arange(m - 1, -1, -1, device=c.device)
    return (c.reshape(-1, m).long() * weights).sum(1)


def _ldpc(s: LinkConfig, device: torch.device) -> tuple[Any, Any]:
    sp = require_sionna("an LDPC-coded evaluation of a bit system")
    dev = str(device)
    enc = sp.fec.ldpc.LDPC5GEncoder(s.code_k, s.code_n, device=dev)
    return enc, sp.fec.ldpc.LDPC5GDecoder(enc, hard_out=True, num_iter=20, device=dev)


def _sweep(curve: str, trial_at: Callable[[float], Trial], dbs: list[float], gen: torch.Generator, k: int,
           ev: AeEvalConfig) -> list[dict[str, Any]]:
    rows = []
    for db in dbs:
        blocks, errors, bit_errors = coded_monte_carlo(trial_at(db), k, ev.min_errors, ev.max_blocks, ev.code_batch,
                                                       gen, gen.device)
        rows.append(result_row(curve, db, blocks, errors, bit_errors, k))
    return rows


@torch.no_grad()
def learned_ldpc_rows(constellation: nn.Module, demapper: nn.Module, channels: dict[str, Channel], s: LinkConfig,
                      ev: AeEvalConfig, fresh: Callable[[], torch.Generator], label: str) -> list[dict[str, Any]]:
    """BLER / BER of the learned ``constellation`` and ``demapper`` inside the 5G LDPC code, per
    channel, each channel's Monte Carlo drawing from a ``fresh()`` generator."""
    ldpc_enc, ldpc_dec = _ldpc(s, next(constellation.parameters()).device)
    rows = []
    with eval_mode(constellation) as const, eval_mode(demapper) as demap:
        points = const.codebook()
        for name, ch in channels.items():
            gen = fresh()

            def trial_at(db: float, ch: Channel = ch) -> Trial:
                def trial(u: torch.Tensor) -> torch.Tensor:
                    c = ldpc_enc(u)
                    llr = demap(ch(points[_to_index(c, s.bits_per_symbol)], db, gen))
                    return ldpc_dec(llr.reshape(c.shape))
                return trial
            curve = learned_curve(f"{label}, 5G LDPC ({s.code_n},{s.code_k})", name)
            rows += _sweep(curve, trial_at, ch.cfg.eval_db, gen, s.code_k, ev)
    return rows


@torch.no_grad()
def qam_baselines(s: LinkConfig, ev: AeEvalConfig, ch: Channel, fresh: Callable[[], torch.Generator],
                  device: torch.device) -> list[dict[str, Any]]:
    """Gray QAM (PAM for one bit per symbol) with the exact demapper, under 5G LDPC and 5G Polar
    (SCL) at the system's (n, k), over the training channel (an AWGN one: the demapper is
    coherent and needs the noise power) ``ch``; each code's Monte Carlo draws from a ``fresh()``
    generator."""
    sp = require_sionna("the QAM baselines")
    dev = str(device)
    m = s.bits_per_symbol
    kind = "qam" if m % 2 == 0 else "pam"
    mapper = sp.mapping.Mapper(kind, m, device=dev)
    demapper = sp.mapping.Demapper("app", kind, m, device=dev)
    ldpc_enc, ldpc_dec = _ldpc(s, device)
    polar_enc = sp.fec.polar.Polar5GEncoder(s.code_k, s.code_n, device=dev)
    polar_dec = sp.fec.polar.Polar5GDecoder(polar_enc, dec_type="SCL", list_size=ev.polar_list_size, device=dev)
    name = f"{2 ** m}-{kind.upper()}"
    rows = []
    for code, enc, dec in ((f"5G LDPC ({s.code_n},{s.code_k})", ldpc_enc, ldpc_dec),
                           (f"5G Polar SCL-{ev.polar_list_size} ({s.code_n},{s.code_k})", polar_enc, polar_dec)):
        gen = fresh()

        def trial_at(db: float, enc: Any = enc, dec: Any = dec) -> Trial:
            no = sp.utils.ebnodb2no(torch.tensor(db), m, s.code_rate, device=dev)

            def trial(u: torch.Tensor) -> torch.Tensor:
                c = enc(u)
                x = mapper(c.reshape(-1, m)).reshape(-1)  # unit-energy complex symbols
                xr = torch.stack([x.real, x.imag], 1) * 2 ** 0.5  # the channel's ‖x‖² = 2 per use
                y = ch(xr, db, gen) * 0.5 ** 0.5
                llr = demapper(torch.complex(y[:, 0], y[:, 1]), no)
                return dec(llr.reshape(c.shape))
            return trial
        rows += _sweep(f"{name}, {code}", trial_at, ch.cfg.eval_db, gen, s.code_k, ev)
    return rows


@torch.no_grad()
def hamming_osd_rows(ev: AeEvalConfig, eval_db: list[float], gen: torch.Generator) -> list[dict[str, Any]]:
    """Hamming(7,4), BPSK, soft ordered-statistics decoding (ML at t = 4), by Sionna, over AWGN at
    ``eval_db``, drawing from ``gen`` (on the device it runs on)."""
    sp = require_sionna("the Sionna Hamming(7,4) baseline")
    dev = str(gen.device)
    pcm, k, n, _ = sp.fec.utils.load_parity_check_examples(0)
    enc = sp.fec.linear.LinearEncoder(pcm, is_pcm=True, device=dev)
    dec = sp.fec.linear.OSDecoder(encoder=enc, t=k, device=dev)
    rows = []
    for db in eval_db:
        no = sp.utils.ebnodb2no(torch.tensor(db), 1, k / n, device=dev)
        sigma2 = no / 2  # noise per real BPSK dimension
        blocks = errors = 0
        while errors < ev.min_errors and blocks < ev.osd_max_blocks:
            b = min(10 * ev.code_batch, ev.osd_max_blocks - blocks)
            c = enc(torch.randint(0, 2, (b, k), generator=gen, device=gen.device).float())
            y = (1 - 2 * c) + sigma2.sqrt() * torch.randn(c.shape, generator=gen, device=c.device)
            errors += int((dec(-2 * y / sigma2) != c).any(1).sum())  # OSD decides the codeword
            blocks += b
        rows.append(result_row("Hamming(7,4) OSD (Sionna)", db, blocks, errors, None, k))
    return rows
