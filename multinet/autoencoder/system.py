"""The autoencoder as a system: encoder → channel → decoder, trained in phases (joint, then decoder).

Setup order: channels and data → networks (each through ``Net``'s build order) → phases, their
lengths scaled to ``train.steps``. After every phase the system is evaluated (BLER / BER, or
PSNR for images) and the rows are kept in the system's checkpointed state, so a resumed run
reports exactly what an uninterrupted one does.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import distributed
from ..data import DataSource, LazyData
from ..engine import Engine, Phase
from ..freeze import eval_mode
from ..handlers import AtSteps
from ..system import RunContext, System
from . import evaluation
from .channel import Channel
from .config import AeRecipe, phase_bounds
from .networks import ImageDecoder, ImageEncoder, MessageDecoder, MessageEncoder

__all__ = ["AeSystem"]

_NETS = {"joint": ("encoder", "decoder"), "decoder": ("decoder",), "encoder": ("encoder",)}


class AeSystem(System):
    Config = AeRecipe
    default_recipe = "ae_7_4"
    resume_may_change = ("data.root", "data.workers", "data.download", "data.batch_size", "system.batch_size",
                         "channel.eval_db")
    # evaluate CKPT may score under other channels and Eb/N0 points.
    evaluate_may_change = ("eval.", "channel.", "finetune_channel.")

    def __init__(self, cfg: AeRecipe, device: torch.device) -> None:
        super().__init__(cfg, device)
        s = cfg.system
        self.m = 2 ** s.k
        self.channels = {"train": Channel(cfg.channel, s.n, s.k, self.streams.get("ae.channel.train", device))}
        if cfg.finetune_channel is not None:
            self.channels["finetune"] = Channel(cfg.finetune_channel, s.n, s.k,
                                                self.streams.get("ae.channel.finetune", device))
        self.msg_gen = self.streams.get("ae.messages", device)
        # Images: training loads them now; a saved run being evaluated loads them when asked.
        self.images = (LazyData(cfg.data, device, cfg.seed, now=not self.inference, shape=self.saved.get("shape"))
                       if s.kind == "images" else None)
        if self.images is None:
            enc, dec = MessageEncoder(self.m, s.n, s.hidden), MessageDecoder(self.m, s.n, s.hidden)
        else:
            shape = self.images.shape
            enc, dec = ImageEncoder(shape, s.n, s.hidden), ImageDecoder(shape, s.n, s.hidden)
        self.net("encoder", enc)
        self.net("decoder", dec)
        self.bounds = phase_bounds(cfg.phases, cfg.train.steps)
        self.names = [f"{i}_{p.name}" if len(cfg.phases) > 1 else p.name for i, p in enumerate(cfg.phases)]
        self.results: list[dict[str, Any]] = []  # rows evaluated at each phase's end

    @property
    def data(self) -> DataSource | None:
        """The images of an image system (loaded on first use when built for inference)."""
        return self.images.get() if self.images is not None else None

    def resume_from(self, saved: AeRecipe) -> None:
        """A resumed run of another length keeps the phase boundaries it was trained with; only the
        last phase moves its end (a run extended after its switch never goes back to joint training)."""
        old = phase_bounds(saved.phases, saved.train.steps)
        if old == self.bounds:
            return
        total = self.cfg.train.steps
        if total <= old[-1][0]:
            raise ValueError(f"train.steps={total} would end before phase {self.names[-1]!r} starts (step "
                             f"{old[-1][0]}); the phase boundaries of a resumed run do not move")
        self.bounds = old[:-1] + [(old[-1][0], total)]
        print(f"note: {saved.train.steps} -> {total} steps: phase {self.names[-1]!r} now ends at step {total} "
              f"(was {old[-1][1]}); earlier phase boundaries stay where they were", file=sys.stderr)

    def phases(self) -> list[Phase]:
        cfg = self.cfg
        spans = {c: [ab for p, ab in zip(cfg.phases, self.bounds) if p.channel == c] for c in ("train", "finetune")}
        return [Phase(name, _NETS[p.name], self.step_fn(p.channel, spans[p.channel]), start=a, stop=b)
                for name, p, (a, b) in zip(self.names, cfg.phases, self.bounds)]

    def engine_options(self) -> dict[str, Any]:
        return {"stateful": {"data": self.data.sampler}} if self.data is not None else {}

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

    # -- evaluation --------------------------------------------------------------------------
    @torch.no_grad()
    def codebook(self) -> torch.Tensor:
        """The normalised codeword of each message (M × n)."""
        with eval_mode(self.nets["encoder"].module) as enc:
            return self.channels["train"].normalize(enc.codebook())

    def evaluate(self) -> dict[str, Any]:
        """The system as it is now under every channel (``evaluate CKPT`` with ``channel.eval_db=[...]``
        or ``channel.fading=rayleigh`` re-scores a saved run at other points or another channel)."""
        rows = evaluation.evaluate(self, self.names[-1])
        return {"curves": evaluation.table(rows, self.cfg.system.kind)}

    # -- in a training run ---------------------------------------------------------------------
    def handlers(self, ctx: RunContext) -> list[Any]:
        ends = {b: name for name, (_, b) in zip(self.names, self.bounds)}

        def after_phase(step: int) -> None:
            rows = evaluation.evaluate(self, ends[step])
            self.results.extend({**r, "after_step": step} for r in rows)
            key = "bler" if self.cfg.system.kind == "messages" else "psnr"
            ctx.tracker.scalars(step, {f"eval/{r['curve']}/{r.get('ebn0_db', r.get('snr_db'))}dB": r[key]
                                       for r in rows})
            evaluation.write_rows(ctx.out, self.results, self.cfg.system.kind)  # survives a later crash
        return [AtSteps(list(ends), after_phase)]

    def finish(self, ctx: RunContext) -> dict[str, Any]:
        s = self.cfg.system
        summary: dict[str, Any] = {"recipe": self.cfg.description,
                                   "system": f"({s.n},{s.k})" if s.kind == "messages" else "images"}
        if not self.results:  # nothing evaluated in this run's record: evaluate the final state once
            self.results.extend(evaluation.evaluate(self, self.names[-1]))
        rows = list(self.results)
        if s.kind == "messages":
            np.save(ctx.out / "codebook.npy", self.codebook().cpu().numpy())
            if self.cfg.eval.baselines:
                rows += evaluation.baselines(self)
            evaluation.plot(ctx.out, rows, s.n, s.k)
        evaluation.write_rows(ctx.out, rows, s.kind)
        summary["curves"] = evaluation.table(rows, s.kind)
        return summary

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"results": [dict(r) for r in self.results]}
        if self.images is not None:
            state["shape"] = list(self.images.shape)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Rows of a phase whose end moved (a run extended on resume) are evaluated again at its new end.
        ends = {b for _, b in self.bounds}
        self.results = [dict(r) for r in state.get("results", []) if r.get("after_step") in ends]
