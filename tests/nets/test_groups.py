import pytest
import torch
from torch import nn

from multinet import GroupRule, Net, NetConfig, audit_groups, group_preset, plan_groups
from multinet.nets.groups import AuditError
from multinet.nets.patterns import name_matches

from nets_zoo import FCN32sLike, LeNet, layered


def _groups(plan):
    return sorted((tuple(sorted(g["names"])), g["lr"], g["weight_decay"]) for g in plan.groups)


def test_pattern_segment_boundaries():
    assert name_matches("layer1", "layer1.weight")
    assert not name_matches("layer1", "layer10.weight")
    assert name_matches("**.fc", "a.b.fc.bias") and name_matches("features.*.weight", "features.3.weight")
    plan = plan_groups(layered(), [GroupRule(pattern="layer1", lr_mult=10)], lr=0.1)
    fast = [g for g in plan.groups if g["lr"] == pytest.approx(1.0)][0]
    assert fast["names"] == ["layer1.weight", "layer1.bias"]


def test_caffe_bias_gives_seed000_groups():
    net = FCN32sLike()
    net.upscore.weight.requires_grad_(False)  # the frozen bilinear upsampling of seed 000
    plan = plan_groups(net, group_preset("caffe_bias"), lr=1e-4, weight_decay=5e-4)
    convs = ["conv1_1", "conv2_1", "fc6", "score_fr"]
    assert _groups(plan) == sorted([
        (tuple(sorted(f"{c}.weight" for c in convs)), 1e-4, 5e-4),
        (tuple(sorted(f"{c}.bias" for c in convs)), 2e-4, 0.0),
    ])
    opt = torch.optim.SGD(plan.groups, lr=1e-4, momentum=0.99, weight_decay=5e-4)
    audit_groups(net, opt.param_groups)


def test_fc3_times_ten_gives_seed001_groups():
    net = LeNet()
    plan = plan_groups(net, group_preset("submodule_mult", pattern="fc3", mult=10), lr=0.001, weight_decay=1e-4)
    base = tuple(sorted(n for n, _ in net.named_parameters() if not n.startswith("fc3")))
    assert _groups(plan) == sorted([(base, 0.001, 1e-4), (("fc3.bias", "fc3.weight"), pytest.approx(0.01), 1e-4)])


def test_multipliers_compose_and_identical_settings_share_a_group():
    net = LeNet()
    rules = group_preset("caffe_bias") + [GroupRule(pattern="fc3", lr_mult=10), GroupRule(pattern="fc2", lr_mult=1.0)]
    plan = plan_groups(net, rules, lr=0.01, weight_decay=1e-4)
    lrs = {n: g["lr"] for g in plan.groups for n in g["names"]}
    assert lrs["fc3.bias"] == pytest.approx(0.2) and lrs["fc3.weight"] == pytest.approx(0.1)
    assert lrs["conv1.bias"] == pytest.approx(0.02)
    # fc2 x1 changes nothing: fc2's weight ends with the default settings and shares that group
    assert len(plan.groups) == 4
    group_of = {n: g["name"] for g in plan.groups for n in g["names"]}
    assert group_of["fc2.weight"] == group_of["conv1.weight"]


def test_no_decay_norm_bias_and_layer_decay():
    m = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3), nn.Linear(3, 2))
    plan = plan_groups(m, group_preset("no_decay_norm_bias"), lr=1.0, weight_decay=0.1)
    wd = {n: g["weight_decay"] for g in plan.groups for n in g["names"]}
    assert wd == {"0.weight": 0.1, "0.bias": 0.0, "1.weight": 0.0, "1.bias": 0.0, "2.weight": 0.1, "2.bias": 0.0}
    plan = plan_groups(m, group_preset("layer_decay", layers=["0", "1", "2"], decay=0.5), lr=1.0)
    lrs = {n: g["lr"] for g in plan.groups for n in g["names"]}
    assert (lrs["0.weight"], lrs["1.weight"], lrs["2.weight"]) == (0.25, 0.5, 1.0)


def test_audit_catches_missing_and_duplicate_and_frozen():
    net = LeNet()
    params = dict(net.named_parameters())
    left_out = [{"params": [p for n, p in params.items() if n != "fc1.bias"]}]
    with pytest.raises(AuditError, match="in no group: fc1.bias"):
        audit_groups(net, left_out)
    twice = [{"params": list(params.values())}, {"params": [params["fc2.weight"]]}]
    with pytest.raises(AuditError, match="more than one group: fc2.weight"):
        audit_groups(net, twice)
    net.conv1.weight.requires_grad_(False)
    with pytest.raises(AuditError, match="frozen parameters in a group: conv1.weight"):
        audit_groups(net, [{"params": list(params.values())}])


def test_tied_parameters_counted_once_and_unused_rule_reported():
    m = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 5, bias=False))
    m[1].weight = m[0].weight
    plan = plan_groups(m, [GroupRule(name="nothing", pattern="decoder")], lr=0.1)
    assert sum(len(g["params"]) for g in plan.groups) == 1
    assert plan.unused_rules == ["nothing"]
    assert "rules that matched nothing: nothing" in plan.explain()


def test_explain_table_lists_every_parameter():
    net = Net("d", LeNet(), NetConfig(optimizer="sgd", lr=0.1, groups=group_preset("caffe_bias"), freeze=["conv1"]), "cpu")
    text = net.explain()
    for name, _ in net.module.named_parameters():
        assert name in text
    assert "conv1.weight" in text and "yes" in text.splitlines()[2]
