"""Experiment trackers beside TensorBoard: MLflow and Weights & Biases (optional extras).

Each receives what the run's ``Tracker`` writes — scalars, sample grids, figures, text — and the
resolved config once, as parameters. Both work offline: MLflow writes a local file store
(``<run>/mlruns``; ``mlflow ui --backend-store-uri <run>/mlruns`` shows it) unless
``train.mlflow_uri`` names a server, and W&B logs in offline mode under ``<run>/wandb``
(``wandb sync`` uploads it later) unless ``train.wandb_mode = "online"``. A resumed run logs to
the same MLflow run / W&B run id, kept in the run folder.
"""
from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import torch

from ..config import error_line
from ..state.checkpoint import write_text_atomic
from ..state.runfiles import read_text

__all__ = ["MlflowTracker", "WandbTracker", "make_trackers"]

_MLFLOW_BAD = re.compile(r"[^A-Za-z0-9_\-. /]")  # what MLflow refuses in a metric name
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # MLflow's 32 hex digits, W&B's run ids
# How long a run waits for a tracking server before it stops in one line (MLflow's own settings,
# which a user's environment overrides): two retries of ten seconds at most, one second apart.
_MLFLOW_PATIENCE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0"}
WANDB_INIT_TIMEOUT = 30.0  # seconds W&B may take to start an online run


def _grid_uint8(grid: torch.Tensor) -> Any:
    """A (C, H, W) image grid in [0, 1] as an (H, W, 3) uint8 array."""
    g = grid.detach().float().cpu().clamp(0, 1)
    g = g.expand(3, -1, -1) if g.shape[0] == 1 else g
    return (g.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


def _saved_id(out: Path, name: str) -> str | None:
    """The tracker's run id a resumed run continues (a file in the run folder, so data: checked)."""
    path = out / name
    if not path.exists():
        return None
    run_id = read_text(path, out, limit=4096).strip()
    if run_id and not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"{path}: {run_id[:40]!r} is not a tracker run id (letters, digits, - and _); "
                         "remove the file to start a new tracker run")
    return run_id or None


class MlflowTracker:
    """Scalars, sample grids and the resolved config to MLflow: a local file store under the run
    folder ``out`` unless ``uri`` names a tracking server; runs under ``experiment``."""

    def __init__(self, out: Path, config: dict[str, Any], uri: str = "", experiment: str = "multinet") -> None:
        if not uri or uri.startswith("file:"):
            # MLflow 3 keeps its file store in maintenance mode behind this switch; it is the store
            # that needs no server and no database driver, which an offline run wants.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            uri = uri or (out / "mlruns").resolve().as_uri()
        else:  # a server: an unreachable one fails within seconds, not after MLflow's minutes of retries
            for key, value in _MLFLOW_PATIENCE.items():
                os.environ.setdefault(key, value)
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient
        self._metric = Metric
        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(experiment)
        run_id = _saved_id(out, "mlflow_run_id")
        if run_id is None:
            run_id = self.client.create_run(exp_id, run_name=out.name).info.run_id
            write_text_atomic(out / "mlflow_run_id", run_id + "\n")
            params = [Param(k, str(v)[:500]) for k, v in config.items()]
            for i in range(0, len(params), 100):
                self.client.log_batch(run_id, params=params[i:i + 100])
        self.run_id = run_id

    def scalars(self, step: int, values: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        metrics = [self._metric(_MLFLOW_BAD.sub("_", k), float(v), now, step) for k, v in values.items()]
        for i in range(0, len(metrics), 500):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 500])

    def image(self, tag: str, grid: torch.Tensor, step: int) -> None:
        self.client.log_image(self.run_id, _grid_uint8(grid), key=tag.replace("/", "_"), step=step)

    def figure(self, tag: str, fig: Any, step: int) -> None:
        self.client.log_figure(self.run_id, fig, f"{tag.replace('/', '_')}_{step:08d}.png")

    def text(self, tag: str, text: str, step: int = 0) -> None:
        self.client.log_text(self.run_id, text, f"{tag.replace('/', '_')}.txt")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class WandbTracker:
    """Scalars, sample grids and the resolved config to Weights & Biases in ``project``; ``mode``
    ``offline`` (files under ``out``, synced later with ``wandb sync``), ``online`` or ``disabled``."""

    def __init__(self, out: Path, config: dict[str, Any], project: str = "multinet", mode: str = "offline") -> None:
        import wandb
        self.wandb = wandb
        run_id = _saved_id(out, "wandb_run_id") or uuid.uuid4().hex[:8]
        write_text_atomic(out / "wandb_run_id", run_id + "\n")
        self.run = wandb.init(project=project, dir=str(out), mode=mode, config=config, name=out.name, id=run_id,
                              resume="allow", settings=wandb.Settings(silent=True, init_timeout=WANDB_INIT_TIMEOUT))
        self.last = -1

    def _log(self, values: dict[str, Any], step: int) -> None:
        if step >= self.last:  # W&B refuses steps that go back (a resumed run re-logging a purged step)
            self.run.log(values, step=step)
            self.last = step

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self._log(dict(values), step)

    def image(self, tag: str, grid: torch.Tensor, step: int) -> None:
        self._log({tag: self.wandb.Image(_grid_uint8(grid))}, step)

    def figure(self, tag: str, fig: Any, step: int) -> None:
        self._log({tag: self.wandb.Image(fig)}, step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        self.run.summary[tag] = text

    def close(self) -> None:
        self.run.finish()


def make_trackers(train: Any, out: Path, config: dict[str, Any]) -> list[Any]:
    """The trackers ``train.trackers`` names, for the run in ``out`` with its flattened config."""
    made: list[Any] = []
    for name in train.trackers:
        where = f"train.mlflow_uri {train.mlflow_uri!r}" if name == "mlflow" else f"W&B ({train.wandb_mode})"
        try:
            if name == "mlflow":
                made.append(MlflowTracker(out, config, train.mlflow_uri, train.mlflow_experiment))
            elif name == "wandb":
                made.append(WandbTracker(out, config, train.wandb_project, train.wandb_mode))
        except Exception as e:  # noqa: BLE001 - MLflow's and W&B's many exception types, network errors among them
            for tracker in made:
                tracker.close()
            if isinstance(e, ValueError) and str(e).startswith(str(out)):  # our own check of a run file
                raise
            raise ValueError(f"train.trackers {name}: cannot start ({where}: {error_line(e, 200)})") from None
    return made
