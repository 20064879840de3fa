import os
import re

import pytest
import torch
from torch import nn

from multinet import CheckpointManager, Net, NetConfig, load_checkpoint, load_partial, save_checkpoint
from multinet.state.checkpoint import rng_state, set_rng_state

from nets_zoo import LeNet


def test_partial_load_report_counts():
    src = LeNet()
    sd = {"backbone." + k: v for k, v in src.state_dict().items()}
    sd["backbone.fc3.weight"] = torch.zeros(5, 84)  # a new head: shape mismatch
    sd["backbone.extra.weight"] = torch.zeros(1)
    dst = LeNet()
    rep = load_partial(dst, sd, strip_prefix="backbone.", exclude=["fc3.bias"])
    assert sorted(rep.matched) == sorted(k for k in src.state_dict() if not k.startswith("fc3"))
    assert rep.shape_mismatch == [("fc3.weight", (5, 84), (10, 84))]
    assert rep.unexpected == ["extra.weight"]
    assert sorted(rep.missing) == ["fc3.bias", "fc3.weight"]
    assert rep.coverage == pytest.approx(8 / 10)
    assert torch.equal(dst.conv1.weight, src.conv1.weight)
    assert not torch.equal(dst.fc3.bias, src.fc3.bias)


def test_partial_load_rename_and_floor():
    src = nn.Sequential(nn.Linear(2, 2))
    dst = LeNet()
    with pytest.raises(ValueError, match="below the floor"):
        load_partial(dst, src.state_dict())  # nothing matches: never silent
    small = nn.Sequential(nn.Linear(84, 10))
    rep = load_partial(dst, small.state_dict(), rename={"0": "fc3"})
    assert sorted(rep.matched) == ["fc3.bias", "fc3.weight"]
    with pytest.raises(ValueError, match="below the floor"):
        load_partial(dst, small.state_dict(), rename={"0": "fc3"}, min_coverage=0.5)


def test_a_rename_prefix_with_a_trailing_dot_matches_and_one_matching_nothing_warns():
    dst, small = LeNet(), nn.Sequential(nn.Linear(84, 10))
    rep = load_partial(dst, small.state_dict(), rename={"0.": "fc3."})  # matched nothing before
    assert sorted(rep.matched) == ["fc3.bias", "fc3.weight"]
    with pytest.warns(UserWarning, match=r"pretrained rename 'body' matches no key of the source \(0.weight, 0.bias"):
        load_partial(dst, small.state_dict(), rename={"0": "fc3", "body.": "trunk"})


def test_a_pretrained_load_says_what_it_loaded(tmp_path, caplog):
    import logging
    torch.save(nn.Sequential(nn.Linear(84, 10)).state_dict(), tmp_path / "w.pt")
    spec = {"path": str(tmp_path / "w.pt"), "rename": {"0": "fc3"}}
    from multinet.nets import PretrainedSpec
    with caplog.at_level(logging.INFO, logger="multinet"):
        Net("classifier", LeNet(), NetConfig(optimizer="adam", lr=0.01, pretrained=PretrainedSpec(**spec)), "cpu")
    assert f"classifier: pretrained {tmp_path / 'w.pt'}: loaded 2/10 tensors (20.0%)" in caplog.text


def test_partial_load_from_multinet_checkpoint(tmp_path):
    net = Net("generator", LeNet(), NetConfig(optimizer="adam", lr=0.01), "cpu")
    save_checkpoint({"networks": {"generator": net.state_dict()}}, tmp_path / "c.pt")
    dst = LeNet()
    rep = load_partial(dst, tmp_path / "c.pt", network="generator")
    assert rep.coverage == 1.0
    with pytest.raises(ValueError, match="no network 'critic'"):
        load_partial(dst, tmp_path / "c.pt", network="critic")


def _steps(net, n, gen):
    for _ in range(n):
        net.optimizer.zero_grad(set_to_none=True)
        x = torch.randn(4, 3, 32, 32, generator=gen)
        nn.functional.dropout(net.module(x), 0.5).square().mean().backward()
        net.optimizer.step()
        net.scheduler.step()


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    from multinet import ScheduleSpec
    spec = lambda: (LeNet(), NetConfig(optimizer="adam", lr=0.01, schedule=ScheduleSpec("cosine", total=20)))
    torch.manual_seed(1)
    gen = torch.Generator().manual_seed(5)
    a = Net("a", *spec(), "cpu")
    _steps(a, 3, gen)
    save_checkpoint({"networks": {"a": a.state_dict()}, "rng": rng_state({"data": gen})}, tmp_path / "k.pt")
    _steps(a, 4, gen)
    torch.manual_seed(99)
    b = Net("a", *spec(), "cpu")
    gen2 = torch.Generator().manual_seed(0)
    ck = load_checkpoint(tmp_path / "k.pt", parts=("networks", "rng"))
    b.load_state_dict(ck["networks"]["a"])
    set_rng_state(ck["rng"], {"data": gen2})
    _steps(b, 4, gen2)
    for (n, pa), pb in zip(a.module.named_parameters(), b.module.parameters()):
        assert torch.equal(pa, pb), n
    assert a.optimizer.param_groups[0]["lr"] == b.optimizer.param_groups[0]["lr"]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_code_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "multinet-checkpoint-1", "x": _Evil()}, path)
    with pytest.raises(ValueError, match="evil.pt: refused"):
        load_checkpoint(path)


def test_truncated_corrupt_foreign_files(tmp_path):
    good = save_checkpoint({"networks": {}, "blob": torch.randn(1000)}, tmp_path / "g.pt")
    data = good.read_bytes()
    (tmp_path / "t.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"t.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "t.pt")
    (tmp_path / "c.pt").write_bytes(b"garbage" * 10)
    with pytest.raises(ValueError, match=r"c.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "c.pt")
    torch.save({"state_dict": {}}, tmp_path / "f.pt")
    with pytest.raises(ValueError, match=r"f.pt: not a multinet checkpoint"):
        load_checkpoint(tmp_path / "f.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def _flip_tensor_bytes(path, n=64):
    """Overwrite ``n`` bytes in the middle of the largest tensor record (as a bad disk or copy would)."""
    import zipfile
    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    mid = info.header_offset + 100 + info.file_size // 2
    raw[mid:mid + n] = bytes(b ^ 0xFF for b in raw[mid:mid + n])
    path.write_bytes(bytes(raw))


def test_changed_tensor_bytes_are_refused_by_the_checksum(tmp_path):
    payload = {"config": {}, "networks": {"g": {"module": {"w": torch.randn(1000, 100)}}}, "engine": {"iteration": 3},
               "rng": {}}
    path = save_checkpoint(payload, tmp_path / "c.pt")
    assert torch.equal(load_checkpoint(path)["networks"]["g"]["module"]["w"], payload["networks"]["g"]["module"]["w"])
    _flip_tensor_bytes(path)
    assert torch.load(path, weights_only=True)["networks"]["g"]["module"]["w"].shape == (1000, 100)  # loads silently
    with pytest.raises(ValueError, match=r"c.pt: checksum mismatch"):
        load_checkpoint(path)


@pytest.mark.parametrize("change,msg", [
    (lambda d: d.pop("engine"), "'engine' is missing, expected a dict"),
    (lambda d: d.update(networks=[1, 2]), "'networks' is a list, expected a dict"),
    (lambda d: d["engine"].update(iteration=-5), "engine iteration -5 is not valid (0 to 1e+12)"),
])
def test_broken_checkpoint_structure_is_one_line(tmp_path, change, msg):
    payload = {"config": {}, "networks": {}, "engine": {"iteration": 3}, "rng": {}}
    change(payload)
    path = save_checkpoint(payload, tmp_path / "b.pt")
    with pytest.raises(ValueError, match=re.escape(f"b.pt: broken checkpoint: {msg}")):
        load_checkpoint(path)


def test_manager_keeps_last_k_and_last_pt(tmp_path):
    m = CheckpointManager(tmp_path, keep_last=2)
    for step in (10, 20, 30):
        m.save({"step": step}, step)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "step_00000020.pt", "step_00000030.pt"]
    assert load_checkpoint(m.last, parts=())["step"] == 30


def test_rng_state_round_trip():
    import random
    import numpy as np
    state = rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1))
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1)) == a


def test_generator_state_from_another_device_type_warns_and_continues():
    from multinet.state.checkpoint import restore_generator
    g = torch.Generator().manual_seed(3)
    before = g.get_state()
    with pytest.warns(UserWarning, match="saved on another device type"):
        restore_generator(g, torch.zeros(16, dtype=torch.uint8), "noise")  # a CUDA generator's state size
    assert torch.equal(g.get_state(), before)


def test_a_stream_missing_from_the_checkpoint_warns():
    from multinet.state.checkpoint import rng_state, set_rng_state
    state = rng_state({"noise": torch.Generator().manual_seed(1)})
    with pytest.warns(UserWarning, match="random stream\\(s\\) 'gan.noise' not in the checkpoint"):
        set_rng_state(state, {"noise": torch.Generator(), "gan.noise": torch.Generator()})
