"""The runner: trains any ``System`` with everything a run needs, from Python or the command line.

    from multinet.run.runner import Runner
    result = Runner(MySystem, cfg, "runs/mine").fit()           # a new run
    result = Runner(MySystem, out="runs/mine", resume=True).fit()  # continue it, bit-exact

Order: config checks → device and process group (torchrun) → seeds → system (networks, streams,
data) → engine → checkpoint state on resume → run folder (``recipe.toml``,
``parameter_groups.txt``) → tracker → handlers (progress, scalars, checkpoints, signals, the
system's own) → run → summary (``summary.json``). Everything is checked before anything is
written: a bad recipe leaves no run folder behind. Under torchrun every rank trains; rank 0
alone writes.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import distributed
from ..config import ConfigError, error_line, flatten, to_dict, to_toml
from ..engine import EXIT_CODES, Engine, Event, StopReason
from ..handlers import Checkpointer, EvaluateEvery, LogScalars, NonFiniteLoss, ProgressBar, StopOnSignal, Timer
from ..nets import resolve_device
from ..startup import setup_done
from ..state.checkpoint import write_text_atomic
from ..state.imports import saved_file
from ..state.runfiles import read_json
from ..state.streams import seed_everything
from ..tracking import NullTracker, Tracker
from ..tracking.backends import make_trackers
from ..tracking.tracker import json_safe
from .lock import RunLock, clear_run_folder, earlier_run
from .outcomes import ended
from .resume import Resume, check_resume_overrides, checkpoint_run, lr_changes, open_resume, trackers_left
from .system import RunContext, System, check_signature, engine_for, notes_shown

__all__ = ["Runner", "RunResult"]


@dataclass
class RunResult:
    """``code``: 0 done (or stopped at ``stop_at``), 1 diverged or failed, 130 / 143 stopped by SIGINT /
    SIGTERM (``multinet.engine.EXIT_CODES``); ``stop_reason``: why it ended before its end (None: it did not)."""

    code: int
    step: int
    out: Path
    summary: dict[str, Any] = field(default_factory=dict)
    stop_reason: StopReason | None = None
    checkpoint: Path | None = None
    error: str = ""
    seconds: float = 0.0  # training time, across the run's resumes (``handlers.Timer``)


class Runner:
    """Train ``system`` (a ``System`` subclass) with config ``cfg`` into run folder ``out``.

    ``resume``: ``True`` for ``out/checkpoints/last.pt`` or a checkpoint path; ``cfg`` may then be
    left out (the checkpoint's own) or change only what a resumed run can honour. ``trackers``:
    more scalar trackers beside TensorBoard / ``metrics.jsonl`` (anything with ``scalars(step, values)``).
    ``trust_code``: a resumed run may import what its checkpoint's config names outside multinet
    (``multinet.state.imports``); ``allow_no_checksum``: a checkpoint without a checksum may be read.
    ``on_evaluation``: ``fn(engine, figures)`` after each ``train.eval_every`` evaluation (a sweep prunes).
    """

    def __init__(self, system: type[System], cfg: Any = None, out: str | Path | None = None, *,
                 resume: bool | str | Path | Resume | None = None,
                 progress: bool = True, stop_at: int | None = None, trackers: tuple[Any, ...] = (),
                 echo: bool = True, overwrite: bool = False, trust_code: bool = False,
                 allow_no_checksum: bool = False, on_evaluation: tuple[Any, ...] = (),
                 takes_over: tuple[int, str] | None = None) -> None:
        self.system_cls, self.progress, self.stop_at, self.trackers, self.echo = system, progress, stop_at, trackers, echo
        self.takes_over = takes_over  # (pid, host) of a dead worker whose run folder lock may be taken
        self.overwrite, self.trust_code, self.on_evaluation = overwrite, trust_code, on_evaluation
        if isinstance(out, str) and not out.strip():
            raise ConfigError("out: empty; name the run folder")
        if isinstance(resume, Resume) or not resume:
            self.resume = resume or None
        else:  # True or a path: read the checkpoint here (the command line hands over a Resume)
            self.resume = open_resume(system, resume, out, allow_no_checksum)
        # On resume: the checkpoint, its path, and the config it was trained with.
        r = self.resume
        self.ckpt, self.ckpt_path, self.saved_cfg = (r.checkpoint, r.path, r.saved_cfg) if r else (None, None, None)
        if r is not None:
            out = r.out
            if cfg is None:
                cfg = self.saved_cfg
            else:
                check_resume_overrides(system, self.saved_cfg, cfg)
        self.cfg = cfg if cfg is not None else system.Config()
        self.out = Path(out) if out is not None else Path("runs") / f"{system.__name__.lower()}-{time.strftime('%Y%m%d-%H%M%S')}"

    def _rebuilding(self) -> Any:
        """On resume, the system is rebuilt from the checkpoint's config: what it names outside
        multinet is imported only if the user changed it now or trusts the file."""
        if self.ckpt is None:
            return contextlib.nullcontext()
        old = flatten(to_dict(self.saved_cfg))
        now = [v for k, v in flatten(to_dict(self.cfg)).items() if old.get(k) != v]
        return saved_file(self.ckpt_path, now, self.trust_code)

    def _apply_lr_changes(self, system: System) -> None:
        """A new ``networks.<name>.lr`` on resume takes effect: every group of that network's
        optimizer is rescaled by new / saved (group multipliers, momentum and the schedule's
        position kept). This is also the way on after a NaN stop: resume the last good
        checkpoint with a lower learning rate."""
        for name, (old, new) in lr_changes(self.saved_cfg, self.cfg).items():
            net = system.nets.get(name)
            if net is None:
                continue
            if not old or not new:  # 0 has no ratio to rescale by
                raise ConfigError(f"networks.{name}.lr: {old} -> {new} cannot be applied on --resume; start a new run")
            net.rescale_lr(new / old)
            self._say(f"note: networks.{name}.lr {old:g} -> {new:g}: every group of its optimizer rescaled by "
                      f"{new / old:g} (optimizer state and schedule position kept)")

    def _say(self, text: str, err: bool = True) -> None:
        if self.echo:
            print(text, file=sys.stderr if err else sys.stdout)

    def _check(self) -> None:
        cfg = self.cfg
        check_signature(self.system_cls)
        if cfg.train.steps <= 0:
            raise ConfigError("train.steps: must be positive")
        if self.stop_at is not None and self.stop_at < 1:
            raise ConfigError(f"--stop-at: must be >= 1, got {self.stop_at}")
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"--out {self.out}: exists and is not a folder")
        self._refuse_earlier_run()

    def _refuse_earlier_run(self) -> None:
        """A new run (no --resume, no --overwrite) stops where another run has written: checked once
        before the slow setup and again once the lock is held, since a run that started at the same
        moment may have finished and released the folder in between."""
        earlier = earlier_run(self.out)
        if self.ckpt is not None and earlier and self.out.resolve() != checkpoint_run(self.ckpt_path):
            raise ConfigError(f"--out {self.out}: holds another run's files ({', '.join(earlier)}); a resumed run "
                              f"writes into its own folder ({checkpoint_run(self.ckpt_path)}) or an empty one")
        if self.ckpt is None and earlier and not self.overwrite:
            hint = f"continue it with --resume --out {self.out}, " if (self.out / "checkpoints" / "last.pt").exists() else ""
            raise ConfigError(f"--out {self.out}: holds an earlier run's files ({', '.join(earlier)}); {hint}choose "
                              f"another folder, or add --overwrite to replace them")

    def _summarized(self, step: int) -> bool:
        """Whether the run folder holds the summary of a run that ended at ``step``."""
        try:
            return read_json(self.out / "summary.json", self.out).get("steps") == step
        except (OSError, ValueError):
            return False

    def _clear(self) -> None:
        """Before a run writes: a new run replaces what ``_refuse_earlier_run`` let by (--overwrite,
        or the setup files of a run that died before any result); killed saves' temporary files go."""
        clear_run_folder(self.out, earlier_files=self.ckpt is None)

    def fit(self) -> RunResult:
        """Set up and train; setup errors raise ``ValueError`` (``ConfigError``) or ``OSError`` with
        one line, a diverged run returns code 1 with its error, signals return 130 / 143 after saving."""
        self.lock = RunLock(self.out, self.takes_over)
        try:
            with notes_shown(self.echo):  # the system's notes: on stderr, unless echo=False
                try:
                    setup = self._setup()
                except RuntimeError as e:  # a dataset that is not there, a process group that did not form, ...
                    raise ValueError(error_line(e)) from None
                return setup if isinstance(setup, RunResult) else self._train(*setup)
        finally:
            self.lock.release()

    def _setup(self) -> RunResult | tuple[Engine, System, Checkpointer, Any, bool]:
        cfg = self.cfg
        self._check()
        device = resolve_device(cfg.device)
        world = distributed.init(device.type, cfg.train.dist_timeout)
        if cfg.train.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        seed_everything(cfg.seed)  # the same on every rank: identical initial weights
        checkpointer = Checkpointer(self.out / "checkpoints", cfg.train.checkpoint_every, cfg.train.keep_last,
                                    best=cfg.train.best_metric, mode=cfg.train.best_mode, enabled=world.main)
        with self._rebuilding():
            system = self.system_cls(cfg, device)
            if self.ckpt is not None:
                system.resume_from(self.saved_cfg)
            engine = engine_for(system, stateful={"checkpointer": checkpointer, "timer": Timer()})
        resumed = self.ckpt is not None
        if resumed:
            try:
                engine.load_state_dict(self.ckpt)
            except (ValueError, KeyError, TypeError, IndexError) as e:
                raise ValueError(f"{self.ckpt_path}: {e}") from None
            self._apply_lr_changes(system)
            for name in trackers_left(self.ckpt, cfg) if world.main else ():
                self._say(f"note: {self.ckpt_path} logged to {name}; this resume does not (a saved file never chooses where "
                          f"data goes): give train.trackers=['{name}'] and its address again to continue there")
            saved = int(self.ckpt["engine"].get("world_size", 1))
            if saved != world.world and world.main:
                self._say(f"note: {self.ckpt_path} was written by {saved} rank(s), now {world.world}: batch sizes are "
                          f"per rank, so the global batch changes by {world.world}/{saved} unless you scale the "
                          f"batch size (the data and noise streams continue either way)")
            if engine.iteration >= cfg.train.steps:
                # Trained to the end: done, unless the run stopped before its final evaluation and
                # summary were written (a kill after the last checkpoint): then that is what is left.
                if self._summarized(engine.iteration):
                    if world.main:
                        self._say(f"{self.ckpt_path}: already at step {engine.iteration} of {cfg.train.steps}; "
                                  f"nothing to do", err=False)
                    return RunResult(0, engine.iteration, self.out, checkpoint=self.ckpt_path,
                                     seconds=engine.stateful["timer"].seconds)
                if world.main:
                    self._say(f"{self.ckpt_path}: at step {engine.iteration} of {cfg.train.steps}, but the run "
                              "stopped before its final evaluation; finishing it")
        tracker: Any = NullTracker()
        if world.main:  # the first write: the folder is this run's from here on
            self.lock.acquire()
            self._refuse_earlier_run()
            self._clear()
            write_text_atomic(self.out / "recipe.toml", to_toml(to_dict(cfg)))
            tracker = Tracker(self.out, tensorboard=cfg.train.tensorboard,
                              resume_step=engine.iteration if resumed else None,
                              backends=make_trackers(cfg.train, self.out, flatten(to_dict(cfg))))
            with open(self.out / "parameter_groups.txt", "a") as f:
                for net in system.nets.values():
                    text = net.report()
                    tracker.text("parameter_groups", text)
                    f.write(text + "\n\n")
        if world.world > 1:  # global RNGs (dropout and the like) differ per rank; data and noise do not
            seed_everything(cfg.seed + 100_003 * world.rank + engine.iteration)
        return engine, system, checkpointer, tracker, resumed

    def _train(self, engine: Engine, system: System, checkpointer: Checkpointer, tracker: Any,
               resumed: bool) -> RunResult:
        cfg, main = self.cfg, engine.dist.main
        setup_done()  # from here on an interrupt is the run's to save and stop on
        scalars = LogScalars(tracker, *self.trackers)  # at the engine's log_every
        bar = ProgressBar(cfg.train.steps, desc=type(system).__name__, enabled=self.progress and main, scalars=scalars)
        signals = StopOnSignal()
        timer = engine.stateful["timer"]
        handlers: list[Any] = [timer, bar, scalars, signals]
        if main:  # samples and evaluation: rank 0 only, and free of collectives
            if cfg.train.eval_every and system.offers("evaluate"):
                handlers.append(EvaluateEvery(system.evaluate, cfg.train.eval_every, tracker))
                for fn in self.on_evaluation:
                    engine.on(Event.EVALUATED, lambda e, fn=fn: fn(e, e.evaluation))
        result = RunResult(0, engine.iteration, self.out)
        try:
            try:
                if main:  # the system's own code: an error in it ends the run as one in a step does
                    handlers += system.handlers(RunContext(self.out, tracker, resumed, engine.iteration))
                # The checkpointer runs after every other handler of a step: a checkpoint at step N holds
                # what step N's evaluations produced, so a run stopped during one resumes from the
                # checkpoint before it and evaluates again instead of skipping the evaluation.
                handlers.append(checkpointer)
                engine.run(self.stop_at, handlers)
            finally:  # closed first: no line said below is glued to the end of the bar
                bar.close()
            result.step, result.checkpoint = engine.iteration, checkpointer.last if main else None
            if engine.stop_reason is not None:
                if main:
                    self._say(f"stopped by {engine.stop_reason.value} at step {engine.iteration}; checkpoint "
                              f"{checkpointer.step_file(engine.iteration)} "
                              f"(resume: --resume {checkpointer.last})")
                result.stop_reason, result.code = engine.stop_reason, EXIT_CODES[engine.stop_reason]
            elif main:
                summary = system.finish(RunContext(self.out, tracker, resumed, engine.iteration))
                summary.update({"steps": engine.iteration, "resumed": resumed, "world_size": engine.dist.world})
                result.summary = json_safe(summary)
                write_text_atomic(self.out / "summary.json", json.dumps(result.summary, indent=2))
                tracker.summary(engine.iteration, flatten(result.summary, sep="/"))
                self._say(json.dumps(result.summary), err=False)
            distributed.barrier()  # no rank leaves (and no launcher tears down) while rank 0 writes
        except (KeyboardInterrupt, Exception) as e:  # NonFiniteLoss, StepError, HandlerError: RuntimeErrors
            if isinstance(e, (OSError, ValueError)):  # a full disk, a setting: the command line's one line
                raise
            if os.environ.get("MULTINET_TRACEBACK") and not isinstance(e, (KeyboardInterrupt, NonFiniteLoss)):
                raise
            result.stop_reason, result.error, said = ended(e, engine, checkpointer.last)
            result.code = EXIT_CODES[result.stop_reason]
            if main or result.stop_reason is not StopReason.DIVERGED:  # every rank diverges alike: rank 0 says it
                self._say(said)
        finally:
            result.seconds = timer.seconds
            signals.restore()
            tracker.close()
        return result
