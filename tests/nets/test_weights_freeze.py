import pytest
import torch
from torch import nn

from multinet import InitRule, bilinear_kernel, frozen, init_preset, init_weights, set_trainable
from multinet.nets.freeze import apply_norm_mode

from nets_zoo import FCN32sLike


def test_bilinear_kernel_exact_values():
    k = bilinear_kernel(2, 2, 4)
    line = torch.tensor([0.25, 0.75, 0.75, 0.25])  # FCN: factor 2, center 1.5
    torch.testing.assert_close(k[0, 0], line[:, None] * line[None, :], rtol=0, atol=0)
    torch.testing.assert_close(k[1, 1], k[0, 0], rtol=0, atol=0)
    assert k[0, 1].abs().sum() == 0 and k[1, 0].abs().sum() == 0
    odd = bilinear_kernel(1, 1, 3)[0, 0]
    torch.testing.assert_close(odd, torch.tensor([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]]))
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        bilinear_kernel(2, 3, 4)


def test_bilinear_upsampling_doubles_a_constant_image():
    up = nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1, bias=False)
    init_weights(up, init_preset("bilinear"))
    out = up(torch.ones(1, 1, 6, 6))
    assert torch.allclose(out[0, 0, 1:-1, 1:-1], torch.ones(10, 10))


def test_strict_init_names_uncovered_module():
    net = FCN32sLike()
    rules = [InitRule("kaiming_normal", (nn.Conv2d,), nonlinearity="relu")]
    with pytest.raises(ValueError, match=r"no init rule covers: upscore \(ConvTranspose2d\)"):
        init_weights(net, rules, strict=True)
    report = init_weights(net, rules + init_preset("bilinear"), strict=True)
    assert ("upscore", "ConvTranspose2d", "bilinear") in report.applied
    assert torch.equal(net.upscore.weight, bilinear_kernel(3, 3, 8))
    assert torch.count_nonzero(net.conv1_1.bias) == 0


def test_dcgan_preset_and_type_match_is_isinstance():
    class MyConv(nn.Conv2d):
        pass

    m = nn.Sequential(MyConv(3, 64, 3), nn.BatchNorm2d(64), nn.Linear(4, 4000))
    report = init_weights(m, init_preset("dcgan"), strict=True)
    assert {r[0]: r[2] for r in report.applied} == {"0": "dcgan.conv_linear", "1": "dcgan.norm", "2": "dcgan.conv_linear"}
    assert abs(m[2].weight.std().item() - 0.02) < 0.002
    assert abs(m[1].weight.mean().item() - 1.0) < 0.01 and m[1].bias.abs().sum() == 0


def test_init_reaches_the_stored_weight_under_spectral_norm():
    # Under a parametrization, module.weight is recomputed on each access: the rule must fill the
    # stored original, and the strict check must not ask for a rule for the ParametrizationList.
    from torch.nn.utils.parametrizations import spectral_norm
    torch.manual_seed(0)
    net = nn.Sequential(spectral_norm(nn.Conv2d(1, 64, 3, bias=False)), spectral_norm(nn.Linear(64, 64)))
    report = init_weights(net, [InitRule("constant", (nn.Conv2d, nn.Linear), val=0.5)], strict=True)
    assert [a[0] for a in report.applied] == ["0", "1"]
    for layer in net:
        assert torch.all(layer.parametrizations.weight.original == 0.5)


def test_pattern_rule_and_report():
    m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    report = init_weights(m, [InitRule("constant", pattern="1", val=3.0, bias=1.0),
                              InitRule("zeros", pattern="nothing")])
    assert torch.all(m[1].weight == 3) and torch.all(m[1].bias == 1)
    assert not torch.all(m[0].weight == 3)
    assert report.uncovered == [("0", "Linear")] and report.unused_rules == ["zeros[*@nothing]"]


def test_freeze_by_pattern_module_first_n():
    net = FCN32sLike()
    assert set_trainable(net, False, patterns="conv1_1") == ["conv1_1.weight", "conv1_1.bias"]
    assert set_trainable(net, False, modules=[net.fc6]) == ["fc6.weight", "fc6.bias"]
    net2 = FCN32sLike()
    names = set_trainable(net2, False, first_n=3)
    assert names == ["conv1_1.weight", "conv1_1.bias", "conv2_1.weight"]
    assert net2.conv2_1.bias.requires_grad
    with pytest.raises(ValueError, match="matches no parameter"):
        set_trainable(net2, False, patterns="conv9")


def test_frozen_context_restores_each_parameters_own_flag():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    a.bias.requires_grad_(False)
    with frozen(a, b):
        assert not any(p.requires_grad for p in [*a.parameters(), *b.parameters()])
    assert a.weight.requires_grad and not a.bias.requires_grad and b.weight.requires_grad


def test_frozen_batchnorm_eval_mode_keeps_running_stats():
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    set_trainable(m, False, patterns="1")
    m.train()
    assert apply_norm_mode(m, "eval") == ["1"]
    before = m[1].running_mean.clone()
    m(torch.randn(8, 3))
    assert torch.equal(before, m[1].running_mean)
    m.train()
    apply_norm_mode(m, "train")
    m(torch.randn(8, 3) + 5)
    assert not torch.equal(before, m[1].running_mean)


def test_eval_mode_restores_the_earlier_mode_even_on_error():
    import pytest
    from torch import nn
    from multinet.nets.freeze import eval_mode
    m = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
    with eval_mode(m) as inner:
        assert inner is m and not m.training and not m[1].training
    assert m.training and m[1].training
    with pytest.raises(RuntimeError), eval_mode(m):
        raise RuntimeError("boom")
    assert m.training
    m.eval()
    with eval_mode(m):
        pass
    assert not m.training


class Block(torch.nn.Module):
    """A user's own module class, named in an init rule's and a group rule's ``types``."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)

    def forward(self, x):
        return self.lin(x)


def _user_types_system():
    from dataclasses import dataclass, field

    from multinet import GroupRule, InitRule, NetConfig, Phase, RunConfig, System

    @dataclass
    class Nets:
        net: NetConfig = field(default_factory=lambda: NetConfig(
            lr=1e-2, init_rules=[InitRule("normal", types=[Block], std=0.5)],
            groups=[GroupRule("**", types=[Block], lr_mult=0.5)]))

    @dataclass
    class Cfg(RunConfig):
        networks: Nets = field(default_factory=Nets)

    class Sys(System):
        Config = Cfg

        def __init__(self, cfg, device, **build):
            super().__init__(cfg, device, **build)
            self.net("net", torch.nn.Sequential(Block(), torch.nn.Linear(2, 1)))
            self.g = self.streams.get("x")

        def phases(self):
            return [Phase("fit", "net", lambda e: {"loss": e.model("net")(torch.randn(8, 2, generator=self.g)).pow(2).mean()})]
    return Sys, Cfg


def test_a_users_class_in_rule_types_saves_as_a_path_and_resumes(tmp_path):
    import tomllib

    from multinet import Runner, load_checkpoint
    from multinet.config import from_dict
    Sys, Cfg = _user_types_system()
    assert Cfg().networks.net.init_rules[0].types == ["tests.nets.test_weights_freeze:Block"]
    cfg = Cfg(device="cpu")
    cfg.train.steps, cfg.train.tensorboard, cfg.train.checkpoint_every = 6, False, 3
    assert Runner(Sys, cfg, tmp_path / "r", progress=False, echo=False, stop_at=3).fit().code == 0
    result = Runner(Sys, out=tmp_path / "r", resume=True, progress=False, echo=False).fit()  # refused before
    assert result.code == 0 and result.step == 6, result.error
    saved = tomllib.loads((tmp_path / "r" / "recipe.toml").read_text())  # unreadable before
    assert from_dict(Cfg, saved).networks.net.groups[0].types == ["tests.nets.test_weights_freeze:Block"]
    assert load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt")["engine"]["iteration"] == 6


def test_a_class_defined_inside_a_function_cannot_be_named_by_a_rule():
    from multinet import InitRule

    class Local(torch.nn.Module):
        pass
    with pytest.raises(ValueError, match="Local is defined inside a function, so a saved run cannot name it"):
        InitRule("normal", types=[Local])
