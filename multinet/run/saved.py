"""Saved runs: a trained system rebuilt from its checkpoint, for ``evaluate`` / ``sample`` / ``export``.

No engine, no optimizers, no training streams: the networks (and EMA copies) and the system's own
state, built from the checkpoint's config inside the trust boundary (``multinet.state.imports``).
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from ..config import ConfigError, flatten, parse_overrides
from ..engine import load_problem
from ..nets import resolve_device
from ..state.checkpoint import load_checkpoint
from ..state.imports import TRUST_HINT, CodeRefused, import_class, saved_file
from ..state.streams import seed_everything
from .resume import saved_config
from .system import NotOffered, System, check_signature

__all__ = ["load_system", "system_of", "sample_saved", "sample_exported", "save_samples"]


def system_of(ckpt: dict[str, Any], path: str | Path) -> type[System]:
    """The system class a checkpoint names (``meta.system``), imported as the trust boundary allows
    (call it inside ``imports.saved_file``)."""
    name = (ckpt.get("meta") or {}).get("system") if isinstance(ckpt.get("meta"), dict) else None
    if not name:
        raise ValueError(f"{path}: does not say which system wrote it; name it (e.g. --system gan)")
    try:
        return import_class(name, System, "checkpoint system")
    except CodeRefused:
        raise CodeRefused(f"{path}: was written by the system {name}, outside multinet; name it now with --system "
                          f"{name} (Python: load_system(path, YourSystem)), or {TRUST_HINT}") from None


def load_system(path: str | Path, system: type[System] | None = None, device: str = "cpu",
                overrides: list[str] = (), *, trust_code: bool = False,
                allow_no_checksum: bool = False) -> tuple[System, dict[str, Any]]:
    """A trained system from a checkpoint, for ``evaluate`` / ``sample`` / ``export``: its networks
    (and EMA copies) and its own state, built from the checkpoint's config with the overrides
    ``system.evaluate_may_change`` allows, built with ``saved=`` its state: no engine, no optimizers, no
    training streams, and for the shipped systems no data until an evaluation needs it.

    What the checkpoint names outside multinet (its system, a network's ``class_path``, a feature
    network) is imported only when ``system`` or an override names it now, or with ``trust_code``
    (``multinet.state.imports``)."""
    ckpt = load_checkpoint(path, allow_no_checksum=allow_no_checksum)
    over = parse_overrides(list(overrides))
    with saved_file(path, flatten(over).values(), trust_code):
        return _build_saved(ckpt, path, system or system_of(ckpt, path), device, over)


def _build_saved(ckpt: dict[str, Any], path: str | Path, system: type[System], device: str,
                 over: dict[str, Any]) -> tuple[System, dict[str, Any]]:
    bad = sorted(k for k in flatten(over) if not k.startswith(tuple(system.evaluate_may_change)))
    if bad:
        allowed = ", ".join(k + "*" if k.endswith(".") else k for k in system.evaluate_may_change)
        raise ConfigError(f"only {allowed} keys can change for a saved run, got {', '.join(bad)}")
    cfg = saved_config(system, ckpt, path, over)  # data.download and trackers: only as given now
    cfg.device = device
    cfg.train.tensorboard = False
    seed_everything(cfg.seed)
    state = (ckpt.get("stateful") or {}).get("system")
    state = state if isinstance(state, dict) else {}
    check_signature(system)
    built = system(cfg, resolve_device(device), saved=state)
    try:
        built.load_networks(ckpt, path)
    except (RuntimeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: does not fit this system: {load_problem(e)}") from None
    return built, ckpt


def sample_saved(system: System, n: int, rejection: str = "none") -> Any:
    """``n`` samples from a saved run's system (``sample CKPT``), with the rejection scheme its
    ``sample`` offers (``none``: plain draws)."""
    if n <= 0:
        raise ConfigError("--n must be positive")
    options = {"rejection": rejection} if rejection != "none" else {}
    if options and "rejection" not in inspect.signature(system.sample).parameters:
        raise NotOffered(f"{type(system).__name__} offers no rejection sampling")
    return system.sample(n, **options)


def sample_exported(path: str | Path, n: int, seed: int = 0, device: str = "cpu", trust_code: bool = False) -> Any:
    """``n`` samples of an exported generator (``path``: its ``.json`` or the export folder), drawn
    from latents seeded by ``seed``; a class-conditional one draws every class in turn. The export's
    ``meta`` must name a generator with a bounded latent size and class count."""
    if n <= 0:
        raise ConfigError("--n must be positive")
    import torch
    from ..state.export import load_exported, read_export
    spec = Path(path) / "generator.json" if Path(path).is_dir() else Path(path)
    meta = read_export(spec)["meta"]
    if meta.get("kind") != "generator" or not isinstance(meta.get("latent_dim"), int):
        raise ValueError(f"{spec}: not an exported generator (sample needs one; its meta names kind and latent_dim)")
    classes = meta.get("classes") or 0
    for key, value, low, top in (("latent_dim", meta["latent_dim"], 1, 1 << 16), ("classes", classes, 0, 1 << 20)):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= top:
            raise ValueError(f"{spec}: meta.{key} must be an integer from {low} to {top}, got {value!r}")
    G = load_exported(spec, device, trust_code=trust_code)
    z = torch.randn(n, meta["latent_dim"], generator=torch.Generator().manual_seed(seed)).to(device)
    with torch.no_grad():
        return G(z) if not classes else G(z, torch.arange(n, device=z.device) % classes)


def save_samples(x: Any, out: Path) -> str:
    """Write samples ``x`` to ``out`` (``.npy``, float32) and, for images, a grid beside it (``.png``,
    tiny images enlarged); returns what was written, as one line."""
    import numpy as np
    from ..state.checkpoint import atomic_path
    from ..tracking.tracker import viewable
    x = x.cpu()
    out = out if out.suffix == ".npy" else out.with_name(out.name + ".npy")  # the name numpy writes
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        np.save(tmp, x.numpy().astype(np.float32))
    if x.ndim != 4:
        return f"wrote {len(x)} samples to {out}"
    import torchvision
    with atomic_path(out.with_suffix(".png")) as tmp:
        torchvision.utils.save_image(viewable(x), tmp, nrow=int(len(x) ** 0.5) or 1, normalize=True, value_range=(-1, 1))
    return f"wrote {len(x)} samples to {out} and {out.with_suffix('.png')}"
