"""Where numbers go: TensorBoard (``torch.utils.tensorboard``), ``metrics.jsonl`` and image grids,
and to any experiment trackers of ``train.trackers`` (``multinet.tracking.backends``: MLflow, W&B).

Tag names are stable and per network: ``loss/discriminator``, ``lr/generator/<group>``,
``grad_norm/decoder``.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import torch

from ..config import error_line
from ..state.checkpoint import atomic_path, write_text_atomic
from ..state.runfiles import MAX_METRICS, parse_json, read_text, regular_file

__all__ = ["Tracker", "NullTracker", "json_safe", "viewable"]


def json_safe(value: Any) -> Any:
    """JSON has no inf/NaN: write them as null (e.g. reverse KL when no mode is captured)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def viewable(images: torch.Tensor) -> torch.Tensor:
    """``images`` (N, C, H, W) on the CPU, tiny ones (8x8 digits) enlarged to at least 32 pixels a
    side by whole-pixel repetition, so that a grid of them can be read as a PNG."""
    images = images.detach().float().cpu()
    if images.ndim == 4 and 0 < images.shape[-1] < 32:
        images = torch.nn.functional.interpolate(images, scale_factor=-(-32 // images.shape[-1]), mode="nearest")
    return images


class Tracker:
    """Writes scalars to TensorBoard and ``metrics.jsonl``; saves image grids under ``samples/``.

    ``resume_step``: the step of the checkpoint a resumed run starts from. A run that died after
    its last checkpoint (killed, out of memory, power cut) had logged steps past it; those rows are
    dropped from ``metrics.jsonl`` and hidden in TensorBoard (``purge_step``), so the continued run
    writes each step once and the record matches an uninterrupted run's.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, resume_step: int | None = None,
                 backends: list[Any] = ()) -> None:
        self.backends = list(backends)  # scalars, image grids, figures and text go to each too
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / "metrics.jsonl"
        # Appended to, so never a FIFO (the open would wait for a reader) or a link out of the folder.
        if regular_file(path, self.run_dir, "the run's metrics") and resume_step is not None:
            _drop_rows_after(path, resume_step)
        self._jsonl = open(path, "a", buffering=1)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            purge = None if resume_step is None else resume_step + 1
            self._tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        clean = {k: float(v) for k, v in values.items()}
        self._jsonl.write(json.dumps({"step": step, **{k: (v if math.isfinite(v) else str(v))
                                                       for k, v in clean.items()}}) + "\n")
        if self._tb is not None:
            for k, v in clean.items():
                self._tb.add_scalar(k, v, step)
        self._send("scalars", step, {k: v for k, v in clean.items() if math.isfinite(v)})

    def summary(self, step: int, values: dict[str, Any]) -> None:
        """The run's final figures (``summary.json``), to the experiment trackers: their numbers as
        metrics at the last step (``metrics.jsonl`` and TensorBoard have the evaluation already)."""
        numbers = {k: float(v) for k, v in values.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        self._send("scalars", step, numbers)

    def images(self, tag: str, images: torch.Tensor, step: int, nrow: int = 8,
               value_range: tuple[float, float] = (-1.0, 1.0)) -> Path:
        """Save ``images`` (N, C, H, W) as ``samples/<tag>_<step>.png`` and to TensorBoard."""
        import torchvision  # here, not at import: it takes about 2 s, and runs without images never need it
        grid = torchvision.utils.make_grid(viewable(images), nrow=nrow, normalize=True, value_range=value_range,
                                           padding=1)
        path = self.run_dir / "samples" / f"{tag.replace('/', '_')}_{step:08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torchvision.utils.save_image(grid, tmp)
        if self._tb is not None:
            self._tb.add_image(tag, grid, step)
        self._send("image", tag, grid, step)
        return path

    def figure(self, tag: str, fig: Any, step: int) -> None:
        if self._tb is not None:
            self._tb.add_figure(tag, fig, step, close=False)
        self._send("figure", tag, fig, step)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        if self._tb is not None:
            self._tb.add_text(tag, "    " + text.replace("\n", "\n    "), step)
        self._send("text", tag, text, step)

    def close(self) -> None:
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
        for b in self.backends:
            try:
                b.close()
            except Exception as e:  # noqa: BLE001 - the run's own files are written; say it and go on
                warnings.warn(f"tracker {type(b).__name__}: not closed cleanly ({error_line(e, 160)})", stacklevel=2)

    def _send(self, method: str, *args: Any) -> None:
        """``method(*args)`` on each experiment tracker. One that fails mid-run (its server gone, a
        full disk) stops the run as any error in it does: one line, the last checkpoint kept."""
        for b in self.backends:
            try:
                getattr(b, method)(*args)
            except Exception as e:  # noqa: BLE001 - MLflow's and W&B's many exception types
                raise RuntimeError(f"tracker {type(b).__name__}: {method} failed ({error_line(e, 200)})") from None


def _drop_rows_after(path: Path, step: int) -> None:
    """Keep the rows of ``path`` up to ``step``; a torn last line (the writer was killed) goes too."""
    keep = []
    for line in read_text(path, path.parent, MAX_METRICS).splitlines():
        try:
            row = parse_json(line, str(path))
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            keep.append(line + "\n")
    write_text_atomic(path, "".join(keep))


class NullTracker:
    """What ranks other than 0 write to under torch.distributed: nothing."""

    def scalars(self, step: int, values: dict[str, float]) -> None: ...

    def summary(self, step: int, values: dict[str, Any]) -> None: ...

    def images(self, tag: str, images: torch.Tensor, step: int, **_: Any) -> None: ...

    def figure(self, tag: str, fig: Any, step: int) -> None: ...

    def text(self, tag: str, text: str, step: int = 0) -> None: ...

    def close(self) -> None: ...
