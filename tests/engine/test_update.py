"""The update rule as a function: gradient accumulation, manual phases (a closure optimizer, an
update outside any optimizer, two optimizers in a set order), events and how runs end."""
import copy

import pytest
import torch
from torch import nn

from multinet import Engine, Net, NetConfig, Phase
from multinet.engine import EXIT_CODES, Event, StopReason, backward, optimizer_step


def _regression(seed=0):
    torch.manual_seed(seed)
    x = torch.randn(64, 5)
    y = x @ torch.randn(5, 1) + 0.1 * torch.randn(64, 1)
    return x, y


def _mlp(optimizer="adam", **config):
    torch.manual_seed(3)
    module = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
    return Net("f", module, NetConfig(optimizer=optimizer, lr=0.05, **config), "cpu")


def _fit(batch, accumulate, steps=4, optimizer="adam", **config):
    """``steps`` optimizer steps over the same 16 rows per step, in micro-batches of ``batch``."""
    x, y = _regression()
    net = _mlp(optimizer, **config)
    seen = {"i": 0}

    def step(e):
        i = seen["i"]
        seen["i"] += batch
        rows = slice(i % 64, i % 64 + batch)
        return {"loss": nn.functional.mse_loss(e.model("f")(x[rows]), y[rows])}

    e = Engine({"f": net}, [Phase("fit", "f", step, accumulate=accumulate)], total_steps=steps, log_every=2)
    e.run()
    return net, e


@pytest.mark.parametrize("optimizer,config", [("adam", {}), ("sgd", {"momentum": 0.9, "clip_grad_norm": 0.5})])
def test_k_micro_batches_give_the_update_of_one_batch(optimizer, config):
    whole, e1 = _fit(16, 1, optimizer=optimizer, **config)
    parts, e4 = _fit(4, 4, optimizer=optimizer, **config)
    for a, b in zip(whole.module.parameters(), parts.module.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # One optimizer step (and one schedule step) per iteration, and the logged loss is the batch's.
    assert e4.phase_steps == {"fit": 4} and whole.optimizer.state_dict()["state"][0]["step" if optimizer == "adam"
                                                                                    else "momentum_buffer"] is not None
    torch.testing.assert_close(e1.terms["fit"]["loss"], e4.terms["fit"]["loss"], rtol=1e-5, atol=1e-6)
    assert e1.scalars()["grad_norm/f"] == pytest.approx(e4.scalars()["grad_norm/f"], rel=1e-5)


def test_accumulation_is_a_positive_integer_of_the_standard_update_only():
    with pytest.raises(ValueError, match="accumulate must be an integer >= 1"):
        Phase("p", "f", lambda e: {}, accumulate=0)
    with pytest.raises(ValueError, match="accumulate is the standard update's"):
        Phase("p", "f", lambda e: {}, update="manual", accumulate=2)
    with pytest.raises(ValueError, match="update 'handmade' unknown"):
        Phase("p", "f", lambda e: {}, update="handmade")


def _lbfgs_step(e, net, x, y):
    """One LBFGS step of ``net`` (network "f") on the regression, through a closure."""
    def closure():
        net.optimizer.zero_grad()
        loss = nn.functional.mse_loss(e.model("f")(x), y)
        loss.backward()
        return loss
    optimizer_step(e, "f", closure)


def test_an_lbfgs_closure_phase():
    x, y = _regression()
    net = _mlp("lbfgs")
    losses = []

    def step(e):
        _lbfgs_step(e, net, x, y)
        loss = nn.functional.mse_loss(e.model("f")(x), y).detach()
        losses.append(float(loss))
        return {"loss": loss}

    e = Engine({"f": net}, [Phase("fit", "f", step, update="manual")], total_steps=5, log_every=5)
    e.run()
    assert losses[-1] < 0.5 * losses[0] and e.phase_steps == {"fit": 5}
    assert set(e.scalars()) >= {"loss/fit", "grad_norm/f"}


class _Quantizer(nn.Module):
    """A VQ-VAE-style codebook: a buffer moved by an EMA of its assigned encodings, in no optimizer."""

    def __init__(self):
        super().__init__()
        self.register_buffer("codes", torch.randn(4, 2))

    def forward(self, z):
        nearest = torch.cdist(z, self.codes).argmin(1)
        return self.codes[nearest], nearest


def _vq_engine(steps):
    torch.manual_seed(0)
    enc = Net("enc", nn.Sequential(nn.Linear(3, 2), _Quantizer()), NetConfig(lr=1e-2), "cpu")
    gen = torch.Generator().manual_seed(5)

    def step(e):
        x = torch.randn(32, 3, generator=gen)
        linear, quant = e.model("enc")[0], e.nets["enc"].module[1]
        z = linear(x)
        q, nearest = quant(z.detach())
        with torch.no_grad():  # the codebook: an EMA update outside any optimizer
            onehot = nn.functional.one_hot(nearest, 4).float()
            counts = onehot.sum(0, keepdim=True).T
            means = (onehot.T @ z) / counts.clamp(min=1)
            quant.codes.mul_(0.9).add_(0.1 * torch.where(counts > 0, means, quant.codes))
        loss = ((z - q) ** 2).mean()  # the commitment loss, for the encoder only
        backward(e, loss)
        optimizer_step(e, "enc")
        return {"loss": loss.detach()}

    return Engine({"enc": enc}, [Phase("vq", "enc", step, update="manual")], total_steps=steps,
                  generators={"data": gen}, log_every=2)


def test_a_codebook_updated_outside_any_optimizer_resumes_bit_exactly():
    straight = _vq_engine(6)
    straight.run()
    first = _vq_engine(6)
    first.run(stop_at=3)
    assert first.stop_reason is StopReason.STEP_LIMIT and first.stop_reason == "step limit"
    saved = copy.deepcopy(first.state_dict())
    again = _vq_engine(6)
    again.load_state_dict(saved)
    again.run()
    for a, b in zip(straight.nets["enc"].module.state_dict().values(), again.nets["enc"].module.state_dict().values()):
        assert torch.equal(a, b)


def test_a_manual_phase_steps_two_optimizers_in_its_own_order_with_the_others_frozen():
    torch.manual_seed(0)
    nets = {k: Net(k, nn.Linear(2, 2), NetConfig(lr=0.1), "cpu") for k in ("a", "b", "frozen")}
    order = []
    for k, net in nets.items():
        net.optimizer.register_step_post_hook(lambda opt, args, kwargs, k=k: order.append(k))

    def step(e):
        out = e.model("b")(e.model("a")(torch.ones(3, 2)))
        loss = e.model("frozen")(out).pow(2).mean()
        backward(e, loss)
        assert nets["frozen"].module.weight.grad is None  # outside the phase: no gradient computed
        optimizer_step(e, "b")
        optimizer_step(e, "a")
        return {"loss": loss.detach(), "out": out.detach().mean()}

    e = Engine(nets, [Phase("ab", ("a", "b"), step, update="manual"),
                      Phase("other", "frozen", lambda e: {"loss": e.model("frozen")(torch.ones(1, 2)).sum()})],
               total_steps=2)
    e.run()
    assert order == ["b", "a", "frozen", "b", "a", "frozen"]
    assert all(p.grad is None for n in nets.values() for p in n.module.parameters())


def test_events_are_removable_and_an_exception_is_fired_before_it_leaves():
    net = _mlp()
    seen = []

    def step(e):
        if e.iteration == 3:
            raise KeyError("boom")
        return {"loss": e.model("f")(torch.ones(2, 5)).mean()}

    e = Engine({"f": net}, [Phase("fit", "f", step)], total_steps=6)
    e.on(Event.ITERATION_STARTED, lambda e: seen.append(("start", e.iteration)))
    gone = e.on(Event.ITERATION_COMPLETED, lambda e: seen.append(("done", e.iteration)))
    e.on("iteration", lambda e: gone.remove() if e.iteration == 2 else None)
    e.on(Event.EXCEPTION_RAISED, lambda e: seen.append(("raised", type(e.exception).__name__)))
    with pytest.raises(RuntimeError, match=r"phase 'fit', step 4: KeyError: 'boom'"):
        e.run()
    gone.remove()  # twice is harmless
    assert seen == [("start", 0), ("done", 1), ("start", 1), ("done", 2), ("start", 2), ("start", 3),
                    ("raised", "StepError")]


def test_each_way_of_ending_has_one_exit_code():
    assert set(EXIT_CODES) == set(StopReason)
    assert EXIT_CODES[StopReason("SIGINT")] == 130 and EXIT_CODES[StopReason("SIGTERM")] == 143
    assert EXIT_CODES[StopReason.DIVERGED] == EXIT_CODES[StopReason.FAILED] == 1


def test_phases_that_can_never_run_are_said_at_start_and_epoch_schedules_need_epochs():
    from multinet import ScheduleSpec
    nets = {"f": _mlp(), "idle": Net("idle", nn.Linear(2, 2), NetConfig(), "cpu")}
    step = lambda e: {"loss": e.model("f")(torch.ones(2, 5)).mean()}  # noqa: E731
    e = Engine(nets, [Phase("late", "f", step, start=10), Phase("rare", "f", step, every=50)], total_steps=5)
    with pytest.warns(UserWarning) as said:
        e.run()
    lines = [str(w.message) for w in said]
    assert "phase 'late' never runs in a run of 5 steps (start 10, stop None, every 1)" in lines
    assert "phase 'rare': every = 50 is longer than the run (5 steps): it runs once" in lines
    assert "network 'idle' is in no phase: it never trains" in lines
    epochly = Net("f", nn.Linear(5, 1), NetConfig(schedule=ScheduleSpec("exponential", interval="epoch")), "cpu")
    with pytest.raises(ValueError, match=r"networks.f.schedule: 'exponential' steps at the end of an epoch, and this "
                                         r"engine has no epoch length: give steps_per_epoch"):
        Engine({"f": epochly}, [Phase("p", "f", step)], total_steps=5)


def test_a_closure_step_logs_the_norm_it_made_and_refuses_a_clip_it_cannot_apply():
    from multinet.engine import StepError
    from multinet.engine.update import LossError
    x, y = _regression()
    for clip in (0.0, 1.0):
        net = _mlp("lbfgs", clip_grad_norm=clip)

        def step(e, net=net):
            _lbfgs_step(e, net, x, y)
            return {"loss": torch.zeros(())}
        e = Engine({"f": net}, [Phase("fit", "f", step, update="manual")], total_steps=2, log_every=1)
        if clip:
            with pytest.raises(StepError, match="cannot run under amp = 'fp16' or with networks.f.clip_grad_norm"):
                e.run()
        else:
            e.run()
            assert e.scalars()["grad_norm/f"] > 0
    # What a step returns that cannot be trained on ends a run as a failure (a RuntimeError), and
    # is still the ValueError it always was.
    e = Engine({"f": _mlp()}, [Phase("p", "f", lambda e: {"x": torch.zeros(())}, update="manual")], total_steps=1)
    with pytest.raises(LossError, match="its step must return a dict with a 'loss' tensor") as raised:
        e.run()
    assert isinstance(raised.value, RuntimeError) and isinstance(raised.value, ValueError)


def test_a_resume_that_would_end_before_a_planned_phase_is_refused(tmp_path):
    from multinet.autoencoder import AeRecipe, AeSystem
    from multinet.config import load_recipe
    from multinet.run.runner import Runner
    cfg = load_recipe(AeRecipe, "ae_7_4_rx_finetune", ["device='cpu'", "train.steps=40", "train.tensorboard=false",
                                                       "link.batch_size=32", "eval.max_blocks=2000", "eval.batch=2000",
                                                       "eval.baselines=false"])
    assert Runner(AeSystem, cfg, tmp_path / "r", progress=False, echo=False, stop_at=8).fit().code == 0
    cfg.train.steps = 12  # the decoder phase starts at step 24
    with pytest.raises(ValueError, match=r"train.steps=12 would end before phase '1_decoder' starts \(step 24\)"):
        Runner(AeSystem, cfg, tmp_path / "r", resume=True, progress=False, echo=False).fit()


def test_a_run_with_accumulation_resumes_bit_exactly_between_optimizer_steps():
    def build():
        net = _mlp(clip_grad_norm=1.0)
        gen = torch.Generator().manual_seed(9)

        def step(e):
            x = torch.randn(4, 5, generator=gen)
            return {"loss": e.model("f")(x).pow(2).mean()}
        return Engine({"f": net}, [Phase("fit", "f", step, accumulate=3)], total_steps=6, generators={"data": gen})
    straight, first = build(), build()
    straight.run()
    first.run(stop_at=3)
    again = build()
    again.load_state_dict(copy.deepcopy(first.state_dict()))
    again.run()
    for a, b in zip(straight.nets["f"].module.parameters(), again.nets["f"].module.parameters()):
        assert torch.equal(a, b)
    assert again.phase_steps == {"fit": 6}
