"""The hot loop reads nothing back to the host between log steps: every shipped system, counted
with a TorchDispatchMode over the iterations between two log steps (each such read is a stall on a
GPU, and a step that makes none can be captured as a CUDA graph)."""
import collections
import traceback

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from multinet.config import load_recipe
from multinet.engine import Event
from multinet.run import engine_for

READS = ("aten._local_scalar_dense", "aten.is_nonzero", "aten.item")


class HostReads(TorchDispatchMode):
    """Counts device→host reads, by the multinet line that caused them."""

    def __init__(self):
        super().__init__()
        self.where = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func.overloadpacket) in READS:
            mine = [f for f in traceback.extract_stack() if "/multinet/" in f.filename]
            self.where[f"{mine[-1].filename}:{mine[-1].lineno}" if mine else "torch"] += 1
        return func(*args, **(kwargs or {}))


SYSTEMS = [  # (task, recipe, overrides): every shipped system, each kind and training mode
    ("gan", "gan_digits", []),  # MLP, EMA of the generator
    ("gan", "gan_ring8", []),  # a 2-D mixture
    ("gan", "dcgan_mnist_cond", ["data.name=digits", "data.image_size=28"]),  # conv, class-conditional
    ("gan", "sngan_cifar10", ["data.name=digits", "data.image_size=32", "model.width=4", "data.batch_size=8"]),  # ResNet, SN
    ("autoencoder", "ae_7_4_rx_finetune", []),  # messages, two channels
    ("autoencoder", "ae_7_4_model_free", []),  # policy-gradient transmitter
    ("autoencoder", "ae_bits_ldpc", []),  # constellation + demapper
    ("autoencoder", "ae_images_awgn", []),
    # every amp mode, gradient accumulation: fp16 skips overflowing steps on the device
    ("gan", "gan_digits", ["train.amp=bf16"]),
    ("gan", "gan_digits", ["train.amp=fp16"]),
    ("gan", "gan_digits", ["train.accumulate=3"]),
    ("autoencoder", "ae_bits_ldpc", ["train.amp=fp16", "train.accumulate=2"]),
]


@pytest.mark.filterwarnings("ignore:amp = 'fp16' on the CPU")
@pytest.mark.parametrize("task,recipe,extra", SYSTEMS, ids=[" ".join([r, *x]) for _, r, x in SYSTEMS])
def test_no_host_read_between_log_steps(task, recipe, extra):
    if task == "gan":
        from multinet.gan import GanRecipe as Recipe, GanSystem as System
        nets = ("generator", "discriminator")
    else:
        from multinet.autoencoder import AeRecipe as Recipe, AeSystem as System
        nets = ("encoder", "decoder")
    # Fused optimizers keep their step counts as tensors; torch's default (for-loop / foreach)
    # Adam reads its CPU step counter with .item(), which on a GPU is a CPU tensor, not a stall.
    cfg = load_recipe(Recipe, recipe, ["device='cpu'", "train.steps=40", "train.log_every=10",
                                       "train.tensorboard=false", *[f"networks.{n}.fused=true" for n in nets], *extra])
    engine = engine_for(System(cfg, torch.device("cpu")))
    reads = HostReads()

    def between_log_steps(e):  # on from after step 10 (a log step) to after step 19
        if e.iteration == 10:
            reads.__enter__()
        elif e.iteration == 19:
            reads.__exit__(None, None, None)
    engine.on(Event.ITERATION_COMPLETED, between_log_steps)
    engine.run(stop_at=20)
    assert not reads.where, dict(reads.where)


@pytest.mark.filterwarnings("ignore:amp = 'fp16' on the CPU")
@pytest.mark.parametrize("amp", ["none", "bf16", "fp16"])
def test_a_manual_phase_that_follows_the_rule_reads_nothing_back(amp):
    """The documented rule: backward(engine, loss) and optimizer_step(engine, name), terms as tensors."""
    from multinet import Engine, Net, NetConfig, Phase
    from multinet.engine import backward, optimizer_step
    torch.manual_seed(0)
    nets = {k: Net(k, torch.nn.Linear(4, 4), NetConfig(fused=True, ema=0.5, clip_grad_norm=1.0 if k == "a" else 0.0),
                   "cpu") for k in ("a", "b")}

    def step(e):
        out = e.model("b")(e.model("a")(torch.randn(8, 4)))
        loss = out.pow(2).mean()
        backward(e, loss)
        optimizer_step(e, "b")
        optimizer_step(e, "a")
        return {"loss": loss.detach(), "mean": out.detach().mean()}
    engine = Engine(nets, [Phase("ab", ("a", "b"), step, update="manual")], total_steps=20, amp=amp, log_every=10)
    reads = HostReads()
    engine.on(Event.ITERATION_COMPLETED, lambda e: reads.__enter__() if e.iteration == 10 else
              reads.__exit__(None, None, None) if e.iteration == 19 else None)
    engine.run()
    assert not reads.where, dict(reads.where)
    assert engine.phase_steps == {"ab": 20}


def test_the_ema_is_torchs_average_bit_for_bit_and_loads_either_way():
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from multinet.nets import Ema
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ours, theirs = Ema(net, 0.9), AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    for _ in range(4):
        net(torch.randn(8, 3)).sum().backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= 0.1 * p.grad
        ours.update_parameters(net)
        theirs.update_parameters(net)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    again = Ema(net, 0.9)
    again.load_state_dict(theirs.state_dict())  # a run saved with AveragedModel resumes
    assert again.updates == 4
    again.update_parameters(net)
    theirs.update_parameters(net)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), theirs.state_dict().values()))
    # Ema lists a network's tensors once; one replaced afterwards is still the one it averages.
    net[0].weight = torch.nn.Parameter(net[0].weight.detach() * 2)
    net[1].running_mean = net[1].running_mean + 1
    again.update_parameters(net)
    theirs.update_parameters(net)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), theirs.state_dict().values()))
    floats = torch.nn.Linear(3, 2)  # one dtype: the single-call path
    ours, theirs = Ema(floats, 0.5), AveragedModel(floats, multi_avg_fn=get_ema_multi_avg_fn(0.5), use_buffers=True)
    for _ in range(3):
        with torch.no_grad():
            floats.weight.add_(1.0)
        ours.update_parameters(floats)
        theirs.update_parameters(floats)
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))


def test_cuda_graph_compile_modes_are_refused_off_cuda_in_one_line():
    from multinet import Net, NetConfig
    from multinet.config import ConfigError, from_dict
    from multinet.gan import GanRecipe
    with pytest.raises(ConfigError, match="train.compile_mode: 'reduce-overhead' needs train.compile = true"):
        from_dict(GanRecipe, {"train": {"compile_mode": "reduce-overhead"}})
    for mode in ("reduce-overhead", "max-autotune"):
        with pytest.raises(ValueError, match=f"g: compile mode '{mode}' replays CUDA graphs, but this network is on cpu"):
            Net("g", torch.nn.Linear(2, 2), NetConfig(), "cpu", compile=mode)
    net = Net("g", torch.nn.Linear(2, 2), NetConfig(), "cpu", compile="max-autotune-no-cudagraphs")
    assert net.module.weight.shape == (2, 2)  # compiled lazily, at the first call


def test_a_python_number_term_is_noted_and_the_rates_stay_on_the_device():
    from multinet.engine import Engine, Phase, bit_error_rate, error_rate
    from multinet.nets import Net, NetConfig
    torch.manual_seed(0)
    net = Net("clf", torch.nn.Linear(4, 3), NetConfig(lr=0.1), "cpu")
    x, y = torch.randn(32, 4), torch.randint(3, (32,))

    def step(e):
        out = e.model("clf")(x)
        return {"loss": torch.nn.functional.cross_entropy(out, y), "err": error_rate(out, y),
                "acc": float((out.argmax(1) == y).float().mean())}
    e = Engine({"clf": net}, [Phase("fit", "clf", step)], 3)
    with pytest.warns(UserWarning, match="term 'acc' is a Python number"):
        e.run()
    assert e.terms["fit"]["err"].item() == pytest.approx(1 - e.terms["fit"]["acc"].item())
    logits, bits = torch.tensor([[2.0, -1.0], [-0.5, 3.0]]), torch.tensor([[1, 1], [0, 0]])
    assert bit_error_rate(logits, bits).item() == 0.5 and error_rate(logits, torch.tensor([0, 0])).item() == 0.5
    with HostReads() as reads:
        error_rate(logits, torch.tensor([0, 1]))
        bit_error_rate(logits, bits)
    assert not reads.where
