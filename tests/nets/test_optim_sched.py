import pytest
import torch
from torch import nn

from multinet import GroupRule, Net, NetConfig, ScheduleSpec, load_named_state_dict, named_state_dict
from multinet.nets.schedules import FactorScheduler

from nets_zoo import LeNet


def _train(net, steps=3):
    for _ in range(steps):
        net.optimizer.zero_grad()
        net.module(torch.randn(4, 3, 32, 32)).square().mean().backward()
        net.optimizer.step()


def _state(opt):
    return {id(p): {k: v.clone() for k, v in s.items() if isinstance(v, torch.Tensor)} for p, s in opt.state.items()}


@pytest.mark.parametrize("optimizer,options", [("sgd", {"momentum": 0.9}), ("adam", {})])
def test_set_lr_in_place_keeps_state_bit_identical(optimizer, options):
    net = Net("n", LeNet(), NetConfig(optimizer=optimizer, lr=0.01, **options, groups=[GroupRule(pattern="fc3", lr_mult=10)]), "cpu")
    _train(net)
    before = _state(net.optimizer)
    opt_id = id(net.optimizer)
    net.set_lr(0.001)
    assert id(net.optimizer) == opt_id
    after = _state(net.optimizer)
    assert before.keys() == after.keys()
    for k in before:
        for name in before[k]:
            assert torch.equal(before[k][name], after[k][name])
    lrs = sorted(g["lr"] for g in net.optimizer.param_groups)
    assert lrs == pytest.approx([0.001, 0.01])
    net.set_lr(0.5, group="fc3")
    assert sorted(g["lr"] for g in net.optimizer.param_groups) == pytest.approx([0.001, 0.5])
    with pytest.raises(ValueError, match="no parameter group 'fc9'"):
        net.set_lr(0.1, group="fc9")


def test_rebuild_clears_state_and_keeps_schedule_step():
    net = Net("n", LeNet(), NetConfig(optimizer="adam", lr=0.01, schedule=ScheduleSpec("step", step_size=2, gamma=0.5)), "cpu")
    _train(net)
    for _ in range(3):
        net.scheduler.step()
    assert len(net.optimizer.state) > 0
    net.rebuild_optimizer()
    assert len(net.optimizer.state) == 0
    assert net.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5)


def test_optimizer_state_restored_by_name_even_when_groups_swap():
    torch.manual_seed(0)
    a = Net("n", LeNet(), NetConfig(optimizer="adam", lr=0.01, groups=[GroupRule(name="head", pattern="fc3", lr_mult=10)]), "cpu")
    _train(a)
    saved = named_state_dict(a.optimizer)
    b = Net("n", LeNet(), NetConfig(optimizer="adam", lr=0.01, groups=[GroupRule(name="head", pattern="fc3", lr_mult=10)]), "cpu")
    b.optimizer.param_groups.reverse()  # positions now differ from when saved
    load_named_state_dict(b.optimizer, saved)
    pa = dict(a.module.named_parameters())
    pb = dict(b.module.named_parameters())
    for name in ["fc3.weight", "conv1.weight"]:
        torch.testing.assert_close(a.optimizer.state[pa[name]]["exp_avg"], b.optimizer.state[pb[name]]["exp_avg"],
                                   rtol=0, atol=0)
    assert {g["name"]: g["lr"] for g in b.optimizer.param_groups} == {"default": 0.01, "head": 0.1}
    c = Net("n", LeNet(), NetConfig(optimizer="adam", lr=0.01), "cpu")
    with pytest.raises(ValueError, match="optimizer groups differ"):
        load_named_state_dict(c.optimizer, saved)


@pytest.mark.parametrize("name,kw,expect", [
    ("step", {"step_size": 2, "gamma": 0.1}, [1, 1, 0.1, 0.1, 0.01]),
    ("multistep", {"milestones": [1, 3], "gamma": 0.5}, [1, 0.5, 0.5, 0.25, 0.25]),
    ("exponential", {"gamma": 0.5}, [1, 0.5, 0.25, 0.125, 0.0625]),
    ("cosine", {"total": 4}, [1, 0.853553, 0.5, 0.146447, 0.0]),
    ("warmup_cosine", {"total": 5, "warmup": 2}, [0.5, 1.0, 1.0, 0.75, 0.25]),
    ("linear", {"total": 4, "min_factor": 0.0}, [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]),
    ("linear", {"total": 6, "warmup": 2, "min_factor": 0.2}, [0.5, 1.0, 1.0, 0.8, 0.6, 0.4]),
    # CycleGAN / pix2pix: constant for `hold` intervals, then linear to min_factor at `total`
    ("constant_linear", {"hold": 3, "total": 5, "min_factor": 0.0}, [1.0, 1.0, 1.0, 1.0, 0.5, 0.0]),
    ("lambda", {"fn": "tests.nets.test_optim_sched:_factor_of"}, [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]),
])
def test_schedules_closed_form(name, kw, expect):
    """Each schedule's factor at steps 0, 1, ... as the optimizer sees it."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sch = FactorScheduler(opt, ScheduleSpec(name, **kw))
    got = []
    for _ in range(len(expect)):
        got.append(opt.param_groups[0]["lr"])
        sch.step()
    assert got == pytest.approx(expect, abs=1e-6)


def test_onecycle_matches_torch():
    p = nn.Parameter(torch.zeros(1))
    ref_opt = torch.optim.SGD([p], lr=1.0)
    ref = torch.optim.lr_scheduler.OneCycleLR(ref_opt, max_lr=1.0, total_steps=20, cycle_momentum=False)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sch = FactorScheduler(opt, ScheduleSpec("onecycle", total=20))
    for _ in range(19):
        assert opt.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-6)
        ref_opt.step(); ref.step(); sch.step()


def test_unfreeze_mid_training_joins_schedule_at_rule_lr():
    spec = LeNet(), NetConfig(optimizer="sgd", lr=0.1, momentum=0.9, freeze=["conv1", "conv2"], groups=[GroupRule(name="convs", pattern="conv*", lr_mult=0.1)], schedule=ScheduleSpec("step", step_size=1, gamma=0.5))
    net = Net("n", *spec, "cpu")
    assert {g["name"] for g in net.optimizer.param_groups} == {"default"}
    net.scheduler.step()
    net.scheduler.step()
    added = net.unfreeze("conv1")
    assert added == ["conv1.weight", "conv1.bias"]
    g = {g["name"]: g for g in net.optimizer.param_groups}
    assert g["convs"]["lr"] == pytest.approx(0.1 * 0.1 * 0.25)  # rule LR, at the schedule's step 2
    net.freeze("conv1")
    assert {g["name"] for g in net.optimizer.param_groups} == {"default"}


def test_unknown_optimizer_and_option():
    with pytest.raises(ValueError, match="optimizer: 'lamb' unknown"):
        NetConfig(optimizer="lamb")
    with pytest.warns(UserWarning, match=r"betas \[0.9, 0.99\] are Adam's; optimizer sgd does not use them"):
        NetConfig(optimizer="sgd", betas=[0.9, 0.99])
    with pytest.warns(UserWarning, match="momentum 0.9 is SGD's and RMSprop's; optimizer adam does not use it"):
        NetConfig(momentum=0.9)


def test_switching_a_recipes_adam_network_to_sgd_is_one_key(tmp_path):
    """gan_digits' networks use Adam with betas [0.5, 0.999]: optimizer=sgd alone switches (a warning
    says the betas go unused), and betas=[] clears them to the default."""
    from multinet.config import load_recipe
    from multinet.gan import GanRecipe
    with pytest.warns(UserWarning, match="optimizer sgd does not use them"):
        cfg = load_recipe(GanRecipe, "gan_digits", ["networks.generator.optimizer='sgd'",
                                                    "networks.generator.momentum=0.9"])
    net = Net("generator", nn.Linear(2, 2), cfg.networks.generator, "cpu")
    assert isinstance(net.optimizer, torch.optim.SGD) and net.optimizer.defaults["momentum"] == 0.9
    cfg = load_recipe(GanRecipe, "gan_digits", ["networks.generator.optimizer='sgd'", "networks.generator.betas=[]"])
    assert cfg.networks.generator.betas == [0.9, 0.999]


def test_foreach_passed_through():
    net = Net("n", LeNet(), NetConfig(optimizer="adamw", lr=0.01, foreach=False), "cpu")
    assert net.optimizer.defaults["foreach"] is False


def _factor_of(t):  # a user schedule, by import path in a recipe
    return 0.5 ** (t // 2)


def _steps(net, n):
    for _ in range(n):
        net.optimizer.zero_grad()
        net.module(torch.randn(4, 2)).square().mean().backward()
        net.optimizer.step()
        net.scheduler.step()


def test_a_late_group_joins_constant_linear_at_its_own_lr_and_resume_is_exact():
    spec = ScheduleSpec("constant_linear", hold=2, total=6)
    net = Net("n", nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1)), NetConfig(optimizer="sgd", lr=0.1, freeze=["0"], groups=[GroupRule(name="early", pattern="0", lr_mult=0.1)], schedule=spec), "cpu")
    _steps(net, 4)  # t = 4: halfway from hold (2) to total (6), factor 0.5
    net.unfreeze("0")
    lrs = {g["name"]: g["lr"] for g in net.optimizer.param_groups}
    assert lrs == {"default": pytest.approx(0.05), "early": pytest.approx(0.005)}
    state = net.state_dict()
    again = Net("n", nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1)), NetConfig(optimizer="sgd", lr=0.1, freeze=["0"], groups=[GroupRule(name="early", pattern="0", lr_mult=0.1)], schedule=spec), "cpu")
    again.load_state_dict(state)
    assert {g["name"]: g["lr"] for g in again.optimizer.param_groups} == lrs


def test_lambda_schedule_with_a_python_function():
    net = Net("n", nn.Linear(2, 1), NetConfig(optimizer="sgd", lr=1.0, schedule=ScheduleSpec("lambda", fn=_factor_of)), "cpu")
    _steps(net, 4)
    assert net.optimizer.param_groups[0]["lr"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="schedule 'lambda' needs fn"):
        ScheduleSpec("lambda")


def test_freeze_takes_patterns_as_arguments_or_one_list_and_never_leaves_nothing_to_train():
    net = Net("g", nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)), NetConfig(), "cpu")
    assert net.freeze("0", "2.bias") == ["0.bias", "0.weight", "2.bias"]
    assert net.unfreeze(["0.weight", "2.bias"]) == ["0.weight", "2.bias"] and net.unfreeze("0") == ["0.bias"]
    with pytest.raises(ValueError, match="network 'g': freezing 4 parameter\\(s\\) would leave nothing to train"):
        net.freeze()
    assert all(p.requires_grad for p in net.module.parameters())  # every flag as it was
    assert sum(len(g["params"]) for g in net.optimizer.param_groups) == 4
    with pytest.raises(ValueError, match="modules: expected torch.nn.Module objects, got 'a' \\(name patterns go"):
        net.freeze(modules=["a"])
