"""Trained networks outside a run: safetensors weights plus a JSON file saying how to rebuild them.

``export_module(module, folder, name)`` writes ``name.safetensors`` (the state dict, on the CPU)
and ``name.json``: the class's import path, the keyword arguments that build it, a SHA-256 of the
weights and free-form ``meta`` (a generator's latent size, its output range). ``load_exported``
turns that back into a ready module in eval mode, for code that has never seen a training run.

Why safetensors: a checkpoint is a pickle (read here with ``weights_only``, but still a format
for this program alone), while safetensors is plain tensors that any framework reads without
running code, and loads by memory map. The JSON is a saved file too: its ``class_path`` is honoured
only inside multinet unless the user trusts the file (``multinet.state.imports``), the weights must be a
regular file whose size matches its header, and the module is first built on the meta device so
that arguments disagreeing with the weights are refused before anything is allocated.

How a module says how it was built: the shipped networks keep their constructor arguments as
``init_args``; a network from a recipe's ``class_path`` has them in the recipe.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import error_line
from .checkpoint import atomic_path, file_sha256, write_text_atomic
from .imports import import_class, object_path, saved_file
from .runfiles import parse_json, read_json, regular_file

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
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
    info = {"format": FORMAT, "class_path": class_path or object_path(type(module)), "init_args": init_args,
            "weights": weights.name, "sha256": file_sha256(weights), "meta": meta or {}}
    write_text_atomic(spec, json.dumps(info, indent=2) + "\n")
    return [weights, spec]


# What an export's JSON must hold, and of which type, before anything reads it.
_KEYS = {"class_path": str, "init_args": dict, "weights": str, "sha256": str, "meta": dict}
_MAX_JSON = 16 << 20  # an export's JSON is a few hundred bytes; a larger one is not an export
_MAX_HEADER = 100 << 20  # safetensors' own limit on its JSON header
_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
             "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}  # safetensors' dtypes, in bytes


def _regular(path: Path, what: str) -> int:
    """The size of ``path``, which must be a regular file (a device such as /dev/zero never ends)."""
    if not regular_file(path, what=what):
        raise ValueError(f"{path}: missing ({what})")
    return path.stat().st_size


def read_export(path: str | Path) -> dict[str, Any]:
    """The JSON of an export (``path`` is the .json file), its keys and their types checked."""
    path = Path(path)
    try:
        info = read_json(path, kind=object, limit=_MAX_JSON, what="an export")
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (no such export)") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"{path}: not a multinet export (format {FORMAT})")
    for key, kind in _KEYS.items():
        if not isinstance(info.get(key), kind):
            got = "missing" if key not in info else f"a {type(info[key]).__name__}"
            raise ValueError(f"{path}: broken export: '{key}' is {got}, expected a {kind.__name__}")
    if Path(info["weights"]).name != info["weights"]:
        raise ValueError(f"{path}: broken export: 'weights' must be a file name beside it, got {info['weights']!r}")
    return info


def _header(weights: Path) -> dict[str, Any]:
    """The safetensors header of ``weights``, whose size must be what the header says."""
    size = _regular(weights, "the export's weights")
    with open(weights, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < n <= min(_MAX_HEADER, size - 8):
            raise ValueError(f"{weights}: not a safetensors file (header size {n} in a {size}-byte file)")
        try:
            header = parse_json(f.read(n).decode("utf-8"), str(weights))
            tensors = {k: v for k, v in header.items() if k != "__metadata__"}
            spans = [(int(v["data_offsets"][0]), int(v["data_offsets"][1]),
                      math.prod(int(d) for d in v["shape"]) * _ITEMSIZE[v["dtype"]]) for v in tensors.values()]
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            raise ValueError(f"{weights}: not a safetensors file (unreadable header)") from None
    # Each tensor's bytes are what its shape and dtype say: the shapes (which bound the sizes an
    # export may ask for) cannot claim more than the file holds.
    if any(not 0 <= a <= b or b - a != need for a, b, need in spans):
        raise ValueError(f"{weights}: not a safetensors file (a tensor's shape and dtype disagree with its bytes)")
    end = max([0, *(b for _, b, _ in spans)])
    if size != 8 + n + end:
        raise ValueError(f"{weights}: {size} bytes, but its header describes {8 + n + end}; refused (truncated "
                         "or padded)")
    return header


def _check_shapes(cls: type, init_args: dict[str, Any], header: dict[str, Any], spec: Path, name: str) -> None:
    """Build the module on the meta device (no memory) and compare it with the weights' header,
    so that arguments asking for 10^12 parameters are refused instead of allocated."""
    try:
        with torch.device("meta"):
            probe = cls(**init_args)
    except TypeError as e:
        raise ValueError(f"{spec}: cannot rebuild {name} ({error_line(e, 200)})") from None
    except Exception as e:  # noqa: BLE001 - a constructor that cannot run on the meta device
        # It will be built for real, so its sizes are bounded first: no whole number in init_args
        # may exceed the count of numbers the weights hold (a width of 10^12 overflows the meta build).
        numbers = sum(math.prod(v.get("shape", [])) for k, v in header.items() if k != "__metadata__")
        big = [(k, v) for k, v in _integers(init_args) if v > max(numbers, 1 << 16)]
        if big:
            raise ValueError(f"{spec}: init_args {big[0][0]} = {big[0][1]} is larger than the {numbers} numbers its "
                             f"weights hold, and {name} cannot be checked on the meta device ({error_line(e, 120)}); "
                             "refused before anything is allocated") from None
        return
    shapes = {k: list(v.shape) for k, v in probe.state_dict().items()}
    saved = {k: list(v.get("shape", [])) for k, v in header.items() if k != "__metadata__"}
    if shapes != saved:
        diff = sorted(k for k in set(shapes) | set(saved) if shapes.get(k) != saved.get(k))
        raise ValueError(f"{spec}: the weights do not fit {name} built from init_args ({len(diff)} tensor(s) differ, e.g. "
                         f"{diff[0]!r}: {saved.get(diff[0])} saved, {shapes.get(diff[0])} built)")


def _integers(value: Any, key: str = "") -> list[tuple[str, int]]:
    """Every whole number in ``value`` (nested dicts and lists), with its key path."""
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _integers(v, f"{key}.{k}" if key else str(k))]
    if isinstance(value, (list, tuple)):
        return [x for i, v in enumerate(value) for x in _integers(v, f"{key}[{i}]")]
    return [(key, value)] if isinstance(value, int) and not isinstance(value, bool) else []


def load_exported(path: str | Path, device: str | torch.device = "cpu", *, trust_code: bool = False) -> nn.Module:
    """The module an export describes, with its weights, in eval mode on ``device``.

    ``path``: the ``.json`` file (or the folder holding exactly one). The weights must be a regular
    file of the size its header says, with the JSON's SHA-256, and every tensor must fit the
    rebuilt module (strict load). A ``class_path`` outside multinet is refused unless
    ``trust_code`` (``multinet.state.imports``)."""
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
    header = _header(weights)
    if file_sha256(weights) != info["sha256"]:
        raise ValueError(f"{weights}: does not match its export's checksum (changed or corrupt)")
    with saved_file(path, trust_code=trust_code):
        cls = import_class(info["class_path"], nn.Module)
    _check_shapes(cls, info["init_args"], header, path, info["class_path"])
    try:
        module = cls(**info["init_args"])
    except TypeError as e:
        raise ValueError(f"{path}: cannot rebuild {info['class_path']} ({error_line(e, 200)})") from None
    try:
        state = load_file(str(weights), device="cpu")
        module.load_state_dict(state)
    except (SafetensorError, RuntimeError) as e:
        raise ValueError(f"{weights}: does not fit {info['class_path']}: {str(e).splitlines()[0]}") from None
    return module.to(device).eval()
