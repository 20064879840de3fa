"""Every shipped recipe, a few CPU steps each: its losses match the pinned values, its checkpoint
loads back through ``load_system``, and a run resumed from its mid-run checkpoint ends bit for bit
where the uninterrupted run does.

The recipes run as written, with fewer steps, small batches and networks, a minimal evaluation,
and, for the datasets a clean clone lacks, a stand-in this file writes: 64 random MNIST-sized
images in IDX files (read through ``data.name = "idx"``). One test per recipe runs all three
checks on one training run: ``pytest -n 2`` would otherwise train a recipe once per test process.
"""
import json
import os
import struct

import numpy as np
import pytest

from multinet import load_checkpoint, load_system
from multinet.config import list_recipes
from multinet.run.resume import FROM_NOW

from ..checkpoints import leaves, same
from ..cli_run import run

STEPS = 4  # even: the resumed run starts from the checkpoint at STEPS // 2
COMMON = ["--steps", str(STEPS), "--no-progress", "device='cpu'", "train.log_every=1",
          f"train.checkpoint_every={STEPS // 2}", "train.tensorboard=false"]
EVAL = {"gan": ["train.sample_every=0", "eval.samples=16", "eval.classifier_epochs=1", "eval.standard_metrics=false"],
        # One batch of 20 blocks a point, two at most: enough to run the Monte Carlo, the plot and the CSV.
        "autoencoder": ["eval.baselines=false", "eval.min_errors=1", "eval.max_blocks=40", "eval.batch=20",
                        "eval.code_batch=20"]}

# The stand-in data: {mnist} is the IDX folder the test writes; {source} is a tiny gan_digits run's
# checkpoint (SOURCE), the pretrained networks gan_transfer starts from. No stand-in passes for
# CIFAR-10 (torchvision checks each file's MD5 against the real dataset's): the IDX images, resized,
# take its place, held in memory and sampled as CIFAR-10 is, with one channel instead of three.
MNIST = ["data.name='idx'", "data.root='{mnist}'"]
CIFAR10 = [*MNIST, "data.image_size=32"]
SOURCE = ["gan_digits", "model.hidden=16", "model.d_hidden=16", "model.d_layers=2"]  # as gan_transfer's header says
# Rejection sampling draws 10,000 candidates or more through both networks.
MIXTURE = ["data.batch_size=64", "model.hidden=32", "model.d_hidden=32"]
# Each recipe's own overrides: smaller networks and batches, and its stand-in data.
SMALL = {
    "ae_bits_ldpc": ["channel.eval_db=[4.0]"],  # one point: each LDPC decoding takes a while
    "dcgan_mnist": [*MNIST, "data.batch_size=8", "model.width=8"],
    "dcgan_mnist_cond": [*MNIST, "data.batch_size=8", "model.width=8"],
    "gan_grid25": [*MIXTURE, "eval.drs_refit=2", "eval.drs_refit_batch=16"],
    "gan_mnist_mlp": [*MNIST, "data.batch_size=8"],
    "gan_ring8": MIXTURE,
    "gan_transfer": [*MNIST, "data.batch_size=8", "model.hidden=16",
                     "networks.generator.pretrained.path='{source}'",
                     "networks.discriminator.pretrained.path='{source}'"],
    "sngan_cifar10": [*CIFAR10, "data.batch_size=4", "model.width=8"],
}

# The logged losses of each recipe's run, step by step. A deliberate change to what a recipe
# trains updates them in the same commit; MULTINET_REPIN=1 python -m pytest tests/recipes -s prints the new table.
PINNED = {
    "ae_2_2": {
        "loss/0_joint": [1.4383131, 1.4175694, 1.394982],
        "loss/1_decoder": [1.38386]},
    "ae_7_4": {
        "loss/0_joint": [2.8017242, 2.6884201, 2.6025538],
        "loss/1_decoder": [2.5558007]},
    "ae_7_4_model_free": {
        "loss/0_joint.receiver": [2.8017242, 2.7064238, 2.6201105],
        "loss/0_joint.transmitter": [0.0002038097, -0.01016592, 0.00025233999],
        "loss/1_decoder": [2.5782366]},
    "ae_7_4_quantized": {
        "loss/0_joint.receiver": [2.8242774, 2.7116437, 2.6302035],
        "loss/0_joint.transmitter": [0.0013192811, -0.01632205, -0.010445729],
        "loss/1_decoder": [2.5905464]},
    "ae_7_4_rx_finetune": {
        "loss/0_joint": [2.8004248, 2.6781058],
        "loss/1_decoder": [2.6234651, 2.5847631]},
    "ae_8_8": {
        "loss/0_joint": [5.5715747, 5.4664721, 5.3596625],
        "loss/1_decoder": [5.2925963]},
    "ae_bits_ldpc": {
        "loss/0_joint": [0.69129491, 0.65052742, 0.6190924],
        "loss/1_decoder": [0.60450047]},
    "ae_images_awgn": {
        "loss/0_joint": [0.78099173, 0.66560709, 0.57115853],
        "loss/1_decoder": [0.52863806]},
    "dcgan_mnist": {
        "loss/discriminator": [1.5425115, 1.6117752, 1.6190643, 1.6276029],
        "loss/generator": [0.72618276, 0.71222311, 0.6980356, 0.6996969]},
    "dcgan_mnist_cond": {
        "loss/discriminator": [1.9313726, 1.9247346, 1.8488073, 1.8623916],
        "loss/generator": [0.65887487, 0.65087354, 0.69633102, 0.63906932]},
    "gan_digits": {
        "loss/discriminator": [1.3853047, 1.3859915, 1.3437021, 1.3396156],
        "loss/generator": [0.70045114, 0.68906832, 0.68010271, 0.66850561]},
    "gan_grid25": {
        "loss/discriminator": [1.6199431, 1.6053343, 1.5318016, 1.5652648],
        "loss/generator": [0.74296927, 0.7327683, 0.7344991, 0.73352337]},
    "gan_mnist_mlp": {
        "loss/discriminator": [1.4034661, 1.3778522, 1.3669734, 1.3665869],
        "loss/generator": [0.71738178, 0.71742535, 0.71046722, 0.70588624]},
    "gan_ring8": {
        "loss/discriminator": [1.422526, 1.412142, 1.4036223, 1.4094373],
        "loss/generator": [0.74317122, 0.73390764, 0.73573774, 0.73480499]},
    "gan_transfer": {
        "loss/discriminator": [1.3889507, 1.3949151, 1.3927934, 1.3906205],
        "loss/generator": [0.62381548, 0.62466913, 0.62509257, 0.62559181]},
    "sngan_cifar10": {
        "loss/discriminator": [1.4397198, 1.1789104, 0.887968, 0.47138602],
        "loss/generator": [1.0141772, 0.82947469, 0.76280856, 0.99369818]},
}
REPIN = os.environ.get("MULTINET_REPIN") == "1"
TASK = {name: task for task in EVAL for name in list_recipes(task)}


def _write_mnist(folder, n=64):
    """``n`` random 28x28 images with labels 0..9, as the IDX files of the MNIST distribution."""
    folder.mkdir()
    g = np.random.default_rng(0)
    images = g.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    (folder / "train-images-idx3-ubyte").write_bytes(struct.pack(">HBB3I", 0, 8, 3, n, 28, 28) + images.tobytes())
    (folder / "train-labels-idx1-ubyte").write_bytes(struct.pack(">HBBI", 0, 8, 1, n) + labels.tobytes())


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The runs' working folder (relative data roots and caches land here), with the stand-in data."""
    work = tmp_path_factory.mktemp("recipes")
    _write_mnist(work / "mnist")
    return work


@pytest.fixture(scope="module")
def source(work):
    r = run("multinet.gan", [*SOURCE, *COMMON, *EVAL["gan"], "--steps", "1", "--out", str(work / "runs/source")], cwd=work)
    assert r.returncode == 0, r.stderr
    return work / "runs/source/checkpoints/last.pt"


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _losses(rows):
    losses = {}
    for row in rows:
        for key, value in row.items():
            if key.startswith("loss/"):
                losses.setdefault(key, []).append(value)
    return losses


def _check_round_trip(ckpt_path):
    system, ckpt = load_system(ckpt_path)
    for name, net in system.nets.items():
        saved = ckpt["networks"][name]["module"]
        loaded = net.module.state_dict()
        assert loaded.keys() == saved.keys(), f"{name}: loaded {sorted(loaded)}, saved {sorted(saved)}"
        bad = [k for k in saved if not same(loaded[k], saved[k])]
        assert not bad, f"{name}: loaded weights differ from the saved ones: {bad}"
        if name in ckpt.get("ema", {}):
            ema = net.ema.state_dict()
            bad = [k for k in ckpt["ema"][name] if not same(ema[k], ckpt["ema"][name][k])]
            assert not bad, f"{name}: loaded EMA differs from the saved one: {bad}"


# What a resumed run does not take from its checkpoint: the seconds spent training, and the keys a
# saved file never sets (data.download and the trackers: as given now).
NOT_CARRIED = ("/stateful/timer/", *(f"/config/{key.replace('.', '/')}" for key in FROM_NOW))


def _check_resume(module, full, resumed, work):
    mid = full / f"checkpoints/step_{STEPS // 2:08d}.pt"
    r = run(module, ["--resume", str(mid), "--out", str(resumed), "--no-progress"], cwd=work)
    assert r.returncode == 0, r.stderr
    a = leaves(load_checkpoint(full / "checkpoints/last.pt"))
    b = leaves(load_checkpoint(resumed / "checkpoints/last.pt"))
    assert a.keys() == b.keys(), f"checkpoint entries differ: {sorted(set(a) ^ set(b))}"
    bad = [k for k in a if not k.startswith(NOT_CARRIED) and not same(a[k], b[k])]
    assert not bad, f"resumed from step {STEPS // 2}, the final checkpoint differs from the uninterrupted run's: {bad}"
    later = [row for row in _rows(full) if row["step"] > STEPS // 2]
    assert _rows(resumed) == later, "the resumed run logged other values than the uninterrupted run"


@pytest.mark.parametrize("recipe", list_recipes())
def test_recipe_trains_to_its_pinned_losses_loads_back_and_resumes_exactly(recipe, work, request):
    assert recipe in TASK, f"{recipe}: a task this test does not know (task = one of {', '.join(EVAL)})"
    paths = {"mnist": work / "mnist"}
    if any("{source}" in item for item in SMALL.get(recipe, [])):
        paths["source"] = request.getfixturevalue("source")
    items = SMALL.get(recipe, [])
    for name, path in paths.items():
        items = [item.replace(f"{{{name}}}", str(path)) for item in items]
    # In a folder of its own: a folder named as a recipe in the working folder would shadow the recipe.
    module, full = f"multinet.{TASK[recipe]}", work / "runs" / recipe / "full"
    r = run(module, [recipe, *COMMON, *EVAL[TASK[recipe]], *items, "--out", str(full)], cwd=work)
    assert r.returncode == 0, r.stderr

    _check_round_trip(full / "checkpoints/last.pt")
    _check_resume(module, full, full.parent / "resumed", work)

    losses = _losses(_rows(full))
    assert losses, f"{recipe}: no loss logged"
    if REPIN:
        lines = [f"        {json.dumps(k)}: {[float(f'{x:.8g}') for x in v]}" for k, v in losses.items()]
        print(f"\n    {json.dumps(recipe)}: {{\n" + ",\n".join(lines) + "},")
        return
    assert recipe in PINNED, f"{recipe}: no pinned losses; add its entry to PINNED (MULTINET_REPIN=1 prints it)"
    pinned = PINNED[recipe]
    assert losses.keys() == pinned.keys(), f"{recipe}: logs {sorted(losses)}, pinned {sorted(pinned)}"
    for key, values in pinned.items():
        assert losses[key] == pytest.approx(values, rel=1e-4, abs=1e-6), f"{recipe}: {key} moved"


def test_the_tables_name_only_shipped_recipes():
    shipped = set(list_recipes())
    assert set(PINNED) <= shipped, f"pinned losses of recipes that are gone: {sorted(set(PINNED) - shipped)}"
    assert set(SMALL) <= shipped, f"overrides of recipes that are gone: {sorted(set(SMALL) - shipped)}"
