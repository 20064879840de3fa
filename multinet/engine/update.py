"""The update rule: what one phase does on one iteration, as a plain function of the engine and the
phase (as Ignite's process function), which a phase can replace (``Phase(..., update=fn)``).

``standard`` is the default and reads top to bottom; ``manual`` leaves the backward pass and the
optimizer steps to the phase's step function. Both are written from the building blocks below,
from which an update of your own is written the same way:

- ``engine.training(phase, sync)``: the other networks frozen, autocast, and under
  torch.distributed the gradient all-reduce only when ``sync`` (``no_sync`` otherwise);
- ``call_step(engine, phase)``: the phase's step function, its errors said in one line;
- ``backward(engine, loss)``: backward through the running phase's fp16 loss scaler;
- ``optimizer_step(engine, name)``: unscale and clip (or measure the gradient norm on a log
  step), the optimizer step, ``zero_grad``, the network's step schedule and its EMA;
- ``end_update(engine)``: the loss scaler's update, once, after the optimizer steps.

None of them reads anything back from the device: under ``amp = "fp16"`` a step with inf/NaN
gradients is skipped on the device (fused optimizers take the scaler's ``found_inf``), so the
schedule and the EMA advance on every optimizer step, skipped or not, as in Lightning and Ignite.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Callable

import torch

from ..config.fields import failure_line
from ..nets import advance

__all__ = ["standard", "manual", "call_step", "backward", "optimizer_step", "end_update", "UPDATES", "StepError",
           "LossError", "check_loss", "step_term", "error_rate", "bit_error_rate"]


def standard(engine: Any, phase: Any) -> dict[str, Any]:
    """The default update: ``phase.accumulate`` micro-batches, one optimizer step per network.

    Each micro-batch: the others frozen → autocast → the step function → its loss (divided by the
    number of micro-batches) backpropagated through the loss scaler, the gradients summing up in
    ``.grad``. Then, per network of the phase: unscale and clip → optimizer step → ``zero_grad`` →
    its step schedule → its EMA; last, the scaler's update. The terms returned are the mean over
    the micro-batches."""
    k = phase.accumulate
    micro = []
    for i in range(k):
        with engine.training(phase, sync=i == k - 1):  # DDP averages over ranks on the last one only
            terms = call_step(engine, phase)
            loss = check_loss(phase, terms)
            backward(engine, loss / k if k > 1 else loss)
        micro.append(terms)
    for name in phase.nets:
        optimizer_step(engine, name)
    end_update(engine)
    if k == 1:
        return micro[0]
    return {t: torch.stack([step_term(phase.name, t, m[t], engine.device) for m in micro]).mean() for t in micro[0]}


def manual(engine: Any, phase: Any) -> dict[str, Any]:
    """``update="manual"``: the step function does its own backward and steps, with
    ``backward(engine, loss)`` and ``optimizer_step(engine, name)`` (or anything else: a closure
    optimizer, an update outside any optimizer). It still runs with the other networks frozen
    and under autocast; its ``"loss"`` is logged and checked for NaN but not backpropagated."""
    with engine.training(phase):
        terms = call_step(engine, phase)
    check_loss(phase, terms, backward=False)
    end_update(engine)
    return terms


UPDATES: dict[str, Callable[[Any, Any], dict[str, Any]]] = {"standard": standard, "manual": manual}


# -- what a step returns, and its errors --------------------------------------------------------
class StepError(RuntimeError):
    """An exception inside a phase's step function; the message names the phase, the step and the
    line of the user's code that raised it (``MULTINET_TRACEBACK=1`` re-raises the original)."""


class LossError(StepError, ValueError):
    """What a step returned cannot be trained on or logged (no ``loss``, a loss that is not one
    number in the trained networks' graph, a term that is not a number): one line with the fix."""


def check_loss(phase: Any, terms: Any, backward: bool = True) -> torch.Tensor:
    """The ``loss`` a step returned, which must be a one-number tensor, in the trained networks'
    graph when the update will ``backward`` it; anything else is one line naming the phase and the
    fix. Reads only what the host knows (type, shape, ``requires_grad``): nothing comes back."""
    where = f"phase {phase.name!r}"
    if not isinstance(terms, dict) or "loss" not in terms:
        got = f"a dict of {sorted(map(str, terms))}" if isinstance(terms, dict) else f"a {type(terms).__name__}"
        raise LossError(f"{where}: its step must return a dict with a 'loss' tensor, got {got}")
    loss = terms["loss"]
    if not isinstance(loss, torch.Tensor):
        why = "so that it can be backpropagated" if backward else "so that it is logged and checked without a read"
        raise LossError(f"{where}: its 'loss' is a {type(loss).__name__}, not a tensor: return the loss tensor itself "
                        f"(not loss.item() or float(loss)), {why}")
    if loss.numel() != 1:
        raise LossError(f"{where}: its 'loss' has shape {tuple(loss.shape)}; it must be one number: reduce it "
                        "(.mean() or .sum())")
    if backward and not loss.requires_grad:
        trained = " or ".join(f"engine.model({n!r})" for n in phase.nets)
        raise LossError(f"{where}: its 'loss' does not depend on any trainable parameter (detached, computed under "
                         f"torch.no_grad(), or from frozen networks only); compute it from the output of {trained}")
    return loss


def step_term(phase: str, name: str, value: Any, device: torch.device) -> torch.Tensor:
    """A logged term as a detached float tensor: tensors as they are, Python numbers (``acc.item()``) too."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise LossError(f"phase {phase!r}: term {name!r} has shape {tuple(value.shape)}; a logged term is one "
                             "number: reduce it (.mean()) or log each value under its own name")
        return value.detach().float()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # Shown once per process (the default filter): a number made from a tensor (``.item()``,
        # ``float(t)``) read it back from the device, a stall per step on a GPU.
        warnings.warn(f"phase {phase!r}: term {name!r} is a Python number; if it came from a tensor, return the "
                      "tensor instead (reading it stalls every step; multinet.engine.error_rate and "
                      "bit_error_rate stay on the device)", stacklevel=4)
        return torch.tensor(float(value), device=device)
    raise LossError(f"phase {phase!r}: term {name!r} is a {type(value).__name__}; a step returns tensors or numbers")


# -- building blocks ----------------------------------------------------------------------------
def call_step(engine: Any, phase: Any) -> Any:
    """The phase's step function; an exception in it becomes one ``StepError`` line naming the
    phase, the step and the line of the user's code (``MULTINET_TRACEBACK=1`` raises the original)."""
    try:
        return phase.step(engine)
    except Exception as e:
        if os.environ.get("MULTINET_TRACEBACK") or isinstance(e, StepError):
            raise
        raise StepError(f"phase {phase.name!r}, step {engine.iteration + 1}: {failure_line(e)}") from e


def backward(engine: Any, loss: torch.Tensor) -> None:
    """``loss.backward()`` through the running phase's loss scaler (a no-op scaler but under fp16)."""
    engine.scalers[engine.phase.name].scale(loss).backward()


def optimizer_step(engine: Any, name: str, closure: Callable[[], torch.Tensor] | None = None) -> None:
    """Step network ``name``'s optimizer on the gradients its ``.grad`` holds: unscale and clip to
    its ``clip_grad_norm`` (else, on a log step, measure the norm), step (``closure`` for LBFGS and
    the like; not under fp16), ``zero_grad(set_to_none)``, then its step schedule and its EMA."""
    net, scaler = engine.nets[name], engine.scalers[engine.phase.name]
    if closure is not None:  # the closure makes the gradients: measured after it, never clipped inside it
        if scaler.is_enabled() or net.config.clip_grad_norm > 0:
            raise StepError(f"phase {engine.phase.name!r}: an optimizer closure cannot run under amp = 'fp16' or with networks.{name}."
                            "clip_grad_norm (neither the loss scaler nor the clip reaches inside it)")
        net.optimizer.step(closure)
        if engine.log_now:
            grad_norm(engine, net)
    elif isinstance(net.optimizer, torch.optim.LBFGS):
        raise StepError(f"phase {engine.phase.name!r}: {name}'s LBFGS steps with a closure: make the phase manual "
                        f"(Phase(..., update='manual')) and call optimizer_step(engine, {name!r}, closure) in its step")
    else:
        if net.config.clip_grad_norm > 0:
            scaler.unscale_(net.optimizer)
            engine.readout.record_grad_norm(name, torch.nn.utils.clip_grad_norm_(net.parameters(),
                                                                                 net.config.clip_grad_norm), engine.iteration)
        elif engine.log_now:
            grad_norm(engine, net)
        scaler.step(net.optimizer)
    net.optimizer.zero_grad(set_to_none=True)  # between phase steps every .grad is None
    advance(net.scheduler, net.config.schedule, "step", True)
    net.stepped_this_epoch = True
    if net.ema is not None:
        net.ema.update_parameters(net.module)
    engine.stepped.add(name)


def grad_norm(engine: Any, net: Any) -> None:
    """Record the norm of ``net``'s gradients (still scaled under fp16): on log steps."""
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    engine.readout.record_grad_norm(net.name, torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
                                    if grads else torch.zeros((), device=engine.device), engine.iteration)


def end_update(engine: Any) -> None:
    """After the optimizer steps of a phase: the fp16 scaler's update (once, if any stepped)."""
    scaler = engine.scalers[engine.phase.name]
    if scaler.is_enabled() and engine.stepped:
        scaler.update()


# -- rates a step can return as terms without reading anything back --------------------------------
def error_rate(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The fraction of rows whose largest logit is not ``target``'s class (1 - accuracy), as a
    0-d tensor on the logits' device: a step term that costs no host read."""
    return (logits.detach().argmax(-1) != target).float().mean()


def bit_error_rate(logits: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """The fraction of bits whose logit (LLR, positive for 1) has the wrong sign, as a 0-d tensor
    on the logits' device (``bits`` of 0/1, any dtype)."""
    return ((logits.detach() > 0).float() != bits).float().mean()
