"""The phase engine: a list of named phases over a dict of networks, and events for handlers.

A phase names the networks it trains and a step function returning its loss terms. In a phase
step only that phase's networks require grad: every other network is frozen for the step
(``frozen`` restores each parameter's own flag after), so no weight gradients are computed for
them and their ``.grad`` stays ``None``. Then: backward → optional clipping (unscaled first
under fp16) → step → zero_grad(set_to_none) → scheduler (only if the optimizer stepped) → EMA.

The loop does little else: it checks losses for NaN/Inf every ``check_every`` iterations (a
diverged run stops with ``NonFiniteLoss`` naming the phase and step, under the plain API too),
re-applies each network's frozen-norm mode, and fires the ``Event``s that handlers listen to
(logging, samples, checkpoints, evaluation: ``multinet.handlers``), each with ``every=``.

Under torch.distributed a step calls the networks through ``engine.model(name)``: the DDP
wrapper for the networks the phase trains, the raw module for the frozen rest (so no reducer
waits for gradients that never come). Stop requests (signals) are agreed over the ranks every
``sync_every`` iterations, NaN checks and logged scalars are reduced over the ranks, so every
rank stops at the same iteration.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from collections import defaultdict
from typing import Any, Callable

import torch

from .. import distributed
from ..config import error_line
from ..nets import Net, advance, frozen_tensors
from .divergence import NonFiniteLoss, non_finite
from .events import Event
from .phase import Phase, StepError, check_loss, check_phases, step_term, user_line
from .readout import Readout
from .snapshot import Snapshot

__all__ = ["Phase", "Engine", "Event", "NonFiniteLoss", "StepError", "AMP_MODES"]

AMP_MODES = ("none", "bf16", "fp16")


class Engine(Readout, Snapshot):
    """Runs ``phases`` over ``nets`` for ``total_steps`` iterations.

    Everything is given here: ``generators`` (named random streams) and ``stateful`` objects
    (data samplers) are checkpointed with the networks; ``handlers`` are objects with
    ``attach(engine)`` (``multinet.handlers``). A schedule left without a length (``cosine``
    with ``total = 0``) gets the number of optimizer steps its network takes in this run.
    """

    def __init__(self, nets: dict[str, Net], phases: list[Phase], total_steps: int, amp: str = "none",
                 steps_per_epoch: int = 0, generators: dict[str, torch.Generator] | None = None,
                 stateful: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
                 log_every: int = 50, check_every: int | None = None, sync_every: int = 10,
                 handlers: Any = (), meta: dict[str, Any] | None = None) -> None:
        if amp not in AMP_MODES:
            raise ValueError(f"amp {amp!r} unknown (valid: {', '.join(AMP_MODES)})")
        check_phases(phases, nets)
        self.nets, self.phases, self.total_steps = nets, phases, total_steps
        self.device = next(iter(nets.values())).device
        if amp == "fp16" and self.device.type == "cpu":
            warnings.warn("amp = 'fp16' on the CPU runs in emulation, several times slower than fp32; use "
                          "'bf16' (fast on CPUs with AMX / AVX512-BF16) or 'none'", stacklevel=2)
        self.amp, self.steps_per_epoch, self.log_every = amp, steps_per_epoch, log_every
        self.check_every = (log_every or 50) if check_every is None else check_every
        self.generators = generators or {}
        self.stateful = stateful or {}
        self.config = config or {}
        self.meta = meta or {}  # saved beside the config (e.g. which system wrote the checkpoint)
        self.iteration = 0
        self.phase_steps = {p.name: 0 for p in phases}
        # What each phase freezes, listed once (a module's parameter list walks its module tree).
        self._others = {p.name: [t for k, n in nets.items() if k not in p.nets for t in n.module.parameters()]
                        for p in phases}
        self.scalers = {p.name: torch.amp.GradScaler(self.device.type, enabled=amp == "fp16") for p in phases}
        for name, net in nets.items():
            net.plan_steps(sum(p.count(total_steps) * p.repeat for p in phases if name in p.nets))
        self.handlers: dict[Event, list[tuple[Callable[["Engine"], None], int]]] = defaultdict(list)
        self.terms: dict[str, dict[str, torch.Tensor]] = {}
        self.grad_norms: dict[str, torch.Tensor] = {}
        self.made_at: dict[str, int] = {}  # phase or grad_norm/<net> -> the iteration that produced it
        # First non-finite step per phase, kept on the device so checking costs no sync per step: each
        # step only keeps its loss (no operator at all); a check folds them in (``_fold``).
        self._first_bad = {p.name: torch.full((), -1, dtype=torch.long, device=self.device) for p in phases}
        self._losses: dict[str, list[tuple[int, torch.Tensor]]] = {p.name: [] for p in phases}
        self._checked: Any = None  # (iteration, weight versions) of the last check that passed
        self.stop_reason: str | None = None
        self._requested: str | None = None
        self.dist = distributed.info()
        if self.dist.world > 1:  # networks built before the process group joined: wrap them now
            for net in nets.values():
                if net.wrapped is net.module:
                    net.rewrap()
        self.sync_every = max(1, sync_every)
        self._training: tuple[str, ...] = ()
        self._through: set[str] = set()
        # Timed unfreezing is part of a network's config: the loop does it after iteration unfreeze_at.
        self._unfreeze: dict[int, list[Net]] = defaultdict(list)
        for net in (n for n in nets.values() if n.config.unfreeze):
            self._unfreeze[net.config.unfreeze_at].append(net)
        for handler in handlers:
            handler.attach(self)

    @property
    def ema(self) -> dict[str, torch.nn.Module]:
        """The averaged copies (``multinet.nets.Ema``; ``.module`` is the network) of the networks with an EMA."""
        return {k: n.ema for k, n in self.nets.items() if n.ema is not None}

    # -- events ------------------------------------------------------------------------------
    def on(self, event: Event | str, fn: Callable[["Engine"], None], every: int = 1) -> None:
        """Call ``fn(engine)`` on ``event`` every ``every`` times it fires; ``every=0`` registers
        nothing (the handler is off). An unknown event name raises."""
        event = Event.parse(event)
        if not isinstance(every, int) or every < 0:
            raise ValueError(f"every must be an integer >= 0 (0 turns the handler off), got {every!r}")
        if every:
            self.handlers[event].append((fn, every))

    def fire(self, event: Event | str, count: int | None = None) -> None:
        event = Event.parse(event)
        count = self.iteration if count is None else count
        for fn, every in self.handlers[event]:
            if event in (Event.STARTED, Event.COMPLETED) or count % every == 0:
                fn(self)

    def request_stop(self, reason: str) -> None:
        """Stop at the next iteration boundary (signal handlers call this); under torch.distributed
        at the next agreement point, on every rank."""
        self._requested = self._requested or reason
        if self.dist.world == 1:
            self.stop_reason = self._requested

    def model(self, name: str) -> torch.nn.Module:
        """The network ``name`` as a step should call it: through its DDP wrapper when this
        phase trains it (or ``grad_through`` lets its graph build), else the module itself."""
        net = self.nets[name]
        return net.wrapped if name in self._training or name in self._through else net.module

    # -- one phase step ----------------------------------------------------------------------
    def autocast(self):
        if self.amp == "none":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.amp == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _run_phase(self, phase: Phase, log_now: bool) -> None:
        nets = [self.nets[n] for n in phase.nets]
        scaler = self.scalers[phase.name]
        self._training = phase.nets
        with frozen_tensors(self._others[phase.name]) as self._own_flags:
            try:
                with self.autocast():
                    terms = phase.step(self)
            except Exception as e:  # the user's step code: say where, in one line
                if os.environ.get("MULTINET_TRACEBACK"):
                    raise
                raise StepError(f"phase {phase.name!r}, step {self.iteration + 1}: {type(e).__name__}: "
                                f"{error_line(e, 200)} [{user_line(e)}]") from e
            loss = check_loss(phase, terms)
            scaler.scale(loss).backward()
        self._training = ()
        for net in nets:
            if net.wrapped is not net.module:
                if not net.ddp_called:
                    raise RuntimeError(f"phase '{phase.name}' trains '{net.name}' but its step called the bare "
                                       f"module: call engine.model('{net.name}') so gradients are averaged over ranks")
                net.ddp_called = False
        scale_before = scaler.get_scale() if scaler.is_enabled() else None
        for net in nets:
            if net.config.clip_grad_norm > 0:
                scaler.unscale_(net.optimizer)
                self.grad_norms[net.name] = torch.nn.utils.clip_grad_norm_(net.parameters(), net.config.clip_grad_norm)
                self.made_at[f"grad_norm/{net.name}"] = self.iteration
            elif log_now:
                grads = [p.grad for p in net.parameters() if p.grad is not None]
                self.grad_norms[net.name] = (torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
                                             if grads else torch.zeros((), device=self.device))
                self.made_at[f"grad_norm/{net.name}"] = self.iteration
            scaler.step(net.optimizer)
            # Between phase steps every .grad is None: nothing stale is left for a later phase.
            net.optimizer.zero_grad(set_to_none=True)
        scaler.update()
        # Under fp16 a step with inf/NaN gradients is skipped; its scheduler must not advance.
        stepped = scale_before is None or scaler.get_scale() >= scale_before
        for net in nets:
            advance(net.scheduler, net.config.schedule, "step", stepped)
            net.stepped_this_epoch = net.stepped_this_epoch or stepped
            if net.ema is not None:
                net.ema.update_parameters(net.module)
        detached = {k: step_term(phase.name, k, v, self.device) for k, v in terms.items()}
        self.terms[phase.name] = detached
        self.made_at[phase.name] = self.iteration
        kept = self._losses[phase.name]
        kept.append((self.iteration, detached["loss"]))
        if len(kept) >= 256:  # checks far apart (or none): memory stays bounded
            self._fold(phase.name)
        self.phase_steps[phase.name] += 1

    @contextlib.contextmanager
    def grad_through(self, name: str):
        """Inside a phase step, let a frozen network build its graph with its own flags (for a
        later phase that reuses this output, e.g. the GAN's fake-batch reuse)."""
        params = {id(p) for p in self.nets[name].module.parameters()}
        mine = [(p, f) for p, f in self._own_flags if id(p) in params]
        for p, f in mine:
            p.requires_grad_(f)
        self._through.add(name)
        try:
            yield
        finally:
            self._through.discard(name)
            for p, _ in mine:
                p.requires_grad_(False)

    def check_finite(self) -> None:
        """Raise ``NonFiniteLoss`` if a loss went NaN/Inf (naming the phase, its networks and the
        first bad step) or a network's weights did (``divergence.non_finite``). Syncs;
        a collective under torch.distributed: every rank must call it at the same iteration."""
        # The loop, the logger and the checkpointer all ask at one step: check once unless a weight
        # changed in between (any in-place write bumps a tensor's version; a new tensor has a new id).
        key = (self.iteration, tuple((id(p), p._version) for n in self.nets.values() for p in n.module.parameters()))
        if key == self._checked:
            return
        for name in self._losses:
            self._fold(name)
        problem = non_finite(self.phases, self._first_bad, self.nets, self.dist.world, self.iteration)
        if problem:
            raise NonFiniteLoss(problem)
        self._checked = key

    def _fold(self, phase: str) -> None:
        """Record the first non-finite loss among the steps kept since the last fold (on the device)."""
        kept = self._losses[phase]
        if not kept:
            return
        steps = torch.tensor([i for i, _ in kept], device=self.device)
        never = torch.iinfo(torch.long).max
        first = torch.where(torch.isfinite(torch.stack([v for _, v in kept])), never, steps).min()
        bad = self._first_bad[phase]
        bad.copy_(torch.where((bad < 0) & (first < never), first, bad))
        kept.clear()

    # -- the loop ----------------------------------------------------------------------------
    def run(self, stop_at: int | None = None, handlers: Any = ()) -> None:
        """Train up to ``total_steps`` (or after iteration ``stop_at``, the same on every rank).

        ``handlers`` are attached for this run only (after the constructor's). Raises
        ``NonFiniteLoss`` at the first check after a loss went NaN/Inf (every ``check_every``
        iterations and at the end), before any handler sees that iteration.
        """
        self.stop_reason, self._requested = None, None
        kept = {k: list(v) for k, v in self.handlers.items()}
        for handler in handlers:
            handler.attach(self)
        try:
            self._loop(stop_at)
        finally:
            self.handlers = defaultdict(list, kept)

    def _loop(self, stop_at: int | None) -> None:
        for net in self.nets.values():
            net.train()
        self.fire(Event.STARTED)
        while self.iteration < self.total_steps and self.stop_reason is None and \
                (stop_at is None or self.iteration < stop_at):
            for net in self.nets.values():  # a handler's own eval()/train() must not wake frozen norms
                net.enforce_norm_mode()
            log_now = bool(self.log_every) and (self.iteration + 1) % self.log_every == 0
            for phase in self.phases:
                if phase.active(self.iteration):
                    for _ in range(phase.repeat):
                        self._run_phase(phase, log_now)
            self.iteration += 1
            if self.check_every and self.iteration % self.check_every == 0:
                self.check_finite()
            for net in self._unfreeze.get(self.iteration, ()):  # before any handler sees the step
                net.unfreeze(net.config.unfreeze)
            self.fire(Event.ITERATION_COMPLETED)
            if self.dist.world > 1 and self.iteration % self.sync_every == 0:
                self.stop_reason = distributed.agree_stop(self._requested, self.device) or self.stop_reason
            if self.steps_per_epoch and self.iteration % self.steps_per_epoch == 0:
                self._epoch_end()
        if self.stop_reason is None and stop_at is not None and self.iteration < self.total_steps:
            self.stop_reason = "step limit"
        if self.check_every:
            self.check_finite()
        self.fire(Event.COMPLETED)

    def _epoch_end(self) -> None:
        for net in self.nets.values():
            monitor = net.config.schedule.monitor
            advance(net.scheduler, net.config.schedule, "epoch", net.stepped_this_epoch,
                    lambda net=net, monitor=monitor: self.metric(monitor or self.default_monitor(net.name)))
            net.stepped_this_epoch = False
        self.fire(Event.EPOCH_COMPLETED, self.iteration // self.steps_per_epoch)
