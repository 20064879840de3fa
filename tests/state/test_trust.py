"""The trust boundary: a checkpoint or an export is data, never code (multinet.state.imports).

Each attack leaves a marker file if its code runs; every test checks that it did not."""
import json
import os
import textwrap

import pytest
import torch

from multinet import Runner
from multinet.state.checkpoint import load_checkpoint, save_checkpoint
from multinet.config import load_recipe
from multinet.state.export import load_exported
from multinet.gan import GanRecipe, GanSystem
from multinet.state.imports import CodeRefused, import_class, import_function, saved_file
from multinet.run.saved import load_system

from ..cli_run import run

TINY = ["device='cpu'", "train.steps=2", "train.tensorboard=false", "eval.samples=50", "eval.classifier_epochs=1",
        "train.sample_every=0", "networks.generator.ema=0"]
FIDELITY = "torch_fidelity.feature_extractor_inceptionv3:FeatureExtractorInceptionV3"


class _Payload:
    """A pickle that creates ``marker`` when it is loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def _cli(*args):
    r = run("multinet", [str(a) for a in args])
    return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished two-step digits GAN: its checkpoint is what the attacks start from."""
    out = tmp_path_factory.mktemp("trust") / "run"
    assert Runner(GanSystem, load_recipe(GanRecipe, "gan_digits", TINY), out, progress=False, echo=False).fit().code == 0
    return out / "checkpoints" / "last.pt"


def _crafted(trained, tmp_path, change):
    """The trained checkpoint with ``change(ckpt)`` applied and its checksum recomputed (a checksum
    is not a signature: anyone can write a consistent file)."""
    ckpt = load_checkpoint(trained)
    ckpt.pop("format")
    change(ckpt)
    path = tmp_path / "crafted" / "checkpoints" / "last.pt"
    save_checkpoint(ckpt, path)
    return path


def _commands(ckpt, tmp_path, *extra):
    return {"resume": ["train", "gan", "--resume", ckpt, "--steps", "4", "--out", tmp_path / "resumed", *extra],
            "evaluate": ["evaluate", ckpt, *extra],
            "sample": ["sample", ckpt, "--n", "2", "--out", tmp_path / "s.npy", *extra],
            "export": ["export", ckpt, "--out", tmp_path / "exported", *extra]}


def test_a_checkpoint_naming_a_constructor_that_loads_a_pickle_runs_nothing(trained, tmp_path):
    marker = tmp_path / "ran"
    torch.save({"x": _Payload(marker)}, tmp_path / "payload.pth")

    def attack(ckpt):
        ckpt["config"]["networks"]["generator"].update(class_path=FIDELITY, init_args={
            "name": "x", "features_list": ["2048"], "feature_extractor_weights_path": str(tmp_path / "payload.pth")})
    path = _crafted(trained, tmp_path, attack)
    for name, args in _commands(path, tmp_path).items():
        code, out, err = _cli(*args)
        assert code == 2 and err.count("\n") == 1, (name, err)
        assert "names code outside multinet" in err and "--trust-code" in err, (name, err)
        assert not marker.exists(), name
    with pytest.raises(CodeRefused):
        load_system(path)
    with pytest.raises(CodeRefused):
        Runner(GanSystem, out=tmp_path / "crafted", resume=True, progress=False, echo=False).fit()
    assert not marker.exists()


def test_a_module_named_by_a_saved_file_is_not_even_imported_unless_trusted(trained, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "evil_nets.py").write_text(textwrap.dedent(f"""
        import os
        os.makedirs({str(marker)!r})
        from multinet.gan.system import GanSystem as Sys
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    path = _crafted(trained, tmp_path, lambda c: c["meta"].update(system="evil_nets:Sys"))
    code, _, err = _cli("evaluate", path)
    assert code == 2 and "--system evil_nets:Sys" in err and not marker.exists()
    code, out, err = _cli("evaluate", path, "--system", "gan")  # the user names the system now
    assert code == 0, err
    assert not marker.exists()
    code, out, err = _cli("evaluate", path, "--trust-code")  # or says they trust the file
    assert code == 0, err
    assert marker.exists()


def test_an_export_naming_code_outside_multinet_is_refused(trained, tmp_path):
    marker = tmp_path / "ran"
    torch.save({"x": _Payload(marker)}, tmp_path / "payload.pth")
    assert _cli("export", trained, "--out", tmp_path / "x")[0] == 0
    spec = json.loads((tmp_path / "x/generator.json").read_text())
    spec.update(class_path=FIDELITY, init_args={"name": "x", "features_list": ["2048"],
                                                "feature_extractor_weights_path": str(tmp_path / "payload.pth")})
    (tmp_path / "x/generator.json").write_text(json.dumps(spec))
    with pytest.raises(CodeRefused, match="names code outside multinet"):
        load_exported(tmp_path / "x/generator.json")
    code, _, err = _cli("sample", tmp_path / "x/generator.json", "--n", "2", "--out", tmp_path / "s.npy")
    assert code == 2 and err.count("\n") == 1 and "names code outside multinet" in err
    assert not marker.exists()


def test_the_user_named_network_of_a_saved_run_needs_trust_or_naming(tmp_path):
    cfg = load_recipe(GanRecipe, "gan_digits", [*TINY, "model.latent_dim=32",
                                                "networks.generator.class_path='tests.nets_zoo:TinyGenerator'",
                                                "networks.generator.init_args={latent=32, hidden=16}"])
    assert Runner(GanSystem, cfg, tmp_path / "g", progress=False, echo=False).fit().code == 0
    ckpt = tmp_path / "g/checkpoints/last.pt"
    for args in _commands(ckpt, tmp_path).values():
        code, _, err = _cli(*args)
        assert code == 2 and "'tests.nets_zoo:TinyGenerator'" in err and "--trust-code" in err, err
    code, _, err = _cli("export", ckpt, "--out", tmp_path / "gx", "--trust-code")
    assert code == 0, err
    with pytest.raises(CodeRefused):
        load_exported(tmp_path / "gx/generator.json")
    assert type(load_exported(tmp_path / "gx/generator.json", trust_code=True)).__name__ == "TinyGenerator"
    code, _, err = _cli("train", "gan", "--resume", ckpt, "--steps", "3", "--trust-code", "--no-progress")
    assert code == 0, err


@pytest.mark.parametrize("path", ["subprocess:run", "os:popen", "ctypes:string_at", "shutil.rmtree",
                                  "multinet.run.runner:os.popen", "builtins:eval", "socket:create_connection"])
def test_process_file_network_and_ctypes_functions_are_refused_even_when_trusted(path, tmp_path):
    for trust in (False, True):
        with saved_file("a saved file", [path], trust_code=trust), pytest.raises(CodeRefused, match="refused"):
            import_function(path, "schedule.fn")
    with pytest.raises(CodeRefused):
        import_class(path, torch.nn.Module)
    code, _, err = _cli("train", "gan", *TINY, "--out", tmp_path / "r",
                        f"networks.generator.schedule={{name='lambda', fn='{path}'}}")
    assert code == 2 and err.count("\n") == 1 and "refused" in err, err
    assert not (tmp_path / "r").exists()


def test_a_schedule_function_stored_in_a_checkpoint_is_called_only_when_trusted(tmp_path):
    fn = "tests.nets.test_optim_sched:_factor_of"
    code, _, err = _cli("train", "gan", *TINY, "--out", tmp_path / "r", "--no-progress",
                        f"networks.generator.schedule={{name='lambda', fn='{fn}'}}")
    assert code == 0, err  # named in the command line now: honoured
    code, _, err = _cli("train", "gan", "--resume", "--out", tmp_path / "r", "--steps", "3", "--no-progress")
    assert code == 2 and f"{fn!r}" in err and "--trust-code" in err, err
    code, _, err = _cli("train", "gan", "--resume", "--out", tmp_path / "r", "--steps", "3", "--no-progress",
                        "--trust-code")
    assert code == 0, err


def test_a_checkpoint_without_its_checksum_is_refused_unless_the_user_says_so(trained, tmp_path):
    ckpt = load_checkpoint(trained)
    ckpt.pop("checksum", None)
    weights = ckpt["networks"]["generator"]["module"]
    key = next(k for k in weights if k.endswith("weight"))
    weights[key].mul_(0)  # altered weights, checksum key removed
    path = tmp_path / "nosum" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    torch.save(ckpt, path)
    for name, args in _commands(path, tmp_path).items():
        code, _, err = _cli(*args)
        assert code == 2 and err.count("\n") == 1 and "has no checksum" in err, (name, err)
    with pytest.raises(ValueError, match="has no checksum"):
        load_system(path)
    with pytest.raises(ValueError, match="has no checksum"):
        Runner(GanSystem, out=tmp_path / "nosum", resume=True)
    code, out, err = _cli("evaluate", path, "--allow-no-checksum")
    assert code == 0, err
    system, _ = load_system(path, allow_no_checksum=True)
    assert system.nets["generator"].module.state_dict()[key].abs().sum() == 0


def test_the_inception_extractor_never_unpickles_code(tmp_path):
    from multinet.gan.fidelity import InceptionFeatures
    marker = tmp_path / "ran"
    torch.save({"x": _Payload(marker)}, tmp_path / "weights.pth")
    with pytest.raises(ValueError, match="holds code"):
        InceptionFeatures(tmp_path / "weights.pth")
    assert not marker.exists()


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    assert _cli("export", trained, "--out", folder)[0] == 0
    return folder / "generator.json"


def _variant(exported, tmp_path, spec_change=None, weights=None):
    """A copy of the export with its JSON changed and / or its weights replaced."""
    spec = json.loads(exported.read_text())
    target = tmp_path / spec["weights"]
    if weights is None:
        target.write_bytes(exported.with_name(spec["weights"]).read_bytes())
    else:
        weights(target)
    spec.update(spec_change or {})
    (tmp_path / "generator.json").write_text(json.dumps(spec))
    return tmp_path / "generator.json"


def _sample_export(spec, tmp_path):
    return _cli("sample", spec, "--n", "2", "--out", tmp_path / "s.npy")


def test_export_weights_that_are_not_a_regular_file_of_the_headers_size_are_refused(exported, tmp_path):
    original = exported.with_name("generator.safetensors").read_bytes()
    cases = {"a device": (lambda t: t.symlink_to("/dev/zero"), "not a regular file"),
             "padded": (lambda t: t.write_bytes(original + b"\0" * 64), "but its header describes"),
             "truncated": (lambda t: t.write_bytes(original[:-64]), "but its header describes"),
             "not safetensors": (lambda t: t.write_bytes(b"\xff" * 64), "not a safetensors file")}
    for name, (make, msg) in cases.items():
        folder = tmp_path / name.replace(" ", "_")
        folder.mkdir()
        spec = _variant(exported, folder, weights=make)
        with pytest.raises(ValueError, match=msg):
            load_exported(spec)
        code, _, err = _sample_export(spec, folder)
        assert code == 2 and err.count("\n") == 1 and msg in err, (name, err)
    (tmp_path / "json_device").mkdir()
    (tmp_path / "json_device/generator.json").symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="not a regular file"):
        load_exported(tmp_path / "json_device/generator.json")


@pytest.mark.parametrize("drop", ["weights", "class_path", "init_args", "sha256", "meta"])
def test_an_export_missing_a_key_is_one_line(exported, tmp_path, drop):
    spec = json.loads(exported.read_text())
    spec.pop(drop)
    (tmp_path / "generator.json").write_text(json.dumps(spec))
    (tmp_path / "generator.safetensors").write_bytes(exported.with_name("generator.safetensors").read_bytes())
    with pytest.raises(ValueError, match=f"broken export: '{drop}' is missing"):
        load_exported(tmp_path / "generator.json")
    code, _, err = _sample_export(tmp_path / "generator.json", tmp_path)
    assert code == 2 and err.count("\n") == 1 and f"'{drop}' is missing" in err, err


def test_huge_export_sizes_are_refused_before_anything_is_allocated(exported, tmp_path):
    init = json.loads(exported.read_text())["init_args"]
    key = next(k for k, v in init.items() if isinstance(v, int) and not isinstance(v, bool) and v > 1)
    spec = _variant(exported, tmp_path, {"init_args": {**init, key: 10 ** 11}})
    with pytest.raises(ValueError, match="do not fit"):
        load_exported(spec)  # built on the meta device: 10^11 costs nothing
    meta = json.loads(exported.read_text())["meta"]
    for change, msg in [({"latent_dim": 10 ** 12}, "meta.latent_dim must be an integer from 1 to 65536"),
                        ({"classes": -3}, "meta.classes must be an integer from 0"),
                        ({"classes": 10 ** 11}, "meta.classes must be an integer from 0")]:
        spec = _variant(exported, tmp_path, {"meta": {**meta, **change}})
        code, _, err = _sample_export(spec, tmp_path)
        assert code == 2 and err.count("\n") == 1 and msg in err, err


def test_a_saved_run_never_downloads_data_unless_asked_now(trained, tmp_path):
    def attack(ckpt):
        ckpt["config"]["data"].update(name="mnist", root=str(tmp_path / "where"), download=True)
    path = _crafted(trained, tmp_path, attack)
    for name in ("evaluate", "resume"):  # a resume too: the file's download=true is not read
        code, _, err = _cli(*_commands(path, tmp_path)[name])
        assert code == 2 and "dataset mnist not found under" in err and "data.download=true" in err, (name, err)
        assert not (tmp_path / "where").exists()
