"""Attacks on the trust boundary and the input checks: crafted checkpoints and exports that try to
run code, and bad command-line input that must end in one line.

    python benchmarks/attacks.py

The surfaces added since (studies and sweep folders, tracking addresses, imports of the wrong
role, bad run folders, counters and timers, sizes) are attacked by ``attack_surfaces.py``, whose
groups this script runs after its own.

Each payload, if it ran, creates a marker folder. Each command on a crafted file is "refused" (it
exits non-zero with one line on stderr), "safe" (it succeeds without needing what the file names:
``evaluate`` builds no optimizer, so a schedule function is never imported; ``train gan --resume``
names the system itself) or "unexpected"; the marker must never exist. Each bad input must exit 2 with one
line within 60 s and leave no run folder. Prints one JSON line per group and one of totals.
Runs the command line in this process (``multinet.cli.main``), one call per attack.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
FIDELITY = "torch_fidelity.feature_extractor_inceptionv3:FeatureExtractorInceptionV3"
VGG = "torch_fidelity.feature_extractor_vgg16:FeatureExtractorVGG16"
TINY = ["--device", "cpu", "--no-progress", "train.tensorboard=false", "train.sample_every=0", "eval.samples=50",
        "eval.classifier_epochs=1", "networks.generator.ema=0"]


class Payload:
    """Unpickled, it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def cli(*args: object) -> tuple[int, str]:
    from multinet.cli import main
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, err.getvalue()


def one_line_refusal(code: int, err: str) -> bool:
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning:")]
    return code != 0 and len(lines) == 1 and "Traceback" not in err


def crafted_checkpoints(work: Path, trained: Path) -> dict:
    import torch
    from multinet.state.checkpoint import load_checkpoint, save_checkpoint
    marker, pickle_path = work / "ran", work / "payload.pth"
    torch.save({"x": Payload(marker)}, pickle_path)
    (work / "evil_mod.py").write_text(f"import os\nos.makedirs({str(marker)!r})\n"
                                      "from multinet.gan.system import GanSystem as Sys\nfrom torch.nn import Linear\n"
                                      "def f(t):\n    return 1.0\n")
    sys.path.insert(0, str(work))
    ctor = {"name": "x", "features_list": ["2048"], "feature_extractor_weights_path": str(pickle_path)}
    gen = ("networks", "generator")

    def net(**v):
        return lambda c: c["config"][gen[0]][gen[1]].update(v)

    saved_schedule = load_checkpoint(trained)["config"]["networks"]["generator"].get("schedule") or {}

    def sched(fn):
        return net(schedule={**saved_schedule, "name": "lambda", "fn": fn})
    attacks = {
        "class_path: torch-fidelity Inception with a pickle": net(class_path=FIDELITY, init_args=ctor),
        "class_path: torch-fidelity VGG16 with a pickle": net(class_path=VGG, init_args=ctor),
        "class_path: a module with import-time code": net(class_path="evil_mod:Linear", init_args={}),
        "meta.system: a module with import-time code": lambda c: c["meta"].update(system="evil_mod:Sys"),
        "eval.features: a module with import-time code": lambda c: c["config"]["eval"].update(
            features="evil_mod:Linear", standard_metrics=True),
        "schedule fn: subprocess:run": sched("subprocess:run"),
        "schedule fn: os:popen": sched("os:popen"),
        "schedule fn: ctypes:string_at": sched("ctypes:string_at"),
        "schedule fn: reached through multinet (multinet.run.runner:os.popen)": sched("multinet.run.runner:os.popen"),
        "schedule fn: a module with import-time code": sched("evil_mod:f"),
    }
    results = {}
    for name, change in attacks.items():
        ckpt = load_checkpoint(trained)
        ckpt.pop("format")
        change(ckpt)
        path = work / "c" / name.replace(" ", "_").replace(":", "").replace("/", "") / "checkpoints" / "last.pt"
        save_checkpoint(ckpt, path)  # a consistent checksum: anyone can write one
        results[name] = _four_commands(path, work)
    raw = work / "raw.pt"
    torch.save({"format": "multinet-checkpoint-1", "config": {"x": Payload(marker)}}, raw)
    results["a pickle payload as the checkpoint"] = _four_commands(raw, work)
    ckpt = load_checkpoint(trained)
    first = next(iter(ckpt["networks"]["generator"]["module"]))
    ckpt["networks"]["generator"]["module"][first].mul_(0)
    nosum = work / "nosum" / "checkpoints" / "last.pt"
    nosum.parent.mkdir(parents=True)
    torch.save(ckpt, nosum)  # altered weights, checksum key removed
    results["checksum removed, weights altered"] = _four_commands(nosum, work)
    return {"group": "crafted checkpoints", **_tally(results), "code_ran": marker.exists(), "details": results}


def _outcome(code: int, err: str) -> str:
    """"refused" (one line), "safe" (it ran and never needed what the file names: e.g. a schedule
    function when nothing is trained), or "unexpected" (a traceback, several lines)."""
    return "refused" if one_line_refusal(code, err) else ("safe" if code == 0 else "unexpected")


def _tally(results: dict) -> dict:
    outcomes = [o for r in results.values() for o in r["outcomes"].values()]
    return {"files": len(results), "commands": len(outcomes), **{k: outcomes.count(k)
                                                                 for k in ("refused", "safe", "unexpected")}}


def _four_commands(path: Path, work: Path) -> dict:
    fresh = Path(tempfile.mkdtemp(dir=work))
    runs = {"resume": cli("train", "gan", "--resume", path, "--out", fresh / "resumed", "--steps", "4", "--no-progress"),
            "evaluate": cli("evaluate", path), "sample": cli("sample", path, "--n", "2", "--out", fresh / "s.npy"),
            "export": cli("export", path, "--out", fresh / "exported")}
    return {"outcomes": {k: _outcome(*r) for k, r in runs.items()},
            "errors": sorted({r[1].strip().splitlines()[-1][:160] for r in runs.values() if r[0]})}


def crafted_exports(work: Path, trained: Path) -> dict:
    from multinet.state.export import load_exported
    marker = work / "ran"
    assert cli("export", trained, "--out", work / "x")[0] == 0
    good = json.loads((work / "x/generator.json").read_text())
    weights = (work / "x/generator.safetensors").read_bytes()
    key = next(k for k, v in good["init_args"].items() if isinstance(v, int) and not isinstance(v, bool) and v > 1)
    ctor = {"name": "x", "features_list": ["2048"], "feature_extractor_weights_path": str(work / "payload.pth")}
    variants = {
        "class_path: torch-fidelity Inception with a pickle": ({"class_path": FIDELITY, "init_args": ctor}, None),
        "class_path: a module with import-time code": ({"class_path": "evil_mod:Linear"}, None),
        "class_path: subprocess:run": ({"class_path": "subprocess:run"}, None),
        "weights: a link to /dev/zero": ({}, "zero"),
        "weights: padded": ({}, weights + b"\0" * 64),
        "weights: truncated": ({}, weights[:-64]),
        f"init_args: {key} = 10^11": ({"init_args": {**good["init_args"], key: 10 ** 11}}, None),
        "meta.latent_dim = 10^12": ({"meta": {**good["meta"], "latent_dim": 10 ** 12}}, None),
        "meta.classes = -3": ({"meta": {**good["meta"], "classes": -3}}, None),
        **{f"JSON without {k}": ({k: None}, None) for k in ("weights", "class_path", "init_args", "sha256", "meta")},
    }
    results = {}
    for i, (name, (change, data)) in enumerate(variants.items()):
        folder = work / "e" / str(i)
        folder.mkdir(parents=True)
        spec = {**good, **change}
        spec = {k: v for k, v in spec.items() if v is not None}
        (folder / "generator.json").write_text(json.dumps(spec))
        target = folder / "generator.safetensors"
        if data == "zero":
            target.symlink_to("/dev/zero")
        else:
            target.write_bytes(weights if data is None else data)
        t = time.monotonic()
        try:
            load_exported(folder / "generator.json")
            loaded = "safe"  # e.g. a bad meta: load_exported does not read it, sample does
        except ValueError as e:
            loaded = "refused" if "\n" not in str(e) else "unexpected"
        code, err = cli("sample", folder / "generator.json", "--n", "2", "--out", folder / "s.npy")
        results[name] = {"outcomes": {"load_exported": loaded, "sample": _outcome(code, err)},
                         "seconds": round(time.monotonic() - t, 2), "error": err.strip()[:160]}
    return {"group": "crafted exports", **_tally(results), "code_ran": marker.exists(), "details": results}


BAD_INPUTS = [
    ["train", "", "--steps", "3"], ["train", ".cli:main"], ["train", "gan", "eval.features='torch.nn:Linear'"],
    ["train", "gan", "networks.generator.eps=inf"], ["train", "gan", f"train.steps={10 ** 30}"],
    ["train", "gan", "train.dist_timeout=inf"], ["train", "gan", "--device", "cpu:99"], ["train", "gan", "--out", ""],
    ["train", "gan", "model.d_fourier=1000000000"], ["train", "gan", "data.name='imagefolder'", "data.root='/proc/self'"],
    ["train", "gan", "networks.discriminator.lr=nan"], ["train", "gan", "model.hidden=0"],
    ["train", "gan", "eval.fid_samples=1000000000000"], ["train", "gan", "data.batch_size=0"],
    ["train", "gan", "--device", "tpu"], ["train", "gan", "seed=-1"], ["train", "gan", "--stop-at", "-1"],
    ["train", "autoencoder", "link.k=64"], ["train", "autoencoder", "channel.eval_db=[nan]"],
    ["train", "autoencoder", "link.batch_size=10000000000000"], ["train", "autoencoder", "link.hidden=10000000"],
    ["train", "gan", "no_such_recipe"], ["train", "gan", "latent_dims=3"], ["train", "subprocess:run"],
    ["train", "gan", "networks.generator.schedule={name='lambda', fn='subprocess:run'}"],
    ["evaluate", "/nonexistent.pt"], ["export", "/dev/null", "--out", "x"],
]


def bad_inputs(work: Path) -> dict:
    results = []
    for i, args in enumerate(BAD_INPUTS):
        out = work / "bad" / str(i)
        extra = ["--out", out] if args[0] == "train" and "--out" not in args else []
        t = time.monotonic()
        code, err = cli(*args, *extra, *(["--no-progress"] if args[0] == "train" else []))
        ok = code == 2 and one_line_refusal(code, err) and time.monotonic() - t < 60 and not out.exists()
        results.append({"args": " ".join(map(str, args)), "one_line": ok, "error": err.strip()[:140]})
    return {"group": "bad inputs", "inputs": len(results), "one_line": sum(r["one_line"] for r in results),
            "details": results}


def craft(trained: Path, folder: Path, change) -> Path:
    """The trained checkpoint with ``change(ckpt)`` applied and a consistent checksum, in ``folder``."""
    from multinet.state.checkpoint import load_checkpoint, save_checkpoint
    ckpt = load_checkpoint(trained)
    ckpt.pop("format")
    change(ckpt)
    return save_checkpoint(ckpt, folder / "checkpoints" / "last.pt")


def main() -> None:
    import attack_surfaces as surfaces
    from multinet.config import load_recipe
    from multinet.gan import GanRecipe, GanSystem
    from multinet.run.runner import Runner
    work = Path(tempfile.mkdtemp(prefix="multinet-attacks-"))
    os.chdir(work)
    t0 = time.time()
    trained = work / "run" / "checkpoints" / "last.pt"
    cfg = load_recipe(GanRecipe, "gan_digits", ["device='cpu'", "train.steps=2", "train.tensorboard=false",
                                                "train.sample_every=0", "eval.samples=50", "networks.generator.ema=0",
                                                "eval.classifier_epochs=1"])
    assert Runner(GanSystem, cfg, work / "run", progress=False, echo=False).fit().code == 0
    groups = [crafted_checkpoints(work, trained), crafted_exports(work, trained), bad_inputs(work)]
    for g in groups:
        print(json.dumps(g), flush=True)
    files = groups[:2]
    total = {"crafted_files": sum(g["files"] for g in files), "commands": sum(g["commands"] for g in files),
             "refused_in_one_line": sum(g["refused"] for g in files),
             "ran_without_what_the_file_names": sum(g["safe"] for g in files),
             "unexpected": sum(g["unexpected"] for g in files), "code_ran": any(g["code_ran"] for g in files),
             "bad_inputs_one_line": f"{groups[2]['one_line']} of {groups[2]['inputs']}"}
    new = [surfaces.crafted_studies(cli, work, Payload), surfaces.tracking_addresses(cli, work, trained, craft),
           surfaces.role_imports(cli, work, trained, craft), surfaces.bad_run_folders(cli, work),
           surfaces.counters(cli, work, trained, craft), surfaces.sizes(cli, work, trained)]
    for g in new:
        print(json.dumps(g), flush=True)
    total["new_surfaces"] = {"attacks": sum(g["attacks"] for g in new), "commands": sum(g["commands"] for g in new),
                             **{k: sum(g[k] for g in new) for k in ("refused", "safe", "traceback", "hang", "memory",
                                                                     "crash", "silent", "wrote_outside")},
                             "code_ran": any(g["code_ran"] for g in new),
                             "connections": sum(g.get("connections", 0) for g in new)}
    total["wall_s"] = round(time.time() - t0, 1)
    print(json.dumps(total))
    bad = total["new_surfaces"]
    if total["code_ran"] or total["unexpected"] or groups[2]["one_line"] < groups[2]["inputs"] or bad["code_ran"] \
            or any(bad[k] for k in ("traceback", "hang", "memory", "crash", "silent", "wrote_outside",
                                    "connections")):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
