"""Weight initialisation rules, chosen by module type (``isinstance``) and/or module-name pattern.

A rule covers a module; the first rule that matches a module initialises it. ``init_weights``
returns a report of which rule touched which module, and in strict mode raises naming every
module that holds parameters and that no rule covers (seed 000's ``Unexpected module``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..config import key
from .patterns import NORM_LAYERS, name_matches, resolve_types, type_names

__all__ = ["PRESETS", "preset_rule_names", "InitRule", "InitReport", "init_weights", "init_preset", "bilinear_kernel", "INIT_METHODS"]

INIT_METHODS = (
    "normal", "uniform", "constant", "zeros", "ones", "xavier_normal", "xavier_uniform",
    "kaiming_normal", "kaiming_uniform", "orthogonal", "bilinear", "keep",
)


@dataclass
class InitRule:
    """Initialise modules of ``types`` whose dotted name matches ``pattern`` with ``method``; plain
    values, so a recipe's ``[[networks.<name>.init_rules]]`` table is one of these as it is. The
    ``torch.nn.init`` function of ``method`` reads the arguments it takes (``args``)."""

    method: str = key(doc="How the weight is filled: " + ", ".join(f"`{m}`" for m in INIT_METHODS) + " (the "
                          "torch.nn.init function of that name; `bilinear` the FCN upsampling kernel of a "
                          "ConvTranspose2d; `keep` leaves the weight as it is).")
    types: list[str] = key(factory=list, doc="Module types the rule applies to: `torch.nn` class names or import "
                                             "paths of your own (`\"my_pkg.blocks:ResBlock\"`) or, from Python, "
                                             "classes, kept as those names so the rule saves to a recipe and a "
                                             "checkpoint; empty = any.")
    pattern: str | list[str] = key("", "Dotted module-name pattern(s) the rule applies to (`*` one level, `**` any); "
                                       "empty = any.")
    bias: float | None = key(0.0, "The constant written into the module's bias; none leaves the bias as it is.")
    mean: float = key(0.0, "`normal`: the mean.")
    std: float = key(1.0, "`normal`: the standard deviation.")
    a: float = key(0.0, "`uniform`: the lower bound; `kaiming_*`: the negative slope of the nonlinearity.")
    b: float = key(1.0, "`uniform`: the upper bound.")
    val: float = key(0.0, "`constant`: the value.")
    gain: float = key(1.0, "`xavier_*` and `orthogonal`: the gain.")
    mode: Literal["fan_in", "fan_out"] = key("fan_in", "`kaiming_*`: preserve the variance of the forward pass "
                                                       "(`fan_in`) or of the backward pass (`fan_out`).")
    nonlinearity: str = key("leaky_relu", "`kaiming_*`: the nonlinearity after the layer, by torch.nn.init's name "
                                          "(`relu`, `leaky_relu`, ...).")
    name: str = key("", "A label for reports (default: the method and what it matches).")

    def __post_init__(self) -> None:
        if self.method not in INIT_METHODS:
            raise ValueError(f"init method {self.method!r} unknown (valid: {', '.join(INIT_METHODS)})")
        self.types = type_names(self.types)
        if not self.name:
            what = ",".join(getattr(t, "__name__", str(t)) for t in self.types) or "*"
            self.name = f"{self.method}[{what}{'@' + str(self.pattern) if self.pattern else ''}]"

    @property
    def args(self) -> dict[str, Any]:
        """The keyword arguments the ``torch.nn.init`` functions read."""
        return {"mean": self.mean, "std": self.std, "a": self.a, "b": self.b, "val": self.val, "gain": self.gain,
                "mode": self.mode, "nonlinearity": self.nonlinearity}

    def matches(self, name: str, module: nn.Module) -> bool:
        if self.types and not isinstance(module, resolve_types(self.types)):
            return False
        return not self.pattern or name_matches(self.pattern, name)

    @torch.no_grad()
    def apply(self, module: nn.Module) -> None:
        weight = _own_weight(module)
        if weight is not None and self.method != "keep":
            _fill(self.method, weight, module, self.args)
        bias = getattr(module, "bias", None)
        if isinstance(bias, torch.Tensor) and self.bias is not None:
            bias.fill_(self.bias)


def _own_weight(module: nn.Module) -> torch.Tensor | None:
    """The stored weight: under a parametrization (spectral norm) ``module.weight`` is recomputed
    from ``parametrizations.weight.original`` on each access, so filling it would change nothing."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    weight = getattr(module, "weight", None)
    return weight if isinstance(weight, torch.Tensor) else None


def _holds_parameters(module: nn.Module) -> bool:
    """A layer holds parameters of its own, counting a parametrized weight as the layer's (the
    ``ParametrizationList`` that stores it is not a layer to initialise)."""
    if isinstance(module, parametrize.ParametrizationList):
        return False
    return parametrize.is_parametrized(module) or any(True for _ in module.parameters(recurse=False))


def _fill(method: str, weight: torch.Tensor, module: nn.Module, args: dict[str, Any]) -> None:
    init = nn.init
    if method == "normal":
        init.normal_(weight, args.get("mean", 0.0), args.get("std", 1.0))
    elif method == "uniform":
        init.uniform_(weight, args.get("a", 0.0), args.get("b", 1.0))
    elif method == "constant":
        init.constant_(weight, args.get("val", 0.0))
    elif method == "zeros":
        init.zeros_(weight)
    elif method == "ones":
        init.ones_(weight)
    elif method in ("xavier_normal", "xavier_uniform"):
        getattr(init, method + "_")(weight, gain=args.get("gain", 1.0))
    elif method in ("kaiming_normal", "kaiming_uniform"):
        getattr(init, method + "_")(weight, a=args.get("a", 0.0), mode=args.get("mode", "fan_in"),
                                    nonlinearity=args.get("nonlinearity", "leaky_relu"))
    elif method == "orthogonal":
        init.orthogonal_(weight, gain=args.get("gain", 1.0))
    elif method == "bilinear":
        if not isinstance(module, nn.ConvTranspose2d):
            raise ValueError("bilinear init applies to ConvTranspose2d only")
        weight.copy_(bilinear_kernel(weight.shape[0], weight.shape[1], weight.shape[2]).to(weight))


def bilinear_kernel(in_channels: int, out_channels: int, kernel_size: int) -> torch.Tensor:
    """The exact bilinear-upsampling ``ConvTranspose2d`` weight of FCN (channel i → channel i)."""
    if in_channels != out_channels:
        raise ValueError(f"bilinear kernel needs in_channels == out_channels, got {in_channels} and {out_channels}")
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float64)
    line = 1 - (og - center).abs() / factor
    filt = line[:, None] * line[None, :]
    weight = torch.zeros(in_channels, out_channels, kernel_size, kernel_size, dtype=torch.float64)
    idx = torch.arange(in_channels)
    weight[idx, idx] = filt
    return weight.float()


PRESETS = ("dcgan", "bilinear", "torch")


def preset_rule_names() -> set[str]:
    """The names of every preset's rules (a network need not have a layer for each of them)."""
    return {r.name for p in PRESETS for r in init_preset(p)}


def init_preset(name: str) -> list[InitRule]:
    """Named rule lists: ``dcgan`` (Radford et al.), ``bilinear`` (FCN upsampling), ``torch`` (keep defaults)."""
    conv_linear = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                   nn.ConvTranspose3d, nn.Linear)
    if name == "dcgan":
        return [
            InitRule("normal", conv_linear, std=0.02, name="dcgan.conv_linear"),
            InitRule("normal", NORM_LAYERS, mean=1.0, std=0.02, name="dcgan.norm"),
            # class embeddings (conditional BN gains start at 1, projection vectors small) are set
            # by the network that owns them
            InitRule("keep", [nn.Embedding], bias=None, name="dcgan.embedding"),
        ]
    if name == "bilinear":
        return [InitRule("bilinear", [nn.ConvTranspose2d], bias=0.0, name="bilinear")]
    if name == "torch":
        return [InitRule("keep", bias=None, name="torch_default")]
    raise ValueError(f"init preset {name!r} unknown (valid: {', '.join(PRESETS)})")


@dataclass
class InitReport:
    """What the init rules did: which rule initialised which module, and the rules that matched nothing."""
    applied: list[tuple[str, str, str]]  # module name, module type, rule name
    uncovered: list[tuple[str, str]]
    unused_rules: list[str]

    def table(self) -> str:
        rows = [f"{n or '<root>'}  {t}  <- {r}" for n, t, r in self.applied]
        rows += [f"{n or '<root>'}  {t}  <- (torch default)" for n, t in self.uncovered]
        if self.unused_rules:
            rows.append("rules that matched nothing: " + ", ".join(self.unused_rules))
        return "\n".join(rows)


def init_weights(module: nn.Module, rules: Iterable[InitRule], strict: bool = False) -> InitReport:
    """Apply ``rules`` to every module that holds parameters of its own (first match wins)."""
    rules = list(rules)
    used: set[str] = set()
    applied, uncovered = [], []
    for name, m in module.named_modules():
        if not _holds_parameters(m):
            continue
        rule = next((r for r in rules if r.matches(name, m)), None)
        if rule is None:
            uncovered.append((name, type(m).__name__))
            continue
        rule.apply(m)
        used.add(rule.name)
        applied.append((name, type(m).__name__, rule.name))
    if strict and uncovered:
        names = ", ".join(f"{n or '<root>'} ({t})" for n, t in uncovered)
        raise ValueError(f"no init rule covers: {names}")
    unused = [r.name for r in rules if r.name not in used]
    return InitReport(applied, uncovered, unused)

