import re
import pytest
import torch
from torch import nn

from multinet import Net, NetConfig
from multinet.engine import Engine, NonFiniteLoss, Phase


def _gan(reuse=False, ema=0.0):
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    D = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
    nets = {"discriminator": Net("discriminator", D, NetConfig(optimizer="adam", lr=1e-3), "cpu"),
            "generator": Net("generator", G, NetConfig(optimizer="adam", lr=1e-3, ema=ema), "cpu")}
    seen = {}

    def d_step(e):
        seen["d_step_G_grads"] = [p.grad for p in e.nets["generator"].module.parameters()]
        fake = e.nets["generator"].module(torch.randn(16, 4))
        seen["fake_has_graph"] = fake.requires_grad
        real = torch.randn(16, 2) + 3
        loss = nn.functional.softplus(-D(real)).mean() + nn.functional.softplus(D(fake)).mean()
        return {"loss": loss}

    def g_step(e):
        loss = nn.functional.softplus(-D(G(torch.randn(16, 4)))).mean()
        seen["g_step_D_requires_grad"] = [p.requires_grad for p in D.parameters()]
        return {"loss": loss}

    phases = [Phase("discriminator", ("discriminator",), d_step), Phase("generator", ("generator",), g_step)]
    return nets, phases, seen


def test_frozen_network_gets_no_weight_gradients():
    nets, phases, seen = _gan()
    D = nets["discriminator"].module
    D[0].bias.requires_grad_(False)  # frozen on purpose: must stay frozen after the G phase
    nets["discriminator"].rebuild_optimizer()
    calls = []
    for p in D.parameters():
        if p.requires_grad:
            p.register_hook(lambda g: calls.append(1))
    e = Engine(nets, phases, total_steps=3)
    e.run()
    assert seen["g_step_D_requires_grad"] == [False] * 4
    assert len(calls) == 3 * 3, "D computed weight gradients outside its own phase"
    assert seen["fake_has_graph"] is False  # G frozen in the D step: no graph is built through G
    assert [p.requires_grad for p in D.parameters()] == [True, False, True, True]
    assert e.phase_steps == {"discriminator": 3, "generator": 3}


def test_network_outside_every_phase_keeps_grad_none():
    nets, phases, _ = _gan()
    before = [p.clone() for p in nets["generator"].module.parameters()]
    e = Engine(nets, phases[1:], total_steps=3)  # only the G phase runs, through D
    e.run()
    assert all(p.grad is None for p in nets["discriminator"].module.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, nets["generator"].module.parameters()))
    assert all(p.grad is None for p in nets["generator"].module.parameters())  # freed after each step


def test_phase_schedules_ratio_every_and_ranges():
    p = Phase("x", ("a",), lambda e: {}, every=3, start=2, stop=9)
    assert [i for i in range(12) if p.active(i)] == [2, 5, 8]
    nets, phases, _ = _gan()
    phases[0].repeat = 2
    e = Engine(nets, phases, total_steps=4)
    e.run()
    assert e.phase_steps == {"discriminator": 8, "generator": 4}


def test_nan_loss_is_reported_with_phase_and_step():
    nets, phases, _ = _gan()
    good = phases[1].step
    phases[1].step = lambda e: {"loss": good(e)["loss"] * (float("nan") if e.iteration == 2 else 1.0)}
    e = Engine(nets, phases, total_steps=50, log_every=5)  # no handler at all: the engine checks itself
    with pytest.raises(NonFiniteLoss, match=r"phase 'generator' \(network\(s\): generator\) at step 3"):
        e.run()
    assert e.iteration == 5  # stopped at the first check (every log_every), not at the end


def test_scalars_have_stable_names():
    nets, phases, _ = _gan()
    e = Engine(nets, phases, total_steps=2, log_every=1)
    e.run()
    s = e.scalars()
    assert {"loss/discriminator", "loss/generator", "grad_norm/discriminator", "grad_norm/generator",
            "lr/generator/default", "lr/discriminator/default"} <= set(s)


def test_handlers_fire_every_n():
    nets, phases, _ = _gan()
    e = Engine(nets, phases, total_steps=10)
    hits = []
    e.on("iteration", lambda e: hits.append(e.iteration), every=4)
    e.on("iteration", lambda e: hits.append("never"), every=0)  # 0 = off
    e.on("end", lambda e: hits.append("end"))
    e.run()
    assert hits == [4, 8, "end"]
    with pytest.raises(ValueError, match="every must be an integer >= 0"):
        e.on("iteration", lambda e: None, every=-1)
    with pytest.raises(ValueError, match="unknown event 'iterations'.*Event.ITERATION_COMPLETED"):
        e.on("iterations", lambda e: None)  # a typo raises instead of never firing


def test_ema_tracks_generator():
    nets, phases, _ = _gan(ema=0.5)
    e = Engine(nets, phases, total_steps=5)
    e.run()
    ema = e.ema["generator"].module
    g = nets["generator"].module
    assert not torch.equal(ema[0].weight, g[0].weight)
    assert int(e.ema["generator"].n_averaged) == 5


def test_unknown_network_in_phase():
    nets, phases, _ = _gan()
    phases.append(Phase("critic", ("critic",), lambda e: {}))
    with pytest.raises(ValueError, match="unknown networks: critic"):
        Engine(nets, phases, total_steps=1)


def test_plateau_schedule_steps_per_epoch_on_a_monitored_term():
    from multinet import ScheduleSpec
    nets, phases, _ = _gan()
    g_step = phases[1].step
    phases[1].step = lambda e: {**g_step(e), "flat": torch.tensor(1.0)}  # never improves
    g = nets["generator"]
    g.config.schedule = ScheduleSpec("plateau", interval="epoch", patience=0, factor=0.5, monitor="generator/flat")
    g.rebuild_optimizer()
    e = Engine(nets, phases, total_steps=6, steps_per_epoch=2)
    e.run()
    assert g.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5 ** 2)  # cut after epochs 2 and 3
    d = nets["discriminator"]
    d.config.schedule = ScheduleSpec("plateau", interval="epoch")
    d.rebuild_optimizer()
    assert e.default_monitor("discriminator") == "loss/discriminator"


class _InfGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * float("inf")


@pytest.mark.parametrize("fused", [False, True])
def test_fp16_skips_an_overflowing_step_on_the_device_and_the_schedule_still_advances(fused):
    from multinet import ScheduleSpec
    net = Net("n", nn.Linear(3, 1), NetConfig(optimizer="adam", lr=0.1, fused=fused,
                                              schedule=ScheduleSpec("exponential", gamma=0.5)), "cpu")
    seen = []

    def step(e):
        seen.append(net.module.weight.detach().clone())
        out = net.module(torch.ones(4, 3)).float()
        if e.iteration == 0:  # gradients overflow: the scaler must skip this optimizer step
            out = _InfGrad.apply(out)
        return {"loss": out.mean()}

    with pytest.warns(UserWarning) as said:
        e = Engine({"n": net}, [Phase("p", ("n",), step)], total_steps=3, amp="fp16")
    assert any("on the CPU" in str(w.message) for w in said)
    # Only a non-fused optimizer reads the skip flag back: said at start, with the fix.
    assert any("networks.n.fused = true" in str(w.message) for w in said) == (not fused)
    e.run()
    assert torch.equal(seen[0], seen[1])  # the overflowing step left the weights as they were
    assert not torch.equal(seen[1], net.module.weight)  # the next ones stepped
    assert e.scalers["p"].get_scale() == 65536.0 * 0.5  # the scale backed off once
    # As in Lightning and Ignite, the schedule counts optimizer steps, skipped or not: deciding
    # otherwise would read the skip flag back every step.
    assert net.scheduler.t == 3 and net.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.125)


def _conv_run(channels_last, steps=3):
    torch.manual_seed(0)
    D = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 4, 3, stride=2),
                      nn.Flatten(), nn.Linear(4 * 3 * 3, 1))
    net = Net("discriminator", D, NetConfig(optimizer="adam", lr=1e-2, init="dcgan", channels_last=channels_last, ema=0.1), "cpu")
    data = torch.Generator().manual_seed(1)

    def step(e):
        x = torch.randn(8, 2, 8, 8, generator=data)
        return {"loss": e.model("discriminator")(x).square().mean()}

    e = Engine({"discriminator": net}, [Phase("discriminator", ("discriminator",), step)], total_steps=steps)
    e.run()
    return e


def test_channels_last_networks_train_like_the_default_layout():
    plain, cl = _conv_run(False), _conv_run(True)
    conv = cl.nets["discriminator"].module[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert cl.ema["discriminator"].module[0].weight.is_contiguous(memory_format=torch.channels_last)
    exp_avg = cl.nets["discriminator"].optimizer.state[conv]["exp_avg"]
    assert exp_avg.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(plain.nets["discriminator"].module.parameters(), cl.nets["discriminator"].module.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # same math, another memory layout
    # a checkpoint written in channels_last loads into a default-layout run, and back
    fresh = _conv_run(False, steps=0)
    fresh.load_state_dict(cl.state_dict())
    for a, b in zip(fresh.nets["discriminator"].module.parameters(), cl.nets["discriminator"].module.parameters()):
        assert torch.equal(a, b)


def test_ema_longer_than_the_run_warns():
    nets, phases, _ = _gan(ema=0.999)
    with pytest.warns(UserWarning, match="EMA of generator: decay 0.999 .* 37% of the average is still the initial"):
        Engine(nets, phases, total_steps=1000)
    import warnings
    nets, phases, _ = _gan(ema=0.999)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Engine(nets, phases, total_steps=20000)  # 2e-9 left: fine


# -- the contract's sharp edges -------------------------------------------------------------------

def _bn_net(**spec):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    return Net("n", m, NetConfig(optimizer="sgd", lr=0.05, freeze=["1"], **spec), "cpu")


def _bn_step(e):
    x = torch.randn(16, 3, generator=e.generators["data"])
    return {"loss": e.model("n")(x).square().mean()}


def _bn_engine(steps, **spec):
    net = _bn_net(**spec)
    return Engine({"n": net}, [Phase("p", "n", _bn_step)], total_steps=steps,
                  generators={"data": torch.Generator().manual_seed(3)})


def test_unfreezing_a_norm_layer_puts_it_in_train_mode_and_resume_is_exact():
    """A BatchNorm frozen at build is in eval mode; unfrozen at step 3 it trains, in the live run as
    after a resume from a checkpoint written past the unfreeze (they used to differ)."""
    full = _bn_engine(8, unfreeze=["1"], unfreeze_at=3)
    bn = full.nets["n"].module[1]
    full.run(stop_at=2)
    assert not bn.training  # frozen: its statistics stay fixed
    full.run()
    assert bn.training and full.nets["n"].module[1].weight.requires_grad
    part = _bn_engine(8, unfreeze=["1"], unfreeze_at=3)
    part.run(stop_at=5)
    state = part.state_dict()
    resumed = _bn_engine(8, unfreeze=["1"], unfreeze_at=3)
    resumed.load_state_dict(state)
    resumed.run()
    for a, b in zip(full.nets["n"].module.state_dict().values(), resumed.nets["n"].module.state_dict().values()):
        assert torch.equal(a, b)


def test_freezing_mid_run_stops_the_norm_statistics():
    e = _bn_engine(2)
    net = e.nets["n"]
    net.unfreeze("1")
    net.train()
    assert net.module[1].training
    net.freeze("1")
    assert not net.module[1].training


def test_a_handler_toggling_eval_and_train_does_not_wake_a_frozen_norm_layer():
    e = _bn_engine(4)
    bn = e.nets["n"].module[1]
    stats = bn.running_mean.clone()

    def preview(e):  # the usual pattern in user handlers
        e.nets["n"].module.eval()
        e.nets["n"].module.train()
    e.on("iteration", preview)
    e.run()
    assert torch.equal(stats, bn.running_mean)


def test_cosine_without_total_gets_the_run_length_from_the_engine():
    from multinet import ScheduleSpec
    net = Net("n", nn.Linear(3, 1), NetConfig(optimizer="sgd", lr=0.1, schedule=ScheduleSpec("cosine")), "cpu")
    e = Engine({"n": net}, [Phase("p", "n", lambda e: {"loss": net.module(torch.ones(2, 3)).sum()}, repeat=2)],
               total_steps=5)
    e.run()
    assert net.scheduler.t == 10 and net.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    alone = Net("n", nn.Linear(3, 1), NetConfig(optimizer="sgd", lr=0.1, schedule=ScheduleSpec("cosine")), "cpu")
    with pytest.raises(ValueError, match="set total in its ScheduleSpec, give the Net total_steps"):
        alone.scheduler.step()


def test_explain_shows_rules_of_unfrozen_parameters_and_the_base_lr():
    from multinet import GroupRule, ScheduleSpec
    m = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    net = Net("n", m, NetConfig(optimizer="sgd", lr=0.1, freeze=["0"], groups=[GroupRule(name="first", pattern="0", lr_mult=0.5)], schedule=ScheduleSpec("warmup_cosine", warmup=10, total=100)), "cpu")
    net.unfreeze("0")
    rows = {line.split()[0]: line for line in net.explain().splitlines() if line.startswith("0.")}
    assert "first" in rows["0.weight"] and "0.05 " in rows["0.weight"]  # its rule, and 0.5 × 0.1 before warm-up
    assert "0.1 " in [line for line in net.explain().splitlines() if line.startswith("1.weight")][0]


def test_a_stopped_phase_is_not_logged_again():
    nets, phases, _ = _gan()
    phases[0].stop = 3
    e = Engine(nets, phases, total_steps=8, log_every=2)
    logged = []
    e.on("iteration", lambda e: logged.append(set(e.scalars())), every=2)
    e.run()
    assert "grad_norm/discriminator" in logged[0] and "loss/discriminator" in logged[1]  # it ran in step 3 (of 3-4)
    assert all("loss/discriminator" not in s and "grad_norm/discriminator" not in s for s in logged[2:])
    assert all("loss/generator" in s for s in logged)


def test_phase_and_step_mistakes_say_which_phase():
    p = Phase("d", "discriminator", lambda e: {})
    assert p.nets == ("discriminator",)  # a single name, not its letters
    nets, phases, _ = _gan()
    phases[1].step = lambda e: {"adv": torch.tensor(1.0)}
    with pytest.raises(ValueError, match="phase 'generator': its step must return a dict with a 'loss' tensor"):
        Engine(nets, phases, total_steps=1).run()
    with pytest.raises(ValueError, match="phase 'x': every must be an integer >= 1"):
        Phase("x", "a", lambda e: {}, every=0)


def test_a_group_rule_that_matches_nothing_warns_at_build():
    from multinet import GroupRule
    with pytest.warns(UserWarning, match="n: parameter-group rule 'head' matches no parameter"):
        Net("n", nn.Linear(3, 1), NetConfig(groups=[GroupRule(name="head", pattern="head")]), "cpu")


def test_the_progress_bar_shows_the_logged_losses():
    """The bar fires before the logger in a step (the runner's order): it still shows each logged row."""
    from multinet.handlers import LogScalars, ProgressBar

    class Keep:
        def scalars(self, step, values):
            pass
    nets, phases, _ = _gan()
    scalars = LogScalars(Keep(), every=2)
    bar = ProgressBar(5, enabled=False, scalars=scalars)
    Engine(nets, phases, total_steps=5, handlers=[bar, scalars]).run()
    assert set(bar.postfix) == {"discriminator", "generator"} and bar._shown == 4


def test_finiteness_is_checked_once_per_step_unless_a_weight_changed(monkeypatch):
    import multinet.engine.divergence as engine_module
    calls = []
    real = engine_module.non_finite
    monkeypatch.setattr(engine_module, "non_finite", lambda *a: calls.append(a[-1]) or real(*a))
    nets, phases, _ = _gan()
    e = Engine(nets, phases, total_steps=4, log_every=2)
    e.on("iteration", lambda e: e.check_finite(), every=2)  # a logger and a checkpointer ask too
    e.on("iteration", lambda e: e.check_finite(), every=2)
    e.run()
    assert calls == [2, 4]  # the loop's own check; the handlers' and the end's were the same state

    def poison(e):  # a handler that breaks a weight after the loop's check, in the same step
        with torch.no_grad():
            e.nets["generator"].module[0].weight.fill_(float("nan"))
    nets, phases, _ = _gan()
    e = Engine(nets, phases, total_steps=2, log_every=2, handlers=[])
    e.on("iteration", poison, every=2)
    e.on("iteration", lambda e: e.check_finite(), every=2)
    with pytest.raises(NonFiniteLoss, match="non-finite weights in network 'generator'"):
        e.run()


def test_the_first_non_finite_step_is_named_however_far_apart_the_checks_are():
    """Each step only keeps its loss; a check (here after 600 steps, past the 256-step fold)
    still names the first step whose loss was NaN."""
    net = Net("n", nn.Linear(3, 1), NetConfig(optimizer="sgd", lr=0.0), "cpu")
    x = torch.ones(4, 3)

    def step(e):
        loss = net.module(x).sum() * 0
        return {"loss": loss + (float("nan") if e.iteration == 299 else 0.0)}
    e = Engine({"n": net}, [Phase("p", ["n"], step)], total_steps=600, check_every=0, log_every=0)
    e.run()
    with pytest.raises(NonFiniteLoss, match="non-finite loss in phase 'p' \\(network\\(s\\): n\\) at step 300"):
        e.check_finite()


@pytest.mark.parametrize("step,msg", [
    (lambda e, G: {"loss": 0.5}, "its 'loss' is a float, not a tensor: return the loss tensor itself"),
    (lambda e, G: {"loss": G(torch.randn(4, 4)).mean().detach()}, "its 'loss' does not depend on any trainable"),
    (lambda e, G: {"loss": G(torch.randn(4, 4))}, "its 'loss' has shape (4, 2); it must be one number"),
    (lambda e, G: {"loss": G(torch.randn(4, 4)).mean(), "per_sample": G(torch.randn(4, 4)).sum(1)},
     "term 'per_sample' has shape (4,); a logged term is one number"),
])
def test_a_step_returning_the_wrong_loss_or_term_is_one_line_naming_the_phase(step, msg):
    nets, phases, _ = _gan()
    phases[1].step = lambda e: step(e, e.model("generator"))
    with pytest.raises(ValueError, match=r"phase 'generator': .*" + re.escape(msg)):
        Engine(nets, phases, total_steps=1).run()


def test_a_system_asking_for_a_network_its_config_lacks_says_how_to_add_it():
    from multinet import RunConfig, System

    class NoNets(System):
        Config = RunConfig

        def __init__(self, cfg, device, **build):
            super().__init__(cfg, device, **build)
            self.net("generator", torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"NoNets.net\('generator'\): the config has no networks.generator NetConfig "
                                         r"\(its networks: none\); add `generator: NetConfig"):
        NoNets(RunConfig(device="cpu"), torch.device("cpu"))
