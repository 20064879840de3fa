"""The System contract: what a multi-network system hands the runner.

A system is built from its typed config (a dataclass extending ``RunConfig``) on a device. It
holds its networks (``self.nets``, name → ``Net``) and random streams (``self.streams``), and
says how they train (``phases()``). Everything else is optional:

- ``evaluate()`` → dict of figures, ``sample(n, **options)`` → tensor, ``export(folder)``: offered to the
  command line (``evaluate`` / ``sample`` / ``export``) and to handlers; leave them out and the
  command line says the system does not offer them.
- ``handlers(ctx)``: the system's own handlers in a training run (sample grids, evaluation);
  ``finish(ctx)``: the summary at the end of a run (default: ``evaluate()`` when offered).
- ``state_dict()`` / ``load_state_dict()``: system state that must survive a resume (results
  gathered during the run); ``engine_options()``: epoch length and stateful data samplers
  (an ``EngineOptions``).

The runner (``multinet.run.runner``) gives every system the same run folder, logging, checkpoints,
resume, signal handling, NaN stop, progress bar and summary.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import ConfigError, RunConfig, to_dict
from ..engine import Engine, Phase
from ..nets import Net, NetConfig
from ..notes import note, notes_shown
from ..state.imports import import_class, object_path
from ..state.streams import RandomStreams

__all__ = ["System", "RunContext", "EngineOptions", "NotOffered", "engine_for", "check_signature", "note",
           "notes_shown"]

class NotOffered(NotImplementedError):
    """The system does not offer this (``evaluate``, ``sample``, ``export``)."""


@dataclass
class EngineOptions:
    """What a system adds to the engine a run builds for it: the length of an epoch over its data
    (0: no epochs; epoch schedules and ``EPOCH_COMPLETED`` need it) and stateful objects whose
    ``state_dict`` goes into every checkpoint (a data sampler's position)."""

    steps_per_epoch: int = 0
    stateful: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunContext:
    """Where a training run writes: its folder, its tracker (TensorBoard / metrics.jsonl), its step."""

    out: Path
    tracker: Any
    resumed: bool = False
    step: int = 0


class System:
    """Subclass, set ``Config``, build ``self.nets`` in ``__init__`` and return the phases."""

    Config: ClassVar[type] = RunConfig
    # The recipe a run uses when none is named (a name or .toml path; None: the Config defaults).
    default_recipe: ClassVar[str | None] = None
    # Recipe keys a resumed run may change besides RunConfig.RESUME_MAY_CHANGE (prefixes).
    resume_may_change: ClassVar[tuple[str, ...]] = ()
    # Recipe keys ``evaluate CKPT`` / ``sample CKPT`` may change (prefixes).
    evaluate_may_change: ClassVar[tuple[str, ...]] = ("eval.",)
    # A checkpoint from before the system kept state of its own still resumes.
    optional_state: ClassVar[bool] = True
    # Named random streams pinned to run seed + offset (``multinet.state.streams``): the shipped systems
    # keep the seeds their published figures were made with. Other names get a hashed seed.
    stream_seeds: ClassVar[dict[str, int]] = {}

    def __init__(self, cfg: Any, device: torch.device, *, saved: dict[str, Any] | None = None) -> None:
        """``saved``: given by ``load_system``, the system's own state from a checkpoint; the system
        is then built to run saved networks (evaluate / sample / export), not to train them: ``net()``
        builds no optimizer, and a system may leave its data unloaded until evaluation asks for it.
        A subclass's ``__init__`` passes it on: ``def __init__(self, cfg, device, **build):
        super().__init__(cfg, device, **build)`` (``check_signature`` holds it to that)."""
        self.cfg, self.device = cfg, device
        self.streams = RandomStreams(cfg.seed, self.stream_seeds)
        self.nets: dict[str, Net] = {}
        self.inference, self.saved = saved is not None, dict(saved or {})

    # -- building ----------------------------------------------------------------------------
    def net(self, name: str, module: nn.Module | None = None, **config: Any) -> Net:
        """Build network ``name`` from ``cfg.networks.<name>`` (its ``class_path`` when ``module``
        is not given) through ``Net``'s build order, with the run's compile / SyncBatchNorm flags.
        ``config`` sets ``NetConfig`` fields the system decides; a recipe that sets one of them to
        another value is an error, never silently overridden."""
        ncfg = getattr(getattr(self.cfg, "networks", None), name, None)
        if not isinstance(ncfg, NetConfig):
            have = [f.name for f in dataclasses.fields(self.cfg.networks)] \
                if dataclasses.is_dataclass(getattr(self.cfg, "networks", None)) else []
            raise ValueError(f"{type(self).__name__}.net({name!r}): the config has no networks.{name} NetConfig "
                             f"(its networks: {', '.join(have) or 'none'}); add `{name}: NetConfig = "
                             f"field(default_factory=NetConfig)` to its networks table")
        if ncfg.class_path:  # the recipe's own network replaces the system's
            module = import_class(ncfg.class_path, nn.Module, f"networks.{name}.class_path")(**ncfg.init_args)
        if module is None:
            raise ValueError(f"networks.{name}: no module given and no class_path in the recipe")
        default = type(ncfg)()
        for key, value in config.items():  # one place sets each value: a recipe's own is never overridden
            mine = getattr(ncfg, key, getattr(default, key, None))
            if mine != getattr(default, key, None) and mine != value:
                raise ValueError(f"networks.{name}.{key}: the recipe sets {mine!r} and {type(self).__name__} sets "
                                 f"{value!r}; one of them must go")
        train = self.cfg.train
        net = Net(name, module, replace(ncfg, **config) if config else ncfg, self.device, optimizer=not self.inference,
                  compile=train.compile and train.compile_mode, sync_batchnorm=train.sync_batchnorm)
        self.nets[name] = net
        return net

    def phases(self) -> list[Phase]:
        raise NotImplementedError(f"{type(self).__name__} must define phases()")

    def resume_from(self, saved: Any) -> None:
        """Called on resume, before ``phases()``, with the config the checkpoint was trained with
        (the run's may differ in what a resume may change, e.g. ``train.steps``). The phase plan
        needs nothing here: the engine keeps the boundaries a run was trained with
        (``multinet.engine.keep_plan``); a step that reads its phase's span reads the ``Phase``."""

    def engine_options(self) -> EngineOptions:
        """The epoch length and stateful objects (data samplers) of this system's engine."""
        return EngineOptions()

    # -- optional offers ---------------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        raise NotOffered(f"{type(self).__name__} offers no evaluate()")

    def sample(self, n: int, **options: Any) -> torch.Tensor:
        """``n`` samples; ``options`` are the system's own (the GAN's ``rejection="drs"``), passed on
        by ``python -m multinet sample`` from its flags."""
        raise NotOffered(f"{type(self).__name__} offers no sample()")

    def export(self, folder: Path) -> list[Path]:
        raise NotOffered(f"{type(self).__name__} offers no export()")

    def export_networks(self, folder: Path, meta: dict[str, dict[str, Any]]) -> list[Path]:
        """For ``export``: each network named in ``meta`` (its EMA copy when it has one) as
        safetensors + JSON with that meta (``multinet.state.export``); one from a recipe's ``class_path``
        is rebuilt from it, a shipped one from its ``init_args``."""
        from ..state.export import export_module
        paths: list[Path] = []
        for name, info in meta.items():
            ncfg = getattr(self.cfg.networks, name, None)
            path = ncfg.class_path if ncfg is not None and ncfg.class_path else None
            paths += export_module(self.inference_module(name), folder, name, info, path,
                                   ncfg.init_args if path else None)
        return paths

    def offers(self, name: str) -> bool:
        """Whether this system offers ``evaluate`` / ``sample`` / ``export``."""
        return getattr(type(self), name) is not getattr(System, name)

    def handlers(self, ctx: RunContext) -> list[Any]:
        return []

    def finish(self, ctx: RunContext) -> dict[str, Any]:
        return dict(self.evaluate()) if self.offers("evaluate") else {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    # -- reading a checkpoint without a training run -------------------------------------------
    def load_networks(self, ckpt: dict[str, Any], path: str | Path = "checkpoint") -> None:
        """Weights (and EMA copies) from a checkpoint, plus the system's own state; no optimizer."""
        saved = ckpt.get("networks", {})
        for name, net in self.nets.items():
            if name not in saved:
                raise ValueError(f"{path}: has no network {name!r} (has: {', '.join(saved) or 'none'})")
            net.module.load_state_dict(saved[name]["module"])
            if net.ema is not None and name in ckpt.get("ema", {}):
                net.ema.load_state_dict(ckpt["ema"][name])
        state = ckpt.get("stateful", {}).get("system")
        if state:
            self.load_state_dict(state)

    def inference_module(self, name: str) -> nn.Module:
        """Network ``name`` as used for sampling: its EMA copy when it has one."""
        net = self.nets[name]
        return net.ema.module if net.ema is not None else net.module


def check_signature(system: type[System]) -> None:
    """One line, before a run writes anything, when ``system.__init__`` cannot be given ``saved=``:
    ``evaluate`` / ``sample`` / ``export`` build a saved run's system with it, and the system alone
    knows what its inference build leaves out."""
    params = inspect.signature(system.__init__).parameters.values()
    if not any(p.name == "saved" or p.kind is p.VAR_KEYWORD for p in params):
        raise ConfigError(f"{system.__name__}.__init__ takes no saved=: write `def __init__(self, cfg, device, "
                          f"**build)` and call `super().__init__(cfg, device, **build)`")


def engine_for(system: System, steps: int | None = None, **options: Any) -> Engine:
    """The engine a run builds for ``system`` (its networks, phases, streams, epoch length and
    stateful objects, the ``[train]`` settings), without the run's handlers: for tests, notebooks
    and loops of your own. ``options`` go to ``Engine`` (more ``stateful`` objects, ``handlers``)."""
    cfg, opts = system.cfg, system.engine_options()
    if not isinstance(opts, EngineOptions):
        raise ConfigError(f"{type(system).__name__}.engine_options() returned {type(opts).__name__}; return "
                        "multinet.EngineOptions(steps_per_epoch=..., stateful=...)")
    stateful = {"system": system, **opts.stateful, **options.pop("stateful", {})}
    phases = system.phases()
    k = cfg.train.accumulate
    if k != 1 and not any(p.accumulate == k for p in phases):  # a key the system's phases would ignore
        raise ValueError(f"train.accumulate = {k}: {type(system).__name__}'s phases do not take it; give "
                         "Phase(..., accumulate=cfg.train.accumulate) where the system builds them")
    return Engine(system.nets, phases, cfg.train.steps if steps is None else steps, amp=cfg.train.amp,
                  steps_per_epoch=opts.steps_per_epoch, generators=system.streams, stateful=stateful,
                  config=to_dict(cfg), log_every=cfg.train.log_every, check_every=cfg.train.check_every,
                  sync_every=cfg.train.dist_sync_every,
                  meta={"system": object_path(type(system))}, **options)
