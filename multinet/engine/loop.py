"""The phase engine: a list of named phases over a dict of networks, and events for handlers.

Each iteration runs every active phase through its update function (``multinet.engine.update``:
the default backpropagates the step's loss and steps the phase's optimizers; a phase may name
another). The loop itself does little else: it fires the ``Event``s handlers listen to (logging,
samples, checkpoints, evaluation: ``multinet.handlers``), checks for NaN/Inf every
``check_every`` iterations (``divergence.NanRecord``), unfreezes what a network's config
unfreezes at its iteration, and steps epoch schedules at an epoch's end.

While a phase runs only its networks require grad: the others are frozen for the step
(``training``), so no weight gradients are computed for them. Under torch.distributed a step calls
the networks through ``engine.model(name)``: the DDP wrapper for the networks the phase trains, the
raw module for the frozen rest. Stop requests (signals) are agreed over the ranks every
``sync_every`` iterations, so every rank stops at the same iteration.
"""
from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any, Callable

import torch

from .. import distributed
from ..nets import Net, advance
from .divergence import NanRecord, NonFiniteLoss
from .events import Event, Registration, StopReason, call_handler
from .phase import Phase, check_phases, check_start, warn_idle
from .update import StepError, step_term
from .readout import Readout
from .snapshot import engine_state, load_engine_state

__all__ = ["Phase", "Engine", "Event", "NonFiniteLoss", "StepError", "AMP_MODES"]

AMP_MODES = ("none", "bf16", "fp16")


class Engine:
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
        self.amp, self.steps_per_epoch, self.log_every = amp, steps_per_epoch, log_every
        self.check_every = (log_every or 50) if check_every is None else check_every
        self.generators, self.stateful = generators or {}, stateful or {}
        self.config, self.meta = config or {}, meta or {}  # meta: beside the config (which system wrote it)
        self.iteration = 0
        self.phase_steps = {p.name: 0 for p in phases}
        self.scalers = {p.name: torch.amp.GradScaler(self.device.type, enabled=amp == "fp16") for p in phases}
        self.readout = Readout()
        self.nan = NanRecord(phases, self.device)
        self.dist = distributed.info()
        self.sync_every = max(1, sync_every)
        self.handlers: dict[Event, list[tuple[Callable[["Engine"], None], int]]] = defaultdict(list)
        self.stop_reason: StopReason | None = None
        self.phase: Phase | None = None  # the phase running now, for the update's building blocks
        self.stepped: set[str] = set()  # the networks the running phase has stepped
        self.evaluation: dict[str, Any] = {}  # the figures of the latest evaluation (Event.EVALUATED)
        self.exception: BaseException | None = None  # what left the loop (Event.EXCEPTION_RAISED)
        self.log_now = False  # whether the iteration running now is a log step (grad norms are measured)
        self._requested: StopReason | None = None
        self._training: tuple[str, ...] = ()
        self._through: set[str] = set()
        self._own_flags: list[tuple[torch.nn.Parameter, bool]] = []
        # What each phase freezes, listed once (a module's parameter list walks its module tree).
        self._others = {p.name: [t for k, n in nets.items() if k not in p.nets for t in n.module.parameters()]
                        for p in phases}
        for name, net in nets.items():
            net.plan_steps(sum(p.count(total_steps) * p.repeat for p in phases if name in p.nets),
                           total_steps // steps_per_epoch if steps_per_epoch else 0)
            if self.dist.world > 1 and net.wrapped is net.module:  # built before the process group joined
                net.rewrap()
        check_start(nets, amp, self.device, steps_per_epoch)
        for handler in handlers:
            call_handler(handler.attach, self, Event.STARTED)

    @property
    def ema(self) -> dict[str, torch.nn.Module]:
        """The averaged copies (``multinet.nets.Ema``; ``.module`` is the network) of the networks with an EMA."""
        return {k: n.ema for k, n in self.nets.items() if n.ema is not None}

    @property
    def terms(self) -> dict[str, dict[str, torch.Tensor]]:
        """Each phase's latest loss terms, on the device."""
        return self.readout.terms

    # -- events ------------------------------------------------------------------------------
    def on(self, event: Event | str, fn: Callable[["Engine"], None], every: int = 1) -> Registration:
        """Call ``fn(engine)`` on ``event`` every ``every`` times it fires (``every=0``: off); the
        returned registration's ``remove()`` takes it off. An unknown event name raises."""
        event = Event.parse(event)
        if not isinstance(every, int) or every < 0:
            raise ValueError(f"every must be an integer >= 0 (0 turns the handler off), got {every!r}")
        entry = (fn, every)
        if every:
            self.handlers[event].append(entry)
        return Registration(self.handlers[event], entry)

    def fire(self, event: Event | str, count: int | None = None) -> None:
        event = event if type(event) is Event else Event.parse(event)
        entries = self.handlers.get(event)
        if not entries:
            return
        count = self.iteration if count is None else count
        once = event in (Event.STARTED, Event.COMPLETED, Event.EXCEPTION_RAISED, Event.EVALUATED)
        for fn, every in list(entries):
            if every == 1 or once or count % every == 0:
                call_handler(fn, self, event)

    def request_stop(self, reason: StopReason | str) -> None:
        """Stop at the next iteration boundary (signal handlers call this); under torch.distributed
        at the next agreement point, on every rank."""
        self._requested = self._requested or StopReason(reason)
        if self.dist.world == 1:
            self.stop_reason = self._requested

    # -- what a phase's update uses ------------------------------------------------------------
    def model(self, name: str) -> torch.nn.Module:
        """The network ``name`` as a step should call it: through its DDP wrapper when this
        phase trains it (or ``grad_through`` lets its graph build), else the module itself."""
        net = self.nets[name]
        return net.wrapped if name in self._training or name in self._through else net.module

    def autocast(self):
        if self.amp == "none":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if self.amp == "bf16" else torch.float16)

    @contextlib.contextmanager
    def training(self, phase: Phase, sync: bool = True):
        """Inside: ``phase``'s networks train, every other network is frozen, autocast is on, and
        under torch.distributed the gradients are averaged over the ranks only if ``sync``."""
        parallel = [n for n in (self.nets[name] for name in phase.nets) if n.wrapped is not n.module]
        if not sync and parallel:
            with contextlib.ExitStack() as stack:
                for net in parallel:
                    stack.enter_context(net.wrapped.no_sync())
                with self.training(phase):
                    yield
            return
        others = self._others[phase.name]  # frozen for the step, each parameter's own flag restored after
        self._own_flags = [(p, p.requires_grad) for p in others]
        for p in others:
            p.requires_grad_(False)
        self._training = phase.nets
        try:
            with self.autocast():
                yield
        finally:
            self._training = ()
            for p, flag in self._own_flags:
                p.requires_grad_(flag)
        for net in parallel:
            if not net.ddp_called:
                raise RuntimeError(f"phase '{phase.name}' trains '{net.name}' but its step called the bare "
                                   f"module: call engine.model('{net.name}') so gradients are averaged over ranks")
            net.ddp_called = False

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

    # -- read-outs and state -------------------------------------------------------------------
    def check_finite(self) -> None:
        """Raise ``NonFiniteLoss`` if a loss or a network's weights went NaN/Inf (naming the phase,
        its networks and the first bad step). Syncs, once per step however many ask; a collective
        under torch.distributed: every rank must call it at the same iteration."""
        self.nan.check(self.nets, self.iteration, self.dist.world)

    def scalars(self, window: int | None = None) -> dict[str, float]:
        """Loss terms, LRs and grad norms of the last ``window`` iterations (default ``log_every``),
        under stable names: one host sync (``Readout.scalars``)."""
        return self.readout.scalars(self.nets, self.iteration, window or self.log_every or 1, self.dist.world)

    def metric(self, key: str) -> float:
        return self.readout.metric(key)

    def default_monitor(self, net: str) -> str:
        """The loss of the latest phase that trained ``net``."""
        return f"loss/{[p.name for p in self.phases if net in p.nets and p.name in self.terms][-1]}"

    def state_dict(self) -> dict[str, Any]:
        return engine_state(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_engine_state(self, state)

    # -- the loop ----------------------------------------------------------------------------
    def run(self, stop_at: int | None = None, handlers: Any = ()) -> None:
        """Train up to ``total_steps`` (or after iteration ``stop_at``, the same on every rank).

        ``handlers`` are attached for this run only (after the constructor's). Raises
        ``NonFiniteLoss`` at the first check after a loss went NaN/Inf (every ``check_every``
        iterations and at the end), before any handler sees that iteration.
        """
        self.stop_reason, self._requested, self.exception = None, None, None
        before = {event: list(entries) for event, entries in self.handlers.items()}
        for handler in handlers:
            call_handler(handler.attach, self, Event.STARTED)
        try:
            self._loop(stop_at)
        except BaseException as e:
            self.exception = e
            self.fire(Event.EXCEPTION_RAISED)
            raise
        finally:  # what attached for this run goes; a registration removed during it stays removed
            for event, entries in self.handlers.items():
                entries[:] = [x for x in entries if any(x is y for y in before.get(event, ()))]

    def _loop(self, stop_at: int | None) -> None:
        warn_idle(self.phases, self.nets, self.iteration, self.total_steps)
        for net in self.nets.values():
            net.train()
        self.fire(Event.STARTED)
        unfreeze = defaultdict(list)  # timed unfreezing is part of a network's config
        for net in (n for n in self.nets.values() if n.config.unfreeze):
            unfreeze[net.config.unfreeze_at].append(net)
        while self.iteration < self.total_steps and self.stop_reason is None and \
                (stop_at is None or self.iteration < stop_at):
            self.log_now = bool(self.log_every) and (self.iteration + 1) % self.log_every == 0
            self.fire(Event.ITERATION_STARTED)
            for net in self.nets.values():  # a handler's own eval()/train() must not wake frozen norms
                net.enforce_norm_mode()
            for phase in self.phases:
                if phase.active(self.iteration):
                    for _ in range(phase.repeat):
                        self._run_phase(phase)
            self.iteration += 1
            if self.check_every and self.iteration % self.check_every == 0:
                self.check_finite()
            for net in unfreeze.get(self.iteration, ()):  # before any handler sees the step
                net.unfreeze(net.config.unfreeze)
            self.fire(Event.ITERATION_COMPLETED)
            if self.dist.world > 1 and self.iteration % self.sync_every == 0:
                order = list(StopReason)  # the most serious request of any rank wins
                agreed = distributed.agree_max(0 if self._requested is None else 1 + order.index(self._requested),
                                               self.device)
                self.stop_reason = order[agreed - 1] if agreed else self.stop_reason
            if self.steps_per_epoch and self.iteration % self.steps_per_epoch == 0:
                self._epoch_end()
        if self.stop_reason is None and stop_at is not None and self.iteration < self.total_steps:
            self.stop_reason = StopReason.STEP_LIMIT
        if self.check_every:
            self.check_finite()
        self.fire(Event.COMPLETED)

    def _run_phase(self, phase: Phase) -> None:
        self.phase, self.stepped = phase, set()
        try:
            terms = phase.update(self, phase)
        finally:
            self.phase = None
        detached = {k: step_term(phase.name, k, v, self.device) for k, v in terms.items()}
        self.readout.record(phase.name, detached, self.iteration)
        self.nan.keep(phase.name, self.iteration, detached["loss"])
        self.phase_steps[phase.name] += 1

    def _epoch_end(self) -> None:
        for net in self.nets.values():
            monitor = net.config.schedule.monitor
            advance(net.scheduler, net.config.schedule, "epoch", net.stepped_this_epoch,
                    lambda net=net, monitor=monitor: self.metric(monitor or self.default_monitor(net.name)))
            net.stepped_this_epoch = False
        self.fire(Event.EPOCH_COMPLETED, self.iteration // self.steps_per_epoch)
