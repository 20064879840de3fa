"""Comparing checkpoints entry by entry, for the tests that hold a resumed run to an uninterrupted one."""
import torch


def leaves(obj, path=""):
    """Every value of a nested checkpoint, by its path (``/networks/g/module/0.weight``)."""
    if isinstance(obj, dict):
        return {k: v for key, value in obj.items() for k, v in leaves(value, f"{path}/{key}").items()}
    if isinstance(obj, (list, tuple)):
        return {k: v for i, value in enumerate(obj) for k, v in leaves(value, f"{path}/{i}").items()}
    return {path: obj}


def same(a, b):
    """Equal values: tensors of one dtype equal element for element, anything else by ``==``."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    return a == b
