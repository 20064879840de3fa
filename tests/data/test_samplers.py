"""Streamed batches (``LoaderSampler``) resume where they were without touching torch's global generator."""
import numpy as np
import pytest
import torch
from PIL import Image

from multinet import load_checkpoint
from multinet.data import LoaderSampler

from ..checkpoints import leaves, same
from ..cli_run import run

CPU = torch.device("cpu")


class _WorkerSeeds(torch.utils.data.Dataset):
    """Item i is (i, the seed of the process that loaded it): a worker's seed, or torch's initial seed."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        info = torch.utils.data.get_worker_info()
        return torch.tensor(i), torch.tensor((info.seed if info else torch.initial_seed()) % 2 ** 62)


@pytest.mark.parametrize("workers", [0, 1])
def test_starting_an_iterator_leaves_the_global_generator_alone(workers):
    torch.manual_seed(7)
    before = torch.get_rng_state()
    s = LoaderSampler(_WorkerSeeds(), 4, seed=3, workers=workers, device=CPU)
    for _ in range(7):  # three epochs of three batches begun: three iterators
        s.next()
    assert torch.equal(torch.get_rng_state(), before)


def test_a_resumed_sampler_loads_the_same_rows_with_the_same_worker_seeds():
    whole = LoaderSampler(_WorkerSeeds(), 4, seed=3, workers=1, device=CPU)
    batches = [whole.next() for _ in range(5)]
    half = LoaderSampler(_WorkerSeeds(), 4, seed=3, workers=1, device=CPU)
    for _ in range(2):
        half.next()
    resumed = LoaderSampler(_WorkerSeeds(), 4, seed=3, workers=1, device=CPU)
    resumed.load_state_dict(half.state_dict())
    rest = [resumed.next() for _ in range(3)]
    for (x, seeds), (rx, rseeds) in zip(batches[2:], rest):
        assert torch.equal(x, rx) and torch.equal(seeds, rseeds)
    assert not torch.equal(batches[0][1], batches[3][1])  # each epoch its own worker seeds


def test_an_image_folder_run_resumed_mid_epoch_ends_bit_for_bit_as_the_uninterrupted_one(tmp_path, one_thread):
    """16 images in batches of 4, 6 steps: the resumed run starts mid-epoch (step 3) and begins the
    next epoch's iterator at another moment than the whole run; the global RNG states it saves
    (the checkpoint's ``rng`` entries) and everything else end the same."""
    g = np.random.default_rng(0)
    for i in range(16):
        (tmp_path / f"imgs/c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(g.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(tmp_path / f"imgs/c{i % 2}/{i}.png")
    args = ["gan_digits", "--device", "cpu", "--steps", "6", "--no-progress", "train.log_every=1",
            "train.checkpoint_every=3", "train.tensorboard=false", "train.sample_every=0", "eval.samples=16",
            "eval.classifier_epochs=1", "eval.standard_metrics=false", "data.name=imagefolder",
            f"data.root='{tmp_path / 'imgs'}'", "data.image_size=8", "data.batch_size=4", "data.workers=1",
            "model.hidden=16", "networks.generator.ema=0.5"]  # an EMA that 6 steps fill (no warning)
    assert run("multinet.gan", [*args, "--out", str(tmp_path / "whole")]).returncode == 0
    r = run("multinet.gan", ["--resume", str(tmp_path / "whole/checkpoints/step_00000003.pt"), "--out",
                             str(tmp_path / "resumed"), "--no-progress"])
    assert r.returncode == 0, r.stderr
    a = leaves(load_checkpoint(tmp_path / "whole/checkpoints/last.pt"))
    b = leaves(load_checkpoint(tmp_path / "resumed/checkpoints/last.pt"))
    assert a.keys() == b.keys() and any(k.startswith("/rng/") for k in a)
    bad = [k for k in a if not k.startswith("/stateful/timer/") and not same(a[k], b[k])]
    assert not bad, f"the resumed run ends elsewhere than the uninterrupted one: {bad}"
