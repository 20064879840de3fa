"""The autoencoder as a system: encoder → channel → decoder, trained in phases (joint, then decoder).

``AeSystem`` is what the three kinds share; each kind is its own class (``MessageAutoencoder``,
``BitAutoencoder``, ``ImageAutoencoder``) and says what it sends, how it scores a batch and how
it is evaluated. ``AeSystem(cfg, device)`` builds the class that ``link.kind`` names, so a recipe
picks the kind and the command line needs to know none of them.

Setup order: channels and data → networks (each through ``Net``'s build order) → phases, their
lengths scaled to ``train.steps``. With ``training = "model_free"`` a joint phase is two engine
phases on every iteration: the receiver's supervised step, then the transmitter's policy-gradient
step (``model_free``); nothing differentiates through the channel. After every phase the system
is evaluated (BLER / BER, or PSNR for images) and the rows are kept in the system's checkpointed
state, so a resumed run reports exactly what an uninterrupted one does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .. import distributed
from ..engine import Engine, Phase
from ..handlers import AtSteps
from ..run.system import RunContext, System
from . import evaluation
from .channels import Channel, make_channel
from .recipe import AeRecipe, phase_bounds
from .model_free import perturb, policy_loss

__all__ = ["AeSystem"]

_NETS = {"joint": ("encoder", "decoder"), "decoder": ("decoder",), "encoder": ("encoder",)}


class AeSystem(System):
    """The autoencoder: encoder -> channel -> decoder, trained in the recipe's ``[[phases]]``
    (joint, then decoder or encoder alone). ``AeSystem(cfg, device)`` builds the class of
    ``link.kind``: ``MessageAutoencoder``, ``BitAutoencoder`` or ``ImageAutoencoder``."""
    Config = AeRecipe
    default_recipe = "ae_7_4"
    stream_seeds = {"ae.baselines": 7, "ae.channel.train": 11, "ae.channel.finetune": 12, "ae.messages": 13,
                    "ae.eval": 99}
    resume_may_change = ("data.root", "data.workers", "data.download", "data.batch_size", "link.batch_size",
                         "channel.eval_db")
    # evaluate CKPT may score under other channels and Eb/N0 points.
    evaluate_may_change = ("eval.", "channel.", "finetune_channel.")
    # What a kind sets: its ``link.kind``, the figure its rows report and the file they go to.
    kind: ClassVar[str] = ""
    figure: ClassVar[str] = "bler"
    columns: ClassVar[list[str]] = evaluation.COLUMNS
    rows_file: ClassVar[str] = "bler.csv"
    _kinds: ClassVar[dict[str, type["AeSystem"]]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.kind and cls.kind not in AeSystem._kinds:
            AeSystem._kinds[cls.kind] = cls

    def __new__(cls, cfg: AeRecipe, *args: Any, **kw: Any) -> "AeSystem":
        if not cls.kind:  # the recipe names the kind
            cls = AeSystem._kinds[cfg.link.kind]
        elif cfg.link.kind != cls.kind:
            raise ValueError(f"link.kind = {cfg.link.kind!r}, but {cls.__name__} is the {cls.kind!r} system")
        return super().__new__(cls)

    def __init__(self, cfg: AeRecipe, device: torch.device, **build: Any) -> None:
        super().__init__(cfg, device, **build)
        n, size = self.channel_uses()
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
        enc, dec = self.networks(outs.pop())
        self.net("encoder", enc)
        self.net("decoder", dec)
        self.stages: list[Phase] = []  # the engine's phase of each configured phase (its plan, kept on resume)
        self.names = [f"{i}_{p.name}" if len(cfg.phases) > 1 else p.name for i, p in enumerate(cfg.phases)]
        self.results: list[dict[str, Any]] = []  # rows evaluated at each phase's end

    # -- what a kind says ----------------------------------------------------------------------
    def channel_uses(self) -> tuple[int, dict[str, Any]]:
        """Real channel uses per block, and the code size the channel's Eb/N0 reads (``k`` or ``rate``)."""
        return self.cfg.link.n, {"k": self.cfg.link.k}

    def networks(self, received: int) -> tuple[nn.Module, nn.Module]:
        """The encoder and the decoder, for a receiver that gets ``received`` values per block."""
        raise NotImplementedError

    def batch(self, encoder: nn.Module, channel: Channel) -> tuple[torch.Tensor, torch.Tensor]:
        """(targets, channel input) of one training batch."""
        raise NotImplementedError

    def losses(self, target: torch.Tensor, out: torch.Tensor, reduce: bool) -> tuple[torch.Tensor, dict[str, Any]]:
        """The loss (the batch mean, or one per example) and the logged terms."""
        raise NotImplementedError

    def rows(self, label: str) -> list[dict[str, Any]]:
        """The evaluation rows of the system as it is now, under every channel."""
        raise NotImplementedError

    def results_written(self, out: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """At the end of a run: write the kind's own result files; the rows to report."""
        return rows

    def describe(self) -> str:
        raise NotImplementedError

    def messages(self) -> torch.Tensor:
        """One training batch of uniform message indices (of ``self.m``), from the messages' stream."""
        return distributed.randint(self.m, self.cfg.link.batch_size, generator=self.msg_gen, device=self.device)

    def how_trained(self) -> str:
        """What ``describe`` adds for the training mode."""
        return ", model-free" if self.cfg.link.training == "model_free" else ""

    def export_meta(self) -> dict[str, Any]:
        return {}

    # -- phases --------------------------------------------------------------------------------
    @property
    def bounds(self) -> list[tuple[int, int]]:
        """Where each configured phase starts and ends: the engine's plan once the phases are built
        (a resumed run keeps the boundaries it was trained with: ``multinet.engine.keep_plan``)."""
        if not self.stages:
            return phase_bounds(self.cfg.phases, self.cfg.train.steps)
        return [(p.start, self.cfg.train.steps if p.stop is None else p.stop) for p in self.stages]

    def phases(self) -> list[Phase]:
        cfg, k = self.cfg, self.cfg.train.accumulate
        out, self.stages = [], []
        for name, p, (a, b) in zip(self.names, cfg.phases, self.bounds):
            step = self.step_fn(p.channel, [i for i, q in enumerate(cfg.phases) if q.channel == p.channel])
            if cfg.link.training == "gradient" or p.name == "decoder":
                out.append(Phase(name, _NETS[p.name], step(p.name), start=a, stop=b, accumulate=k))
            else:
                if p.name == "joint":  # the receiver learns what arrives, then the transmitter is rated by it
                    out.append(Phase(f"{name}.receiver", "decoder", step("decoder"), start=a, stop=b, accumulate=k))
                out.append(Phase(f"{name}.transmitter", "encoder", step("policy"), start=a, stop=b, accumulate=k))
            self.stages.append(out[-1])
        return out

    def step_fn(self, channel: str, on_channel: list[int]):
        """The steps of phases on ``channel``; ``on_channel``: the indices of all configured phases on
        that channel (a scheduled channel level moves across their spans, as planned now).
        ``step(role)`` gives the engine's step for a gradient phase (``joint`` / ``decoder`` /
        ``encoder``) or the policy-gradient one."""
        ch, s = self.channels[channel], self.cfg.link

        def send(e: Engine, policy: bool = False):
            """(targets, channel input, perturbed input or None, received) for one batch."""
            spans = [self.bounds[i] for i in on_channel]
            done = sum(min(max(e.iteration - a, 0), b - a) for a, b in spans)
            ch.progress = done / max(1, sum(b - a for a, b in spans) - 1)
            target, x = self.batch(e.model("encoder"), ch)
            if not policy:
                return target, x, None, ch(x)
            xp = perturb(x, s.policy_sigma, self.policy_gen)
            with torch.no_grad():  # the channel is a black box to the transmitter
                return target, x, xp, ch(xp)

        def step(role: str):
            if role == "policy":
                def policy_step(e: Engine) -> dict[str, torch.Tensor]:
                    target, x, xp, y = send(e, policy=True)
                    with torch.no_grad():
                        per, terms = self.losses(target, e.model("decoder")(y), reduce=False)
                    return {"loss": policy_loss(x, xp, per, s.policy_sigma), "receiver_loss": per.mean(), **terms}
                return policy_step

            def gradient_step(e: Engine) -> dict[str, torch.Tensor]:
                target, _, _, y = send(e)
                loss, terms = self.losses(target, e.model("decoder")(y), reduce=True)
                return {"loss": loss, **terms}
            return gradient_step
        return step

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        """The system as it is now under every channel (``evaluate CKPT`` with ``channel.eval_db=[...]``
        or ``channel.fading=rayleigh`` re-scores a saved run at other points or another channel)."""
        return {"curves": evaluation.table(self.rows(self.names[-1]), self.figure)}

    def export(self, folder: Path) -> list[Path]:
        """Encoder and decoder as safetensors + JSON (``multinet.state.export``), with what a user
        needs to drive them: the system's size, the channel they were trained for."""
        s, ch = self.cfg.link, self.channels["train"]
        meta = {"system": "autoencoder", "kind": s.kind, "n": s.n, "k": s.k, "training": s.training,
                "channel": ch.describe(), "normalization": ch.cfg.normalization, "receiver_inputs": ch.out_dim,
                **self.export_meta()}
        return self.export_networks(folder, {"encoder": {**meta, "role": "encoder"},
                                             "decoder": {**meta, "role": "decoder"}})

    # -- in a training run ---------------------------------------------------------------------
    def handlers(self, ctx: RunContext) -> list[Any]:
        ends = {b: name for name, (_, b) in zip(self.names, self.bounds)}

        def after_phase(step: int) -> None:
            rows = self.rows(ends[step])
            self.results.extend({**r, "after_step": step} for r in rows)
            ctx.tracker.scalars(step, {f"eval/{r['curve']}/{r.get('ebn0_db', r.get('snr_db'))}dB": r[self.figure]
                                       for r in rows if r[self.figure] is not None})
            self.write_rows(ctx.out, self.results)  # survives a later crash
        return [AtSteps(list(ends), after_phase)]

    def write_rows(self, out: Path, rows: list[dict[str, Any]]) -> None:
        evaluation.write_rows(out / self.rows_file, rows, self.columns)

    def finish(self, ctx: RunContext) -> dict[str, Any]:
        s = self.cfg.link
        summary: dict[str, Any] = {"recipe": self.cfg.description, "system": self.summary_name(),
                                   "training": s.training}
        if not self.results:  # nothing evaluated in this run's record: evaluate the final state once
            self.results.extend(self.rows(self.names[-1]))
        rows = self.results_written(ctx.out, list(self.results))
        self.write_rows(ctx.out, rows)
        summary["curves"] = evaluation.table(rows, self.figure)
        return summary

    def summary_name(self) -> str:
        return f"({self.cfg.link.n},{self.cfg.link.k})"

    def state_dict(self) -> dict[str, Any]:
        return {"results": [dict(r) for r in self.results]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Rows of a phase whose end moved (a run extended on resume) are evaluated again at its new end.
        ends = {b for _, b in self.bounds}
        self.results = [dict(r) for r in state.get("results", []) if r.get("after_step") in ends]
