"""Full-state checkpoints: atomic, checksummed writes, keep-last-k, loads that can never run code.

A checkpoint is one ``torch.save`` file holding a plain dict of names to state_dicts plus RNG
states, counters and the resolved config. It is read with ``torch.load(weights_only=True)``.
A digest of every tensor's bytes and every other value is stored beside them (``checksum``), so
a file whose bytes changed after it was written (a flipped bit, a partial copy) is refused
instead of loading silently wrong weights.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import pickle
import random
import re
import socket
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..config import MAX_STEPS, error_line

__all__ = ["save_checkpoint", "atomic_path", "write_text_atomic", "load_checkpoint", "read_tensors", "CheckpointManager", "rng_state",
           "set_rng_state", "restore_generator", "digest", "file_sha256", "FORMAT"]

FORMAT = "multinet-checkpoint-1"
# What a multinet checkpoint must hold, and of which type, before anything reads it.
REQUIRED = {"config": dict, "networks": dict, "engine": dict, "rng": dict}


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks (exports, downloaded weights)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digest(value: Any) -> str:
    """BLAKE2b over a nested payload: every tensor's dtype, shape and bytes, every other leaf's repr,
    in the payload's own order (dicts keep insertion order through torch.save)."""
    h = hashlib.blake2b(digest_size=16)

    def walk(v: Any) -> None:
        if isinstance(v, torch.Tensor):
            t = v.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(v, dict):
            h.update(b"{")
            for k, x in v.items():
                h.update(repr(k).encode())
                walk(x)
            h.update(b"}")
        elif isinstance(v, (list, tuple)):
            h.update(b"[")
            for x in v:
                walk(x)
            h.update(b"]")
        else:
            h.update(repr(v).encode())
    walk(value)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` atomically: temporary file, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **payload, "checksum": digest(payload)}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except RuntimeError as e:  # torch's writer reports a short write as "unexpected pos ..."
        Path(tmp).unlink(missing_ok=True)
        raise OSError(f"{path}: cannot be written ({write_limit() or error_line(e, 120)})") from None
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.errno == errno.EFBIG:
            raise OSError(f"{path}: cannot be written ({write_limit() or 'file too large'})") from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_limit() -> str:
    """Why a write may have stopped short, when a file size limit (``ulimit -f``) is set."""
    try:
        import resource
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    except (ImportError, OSError, ValueError):
        return ""
    if limit == resource.RLIM_INFINITY:
        return ""
    return f"the file size limit (ulimit -f) is {limit:,} bytes; raise it or free the disk"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block ends
    without error, removed otherwise. A full disk or a kill leaves the old file, never an empty
    or half-written one. The name keeps the suffix (matplotlib reads it) and the host and process."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}-{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (``atomic_path``)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_tensors(path: str | Path) -> dict[str, Any]:
    """Read any torch file safely (weights only); one-line errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"(?:Unsupported global: |unsupported )GLOBAL ([\w.]+)", str(e))
        if found:
            raise ValueError(f"{path}: refused, the file holds code ({found.group(1)}), not only tensors "
                             "and plain data") from None
        raise ValueError(f"{path}: not a readable checkpoint (corrupt)") from None
    except Exception as e:  # noqa: BLE001 - any other parse failure of a non-checkpoint (a text file: KeyError)
        raise ValueError(f"{path}: not a readable checkpoint (truncated or corrupt): {error_line(e, 160)}") from None


def is_checkpoint(data: Any) -> bool:
    return isinstance(data, dict) and data.get("format") == FORMAT


def load_checkpoint(path: str | Path, parts: tuple[str, ...] = tuple(REQUIRED),
                    allow_no_checksum: bool = False) -> dict[str, Any]:
    """Load a multinet checkpoint; anything else (another file, a changed byte, a missing part of
    ``parts``, a missing checksum unless ``allow_no_checksum``) gives a one-line ``ValueError``
    naming the file."""
    return check_checkpoint(read_tensors(path), path, parts, allow_no_checksum)


def check_checkpoint(data: Any, path: str | Path, parts: tuple[str, ...] = tuple(REQUIRED),
                     allow_no_checksum: bool = False) -> dict[str, Any]:
    """``load_checkpoint``'s checks on data already read: marker, checksum, the parts and their types.

    Every checkpoint multinet writes carries its checksum, so one without is refused: removing the
    key would otherwise be the way to load altered weights. ``allow_no_checksum`` is for a file
    written before checkpoints had one, and the user must say so."""
    if not is_checkpoint(data):
        raise ValueError(f"{path}: not a multinet checkpoint (no '{FORMAT}' marker)")
    stored = data.pop("checksum", None)
    payload = {k: v for k, v in data.items() if k != "format"}
    if stored is None and not allow_no_checksum:
        raise ValueError(f"{path}: has no checksum, so a change to it cannot be detected; refused (every checkpoint "
                         "multinet writes has one; for a file from before checksums, pass --allow-no-checksum)")
    if stored is not None and stored != digest(payload):
        raise ValueError(f"{path}: checksum mismatch: the file changed after it was written (corrupt); "
                         f"use an earlier checkpoint")
    for key in parts:
        kind = REQUIRED[key]
        if not isinstance(data.get(key), kind):
            got = "missing" if key not in data else f"a {type(data[key]).__name__}"
            raise ValueError(f"{path}: broken checkpoint: '{key}' is {got}, expected a {kind.__name__}")
    if "engine" in parts:
        _check_counters(data["engine"], path)
    return data


def _count(value: Any, low: int = 0, high: int = MAX_STEPS) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_counters(engine: dict[str, Any], path: str | Path) -> None:
    """The engine's counters, before anything uses them: whole numbers in their ranges (a resume
    "finishing" at step 10^30 is a crafted file, not a run), and a plan whose phases end after they start."""
    steps, plan, phase = engine.get("phase_steps", {}), engine.get("plan") or {}, engine.get("phase", [])
    for what, ok, bound in (
            ("iteration", _count(engine.get("iteration")), f"0 to {MAX_STEPS:.0e}"),
            ("phase_steps", isinstance(steps, dict) and all(_count(v, high=1 << 62) for v in steps.values()), "counts"),
            ("world_size", _count(engine.get("world_size", 1), 1, 1 << 20), "1 to 2^20"),
            ("total_steps", engine.get("total_steps") is None or _count(engine["total_steps"]), f"0 to {MAX_STEPS:.0e}"),
            ("plan", isinstance(plan, dict) and all(isinstance(b, (list, tuple)) and len(b) == 2 and _count(b[0])
                                                   and (b[1] is None or _count(b[1], b[0])) for b in plan.values()),
             "[start, stop] steps, stop after start"),
            ("phase", isinstance(phase, list) and all(isinstance(p, str) for p in phase), "phase names")):
        if not ok:
            raise ValueError(f"{path}: broken checkpoint: engine {what} {engine.get(what)!r:.60} is not valid ({bound})")


class CheckpointManager:
    """``step_XXXXXXXX.pt`` files plus ``last.pt``; keeps the newest ``keep_last`` step files."""

    def __init__(self, directory: str | Path, keep_last: int = 3) -> None:
        self.dir = Path(directory)
        self.keep_last = keep_last

    def save(self, payload: dict[str, Any], step: int) -> Path:
        path = save_checkpoint(payload, self.step_path(step))
        # last.pt is a second atomic write of the same bytes, so it is never half-written.
        fd, tmp = tempfile.mkstemp(prefix=".last.pt.", suffix=".tmp", dir=self.dir)
        os.close(fd)
        os.unlink(tmp)
        try:
            os.link(path, tmp)
        except OSError:
            save_checkpoint(payload, tmp)
        os.replace(tmp, self.dir / "last.pt")
        _fsync_dir(self.dir)
        self._prune()
        return path

    def step_path(self, step: int) -> Path:
        """The file of iteration ``step``'s checkpoint."""
        return self.dir / f"step_{step:08d}.pt"

    def _prune(self) -> None:
        if self.keep_last <= 0:
            return
        steps = sorted(p for p in self.dir.glob("step_*.pt") if re.fullmatch(r"step_\d+\.pt", p.name))
        for old in steps[:-self.keep_last]:
            old.unlink(missing_ok=True)

    @property
    def last(self) -> Path:
        return self.dir / "last.pt"


def rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Python, numpy, torch (CPU and every CUDA device) and named generator states as tensors/lists."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    return state


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    """Restore Python's, NumPy's, torch's (and CUDA's, on the same device count) global random
    state from ``get_rng_state()``'s dict, and each named generator in ``generators`` from its entry."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    missing = []
    for k, g in (generators or {}).items():
        if k in state["generators"]:
            restore_generator(g, state["generators"][k], k)
        else:
            missing.append(k)
    if missing:  # e.g. a checkpoint written before the stream existed, or under another name
        warnings.warn(f"random stream(s) {', '.join(map(repr, missing))} not in the checkpoint: they start from "
                      f"their seeds, so this run will not continue the saved random streams exactly", stacklevel=2)


def restore_generator(g: torch.Generator, state: torch.Tensor, name: str) -> None:
    """Restore a generator; a state saved on another device type cannot be, so say so and go on."""
    try:
        g.set_state(state)
    except RuntimeError:
        warnings.warn(f"random generator {name!r} was saved on another device type; it keeps its fresh "
                      "seed, so this run will not continue the saved random stream exactly", stacklevel=3)
