"""Trained networks outside a run: safetensors weights plus a JSON file saying how to rebuild them.

``export_module(module, folder, name)`` writes ``name.safetensors`` (the state dict, on the CPU)
and ``name.json``: the class's import path, the keyword arguments that build it, a SHA-256 of the
weights and free-form ``meta`` (a generator's latent size, its output range). ``load_exported``
turns that back into a ready module in eval mode, for code that has never seen a training run.

Why safetensors: a checkpoint is a pickle (read here with ``weights_only``, but still a format
for this program alone), while safetensors is plain tensors that any framework reads without
running code, and loads by memory map. The rebuild goes through ``imports.import_class``, so a
JSON file naming something that is not an ``nn.Module`` is refused before it is called.

How a module says how it was built: the shipped networks keep their constructor arguments as
``init_args``; a network from a recipe's ``class_path`` has them in the recipe.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import file_sha256, write_text_atomic
from .imports import import_class, object_path

__all__ = ["export_module", "load_exported", "read_export", "FORMAT"]

FORMAT = "multinet-export/1"


def export_module(module: nn.Module, folder: str | Path, name: str, meta: dict[str, Any] | None = None,
                  class_path: str | None = None, init_args: dict[str, Any] | None = None) -> list[Path]:
    """Write ``folder/name.safetensors`` and ``folder/name.json``; returns both paths."""
    from safetensors.torch import save_file
    if init_args is None:
        init_args = getattr(module, "init_args", None)
    if init_args is None:
        raise ValueError(f"cannot export {name!r}: {type(module).__name__} does not say how it was built (give it "
                         "an init_args dict of its constructor arguments, or build it from a recipe's class_path)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights, spec = folder / f"{name}.safetensors", folder / f"{name}.json"
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}
    tmp = weights.with_name(f".{weights.name}.tmp")
    try:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
        tmp.replace(weights)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    info = {"format": FORMAT, "class_path": class_path or object_path(type(module)), "init_args": init_args,
            "weights": weights.name, "sha256": file_sha256(weights), "meta": meta or {}}
    write_text_atomic(spec, json.dumps(info, indent=2) + "\n")
    return [weights, spec]


def read_export(path: str | Path) -> dict[str, Any]:
    """The JSON of an export (``path`` is the .json file, or a folder plus the default name)."""
    path = Path(path)
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such export") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable export ({e})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"{path}: not a multinet export (format {FORMAT})")
    return info


def load_exported(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The module an export describes, with its weights, in eval mode on ``device``.

    ``path``: the ``.json`` file (or the folder holding exactly one). The weights' SHA-256 must
    match the JSON's, and every tensor must fit the rebuilt module (strict load)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.json"))
        if len(found) != 1:
            raise ValueError(f"{path}: name the export's .json file ({len(found)} found)")
        path = found[0]
    info = read_export(path)
    weights = path.with_name(info["weights"])
    if not weights.exists():
        raise ValueError(f"{weights}: missing (the export's weights)")
    if file_sha256(weights) != info["sha256"]:
        raise ValueError(f"{weights}: does not match its export's checksum (changed or corrupt)")
    cls = import_class(info["class_path"], nn.Module)
    try:
        module = cls(**info["init_args"])
    except TypeError as e:
        raise ValueError(f"{path}: cannot rebuild {info['class_path']} ({e})") from None
    try:
        state = load_file(str(weights), device="cpu")
        module.load_state_dict(state)
    except (SafetensorError, RuntimeError) as e:
        raise ValueError(f"{weights}: does not fit {info['class_path']}: {str(e).splitlines()[0]}") from None
    return module.to(device).eval()
