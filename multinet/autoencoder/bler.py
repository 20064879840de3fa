"""Block and bit error rates by Monte Carlo, and the classic baselines (TARGETS.md §1).

Monte Carlo runs batched under ``no_grad`` on the device until ``min_errors`` block errors or
``max_blocks`` blocks. Baselines: uncoded BPSK (exact), Hamming(7,4) hard decision (exact),
maximum-likelihood decoding of any codebook over AWGN (nearest codeword; Monte Carlo) — used for
Hamming(7,4) soft-ML and for the learned code itself (the receiver's ceiling).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .channels import ebn0_to_sigma

__all__ = ["McResult", "monte_carlo", "learned_curve", "uncoded_bpsk_bler", "hamming74_hard_bler", "hamming74_codebook",
           "ml_decoder", "MlDecoder", "wilson_interval", "result_row"]


def _q(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2))


def uncoded_bpsk_bler(ebn0_db: float, k: int) -> float:
    """Exact BLER of ``k`` uncoded BPSK bits over AWGN at ``ebn0_db``: 1 − (1 − Q(√(2 Eb/N0)))^k."""
    return 1 - (1 - _q(math.sqrt(2 * 10 ** (ebn0_db / 10)))) ** k


def hamming74_hard_bler(ebn0_db: float) -> float:
    """Exact BLER of Hamming(7,4) with hard decisions (one bit error corrected) over AWGN at
    ``ebn0_db``: 1 − (1 − p)^7 − 7p(1 − p)^6 with p = Q(√(2 · 4/7 · Eb/N0))."""
    p = _q(math.sqrt(2 * (4 / 7) * 10 ** (ebn0_db / 10)))
    return 1 - (1 - p) ** 7 - 7 * p * (1 - p) ** 6


def hamming74_codebook() -> torch.Tensor:
    """The 16 BPSK codewords (±1, ‖x‖² = 7) of the systematic Hamming(7,4) code; row m = message m."""
    g = torch.tensor([[1, 0, 0, 0, 1, 1, 0], [0, 1, 0, 0, 1, 0, 1], [0, 0, 1, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1, 1]])
    bits = (torch.arange(16)[:, None] >> torch.arange(3, -1, -1)) & 1
    return 1.0 - 2.0 * ((bits @ g) % 2).float()


class MlDecoder:
    """Nearest codeword = maximum likelihood over AWGN for equal-energy codewords."""

    def __init__(self, codebook: torch.Tensor) -> None:
        self.cb = codebook.float()
        self.half_sq = 0.5 * self.cb.pow(2).sum(1)

    def __call__(self, y: torch.Tensor) -> torch.Tensor:  # argmax y·c − ‖c‖²/2, as "logits"
        return y @ self.cb.t() - self.half_sq

    def augmented(self, rows: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """Scores of received blocks given with a constant-1 last column (see ``monte_carlo``):
        the −‖c‖²/2 offsets ride in the one matmul."""
        w = torch.cat([self.cb.t(), -self.half_sq[None]]).contiguous()
        out = w.new_empty(rows, w.shape[1])
        return lambda y: torch.mm(y, w, out=out[:len(y)])


def ml_decoder(codebook: torch.Tensor) -> MlDecoder:
    """A maximum-likelihood (nearest-codeword) decoder over AWGN for ``codebook`` (M × n), giving scores like logits."""
    return MlDecoder(codebook)


@dataclass
class McResult:
    ebn0_db: float
    bler: float
    ber: float
    blocks: int
    errors: int
    bit_errors: int = 0


def wilson_interval(errors: int, blocks: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (``z`` = 1.96: 95 %) of a block error rate ``errors`` / ``blocks``:
    (low, high), with low ≤ errors / blocks ≤ high inside [0, 1]."""
    if blocks == 0:
        return 0.0, 1.0
    p = errors / blocks
    d = 1 + z * z / blocks
    c = (p + z * z / (2 * blocks)) / d
    h = z * math.sqrt(p * (1 - p) / blocks + z * z / (4 * blocks * blocks)) / d
    # At p = 0 or 1 one bound equals p exactly, but c ∓ h rounds to a hair on the wrong side of it
    # (1 − 2⁻⁵³ with every block wrong): hold the bounds on p's sides.
    return max(0.0, min(p, c - h)), min(1.0, max(p, c + h))


@torch.inference_mode()
def monte_carlo(codebook: torch.Tensor, decode: Callable[[torch.Tensor], torch.Tensor], k: int, ebn0_db: float,
                min_errors: int = 100, max_blocks: int = 10_000_000, batch: int = 200_000,
                generator: torch.Generator | None = None,
                channel: Callable[[torch.Tensor, float], torch.Tensor] | None = None) -> McResult:
    """BLER/BER of ``decode`` for the normalised ``codebook`` (M × n) at ``ebn0_db``.

    Messages are stratified (each of the M messages equally often in every batch: unbiased for
    uniform messages, with less variance than drawing them); the noise is fresh for every block.
    On the CPU a batch is decoded in cache-sized chunks, and a block counts as wrong when another
    message scores strictly higher than the sent one (an exact tie, of probability zero under
    continuous noise, counts as right). Counts stay on the device and the host reads them once
    per batch to decide whether to stop.
    """
    m, n = codebook.shape
    dev = codebook.device
    sigma = ebn0_to_sigma(ebn0_db, k / n)
    chunk = batch if dev.type == "cuda" else min(batch, 16384)
    msg_all = torch.arange(batch, device=dev) % m
    x_all = codebook[msg_all]
    # CPU fast path: a decoder that offers ``augmented(rows)`` scores blocks given with a
    # constant-1 last column, so its first bias rides in the matmul and its buffers are reused.
    score = decode.augmented(chunk) if dev.type == "cpu" and channel is None and hasattr(decode, "augmented") else None
    if score is not None:
        y_aug, noise = torch.ones(chunk, n + 1, device=dev), torch.empty(chunk, n, device=dev)
    else:
        y_all = torch.empty_like(x_all)
    popcount = torch.tensor([bin(i).count("1") for i in range(m)], device=dev)
    counts = torch.zeros(2, dtype=torch.long, device=dev)  # block errors, bit errors
    blocks = errors = 0
    while errors < min_errors and blocks < max_blocks:
        b = min(batch, max_blocks - blocks)
        for i in range(0, b, chunk):
            j = min(b, i + chunk)
            msg, x = msg_all[i:j], x_all[i:j]
            if score is not None:  # the same noise draws as below, into a reused buffer
                torch.add(x, noise[:j - i].normal_(0.0, sigma, generator=generator), out=y_aug[:j - i, :n])
                scores = score(y_aug[:j - i])
            else:
                y = y_all[i:j].normal_(0.0, sigma, generator=generator).add_(x) if channel is None else channel(x, ebn0_db)
                scores = decode(y)
            if dev.type == "cuda":  # dense and sync-free
                diff = scores.argmax(1) ^ msg
                counts[0] += (diff != 0).sum()
            else:
                # A block is wrong when another score beats the sent message's: a row max and a
                # gather, 3× cheaper than an argmax over every row; only the (rare) wrong rows
                # need their decision, for the bit errors.
                wrong = (scores.gather(1, msg[:, None]).squeeze(1) < scores.amax(1)).nonzero().squeeze(1)
                diff = scores[wrong].argmax(1) ^ msg[wrong]
                counts[0] += len(wrong)
            counts[1] += popcount[diff].sum()
        blocks += b
        errors, bit_errors = counts.tolist()
    return McResult(ebn0_db, errors / blocks, bit_errors / (blocks * k), blocks, errors, bit_errors)


def learned_curve(label: str, channel: str) -> str:
    """The name of the learned system's curve after phase ``label`` (``label`` may carry the code)
    under ``channel`` (``train``, or another one the system evaluates on)."""
    return f"autoencoder after {label}" + ("" if channel == "train" else f" [{channel} channel]")


def result_row(curve: str, ebn0_db: float, blocks: int, errors: int, bit_errors: int | None, bits_per_block: int
               ) -> dict:
    """One row of ``bler.csv``: BLER and BER with 95 % Wilson intervals. The BER interval treats
    bits as independent, which errors inside one block are not: read it as a rough guide."""
    lo, hi = wilson_interval(errors, blocks)
    row = {"curve": curve, "ebn0_db": ebn0_db, "bler": errors / blocks if blocks else None, "bler_low": lo,
           "bler_high": hi, "ber": None, "ber_low": None, "ber_high": None, "blocks": blocks, "errors": errors}
    if bit_errors is not None and blocks:
        n_bits = blocks * bits_per_block
        row["ber"] = bit_errors / n_bits
        row["ber_low"], row["ber_high"] = wilson_interval(bit_errors, n_bits)
    return row
