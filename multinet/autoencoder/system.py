"""The autoencoder as a system: encoder → channel → decoder, trained in phases (joint, then decoder).

Setup order: channels and data → networks (each through ``Net``'s build order) → phases, their
lengths scaled to ``train.steps``. With ``training = "model_free"`` a joint phase is two engine
phases on every iteration: the receiver's supervised step, then the transmitter's policy-gradient
step (``model_free``); nothing differentiates through the channel. After every phase the system is evaluated (BLER / BER, or
PSNR for images) and the rows are kept in the system's checkpointed state, so a resumed run
reports exactly what an uninterrupted one does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import distributed
from ..data import DataSource, LazyData
from ..engine import Engine, Phase
from ..handlers import AtSteps
from ..nets.freeze import eval_mode
from ..run.system import EngineOptions, RunContext, System, note
from ..state.checkpoint import atomic_path
from . import evaluation
from .channels import Channel, make_channel
from .config import AeRecipe, phase_bounds
from .model_free import perturb, policy_loss
from .networks import (Constellation, ImageDecoder, ImageEncoder, MessageDecoder, MessageEncoder, NeuralDemapper,
                       bit_labels)

__all__ = ["AeSystem"]

_NETS = {"joint": ("encoder", "decoder"), "decoder": ("decoder",), "encoder": ("encoder",)}


class AeSystem(System):
    Config = AeRecipe
    default_recipe = "ae_7_4"
    stream_seeds = {"ae.baselines": 7, "ae.channel.train": 11, "ae.channel.finetune": 12, "ae.messages": 13,
                    "ae.eval": 99}
    resume_may_change = ("data.root", "data.workers", "data.download", "data.batch_size", "system.batch_size",
                         "channel.eval_db")
    # evaluate CKPT may score under other channels and Eb/N0 points.
    evaluate_may_change = ("eval.", "channel.", "finetune_channel.")

    def __init__(self, cfg: AeRecipe, device: torch.device, **build: Any) -> None:
        super().__init__(cfg, device, **build)
        s = cfg.system
        self.m = 2 ** (s.bits_per_symbol if s.kind == "bits" else s.k)
        # A bit system sends one complex symbol (2 real uses) carrying m bits at the code's rate.
        n, size = (2, {"rate": s.bits_per_symbol * s.code_rate / 2}) if s.kind == "bits" else (s.n, {"k": s.k})
        self.channels: dict[str, Channel] = {
            "train": make_channel(cfg.channel, n, self.streams.get("ae.channel.train", device), device, **size)}
        if cfg.finetune_channel is not None:
            self.channels["finetune"] = make_channel(cfg.finetune_channel, n,
                                                     self.streams.get("ae.channel.finetune", device), device, **size)
        outs = {ch.out_dim for ch in self.channels.values()}
        if len(outs) > 1:
            raise ValueError(f"channel and finetune_channel give the receiver {' and '.join(map(str, sorted(outs)))} "
                             "values per block: one receiver cannot take both")
        self.msg_gen = self.streams.get("ae.messages", device)
        self.policy_gen = self.streams.get("ae.policy", device)
        # Images: training loads them now; a saved run being evaluated loads them when asked.
        self.images = (LazyData(cfg.data, device, cfg.seed, now=not self.inference, shape=self.saved.get("shape"))
                       if s.kind == "images" else None)
        received = outs.pop()
        if s.kind == "bits":
            enc, dec = Constellation(s.bits_per_symbol, s.constellation_init), NeuralDemapper(received, s.bits_per_symbol,
                                                                                             s.hidden)
            self.labels = bit_labels(s.bits_per_symbol).to(device)
        elif self.images is None:
            enc, dec = MessageEncoder(self.m, s.n, s.hidden), MessageDecoder(self.m, received, s.hidden)
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
        note(f"{saved.train.steps} -> {total} steps: phase {self.names[-1]!r} now ends at step {total} "
             f"(was {old[-1][1]}); earlier phase boundaries stay where they were")

    def phases(self) -> list[Phase]:
        cfg = self.cfg
        spans = {c: [ab for p, ab in zip(cfg.phases, self.bounds) if p.channel == c] for c in ("train", "finetune")}
        out = []
        for name, p, (a, b) in zip(self.names, cfg.phases, self.bounds):
            step = self.step_fn(p.channel, spans[p.channel])
            if cfg.system.training == "gradient" or p.name == "decoder":
                out.append(Phase(name, _NETS[p.name], step(p.name), start=a, stop=b))
                continue
            if p.name == "joint":  # the receiver learns what arrives, then the transmitter is rated by it
                out.append(Phase(f"{name}.receiver", "decoder", step("decoder"), start=a, stop=b))
            out.append(Phase(f"{name}.transmitter", "encoder", step("policy"), start=a, stop=b))
        return out

    def engine_options(self) -> EngineOptions:
        return EngineOptions(stateful={"data": self.data.sampler} if self.data is not None else {})

    def step_fn(self, channel: str, spans: list[tuple[int, int]]):
        """The steps of phases on ``channel``; ``spans`` are all phase ranges on that channel
        (a scheduled channel level moves across them). ``step(role)`` gives the engine's step for
        a gradient phase (``joint`` / ``decoder`` / ``encoder``) or the policy-gradient one."""
        ch, s = self.channels[channel], self.cfg.system
        total = sum(b - a for a, b in spans)

        def send(e: Engine, policy: bool = False):
            """(targets, channel input, perturbed input or None, received) for one batch."""
            done = sum(min(max(e.iteration - a, 0), b - a) for a, b in spans)
            ch.progress = done / max(1, total - 1)
            enc = e.model("encoder")
            if s.kind == "images":
                target, _ = self.data.sampler.next()
                x = ch.normalize(enc(target))
            else:
                target = distributed.randint(self.m, s.batch_size, generator=self.msg_gen, device=self.device)
                x = enc(target) if s.kind == "bits" else ch.normalize(enc(target))
            if not policy:
                return target, x, None, ch(x)
            xp = perturb(x, s.policy_sigma, self.policy_gen)
            with torch.no_grad():  # the channel is a black box to the transmitter
                return target, x, xp, ch(xp)

        def losses(target: torch.Tensor, out: torch.Tensor, reduce: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            """The loss (the batch mean, or one per example) and the logged terms."""
            how = "mean" if reduce else "none"
            if s.kind == "messages":
                loss = F.cross_entropy(out, target, reduction=how)
                return loss, {"block_error": (out.detach().argmax(1) != target).float().mean()}
            if s.kind == "bits":
                labels = self.labels[target]
                loss = F.binary_cross_entropy_with_logits(out, labels, reduction="none").mean(1)
                return (loss.mean() if reduce else loss), {"ber": ((out.detach() > 0).float() != labels).float().mean()}
            loss = F.mse_loss(out, target) if reduce else (out - target).pow(2).flatten(1).mean(1)
            return loss, {"psnr": 10 * torch.log10(4.0 / loss.detach().mean())}

        def step(role: str):
            if role == "policy":
                def policy_step(e: Engine) -> dict[str, torch.Tensor]:
                    target, x, xp, y = send(e, policy=True)
                    with torch.no_grad():
                        per, terms = losses(target, e.model("decoder")(y), reduce=False)
                    return {"loss": policy_loss(x, xp, per, s.policy_sigma), "receiver_loss": per.mean(), **terms}
                return policy_step

            def gradient_step(e: Engine) -> dict[str, torch.Tensor]:
                target, _, _, y = send(e)
                loss, terms = losses(target, e.model("decoder")(y), reduce=True)
                return {"loss": loss, **terms}
            return gradient_step
        return step

    # -- evaluation --------------------------------------------------------------------------
    @torch.no_grad()
    def codebook(self) -> torch.Tensor:
        """The normalised codeword of each message (M × n), or the constellation (2^m × 2)."""
        with eval_mode(self.nets["encoder"].module) as enc:
            return enc.codebook() if self.cfg.system.kind == "bits" else self.channels["train"].normalize(enc.codebook())

    def evaluate(self) -> dict[str, Any]:
        """The system as it is now under every channel (``evaluate CKPT`` with ``channel.eval_db=[...]``
        or ``channel.fading=rayleigh`` re-scores a saved run at other points or another channel)."""
        rows = evaluation.evaluate(self, self.names[-1])
        return {"curves": evaluation.table(rows, self.cfg.system.kind)}

    def export(self, folder: Path) -> list[Path]:
        """Encoder and decoder as safetensors + JSON (``multinet.state.export``), with what a user
        needs to drive them: the system's size, the channel they were trained for."""
        s, ch = self.cfg.system, self.channels["train"]
        meta = {"system": "autoencoder", "kind": s.kind, "n": s.n, "k": s.k, "training": s.training,
                "channel": ch.describe(), "normalization": ch.cfg.normalization, "receiver_inputs": ch.out_dim}
        if s.kind == "bits":
            meta.update(bits_per_symbol=s.bits_per_symbol, code_k=s.code_k, code_n=s.code_n)
        return self.export_networks(folder, {"encoder": {**meta, "role": "encoder"},
                                             "decoder": {**meta, "role": "decoder"}})

    # -- in a training run ---------------------------------------------------------------------
    def handlers(self, ctx: RunContext) -> list[Any]:
        ends = {b: name for name, (_, b) in zip(self.names, self.bounds)}

        def after_phase(step: int) -> None:
            rows = evaluation.evaluate(self, ends[step])
            self.results.extend({**r, "after_step": step} for r in rows)
            key = "psnr" if self.cfg.system.kind == "images" else "bler"
            ctx.tracker.scalars(step, {f"eval/{r['curve']}/{r.get('ebn0_db', r.get('snr_db'))}dB": r[key]
                                       for r in rows if r[key] is not None})
            evaluation.write_rows(ctx.out, self.results, self.cfg.system.kind)  # survives a later crash
        return [AtSteps(list(ends), after_phase)]

    def finish(self, ctx: RunContext) -> dict[str, Any]:
        s = self.cfg.system
        summary: dict[str, Any] = {"recipe": self.cfg.description, "system": {
            "messages": f"({s.n},{s.k})", "images": "images", "bits": f"bits, m={s.bits_per_symbol}"}[s.kind],
            "training": s.training}
        if not self.results:  # nothing evaluated in this run's record: evaluate the final state once
            self.results.extend(evaluation.evaluate(self, self.names[-1]))
        rows = list(self.results)
        if s.kind != "images":
            points = self.codebook()
            with atomic_path(ctx.out / "codebook.npy") as tmp:
                np.save(tmp, points.cpu().numpy())
            if points.shape[1] == 2:  # one complex use per block: the constellation itself
                labels = ([format(i, f"0{s.bits_per_symbol}b") for i in range(self.m)] if s.kind == "bits" else None)
                evaluation.plot_constellation(ctx.out, points, labels, self.describe())
            if self.cfg.eval.baselines:
                rows += evaluation.baselines(self)
            evaluation.plot(ctx.out, rows, f"{self.describe()} over {self.channels['train'].describe()}")
        evaluation.write_rows(ctx.out, rows, s.kind)
        summary["curves"] = evaluation.table(rows, s.kind)
        return summary

    def describe(self) -> str:
        s = self.cfg.system
        how = ", model-free" if s.training == "model_free" else ""
        if s.kind == "bits":
            return f"learned {self.m}-point constellation, 5G LDPC ({s.code_n},{s.code_k}){how}"
        return f"({s.n},{s.k}) autoencoder{how}" if s.kind == "messages" else "image autoencoder"

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"results": [dict(r) for r in self.results]}
        if self.images is not None:
            state["shape"] = list(self.images.shape)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Rows of a phase whose end moved (a run extended on resume) are evaluated again at its new end.
        ends = {b for _, b in self.bounds}
        self.results = [dict(r) for r in state.get("results", []) if r.get("after_step") in ends]
