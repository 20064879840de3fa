"""The docs' code runs as written: the tutorial's file and script blocks, then its commands; the
engine and own-system guides' blocks, in order, in one namespace."""
import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from .cli_run import run

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```(python|bash)([^\n]*)\n(.*?)```", re.S)


def _blocks(page):
    return [(kind, info.strip(), code) for kind, info, code in BLOCK.findall((DOCS / page).read_text())]


def test_the_tutorial_runs_as_written(tmp_path, monkeypatch, capsys):
    blocks = _blocks("tutorial.md")
    module = "\n\n".join(code for kind, info, code in blocks if 'title="my_system.py"' in info)
    (tmp_path / "my_system.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("my_system", None)
    ns: dict = {"__name__": "tutorial"}
    for kind, info, code in blocks:
        if kind == "python" and not info:
            exec(compile(code, str(DOCS / "tutorial.md"), "exec"), ns)
    assert ns["first"].step == 200 and ns["done"].step == 400 and ns["done"].code == 0
    assert 0 <= ns["done"].summary["bler"] < 0.5  # it learned: 16 messages guessed blindly err 15/16
    commands = [code for kind, _, code in blocks if kind == "bash"]
    assert len(commands) == 1
    for line in commands[0].replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        assert words[:3] == ["python", "-m", "multinet"], line
        r = run("multinet", words[3:])
        assert r.returncode == 0, (line, r.stderr)
    assert (tmp_path / "runs/txrx/export/receiver.safetensors").exists()
    assert (tmp_path / "sweeps/txrx/sweep.csv").read_text().count("\n") == 5  # 2 configs × 2 seeds


@pytest.mark.parametrize("pages", [["guides/engine.md", "guides/own-system.md"]])
def test_the_guides_examples_run(pages, capsys):
    ns: dict = {"__name__": "__main__"}  # as a script: the own-system page's demo runs
    blocks = [code for page in pages for kind, _, code in _blocks(page) if kind == "python"]
    assert len(blocks) >= 7
    for code in blocks:
        exec(compile(code, "guide", "exec"), ns)
    out = capsys.readouterr().out
    assert "loaded 3/4 tensors (75.0%)" in out
    assert ns["engine"].iteration == 200


PACKAGES = ["config", "state", "nets", "data", "engine", "handlers", "tracking", "run", "experiments", "gan",
            "autoencoder"]


def test_the_site_builds_strict_with_every_public_name_and_recipe_key(tmp_path):
    """``mkdocs build --strict`` (a broken link or reference fails it); then the reference pages hold
    every name of every package's ``__all__`` and the recipe-keys page every key of every shipped recipe."""
    import importlib
    import inspect
    import subprocess

    from multinet.autoencoder import AeRecipe
    from multinet.config import flatten, to_dict
    from multinet.gan import GanRecipe
    pytest.importorskip("mkdocstrings")
    root = DOCS.parent
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")], cwd=root,
                       capture_output=True, text=True, timeout=300, env={**__import__("os").environ,
                                                                          "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    missing = []
    for pkg in PACKAGES:
        html = (tmp_path / "site" / "reference" / "api" / pkg / "index.html").read_text()
        mod = importlib.import_module(f"multinet.{pkg}")
        names = [n for n in mod.__all__ if not inspect.ismodule(getattr(mod, n))]  # a submodule has its own
        missing += [f"multinet.{pkg}.{n}" for n in names if f'id="multinet.{pkg}.{n}"' not in html]
        shown = set(re.findall(rf'id="multinet\.{pkg}\.([A-Za-z_][A-Za-z0-9_]*)"', html))
        missing += [f"multinet.{pkg}.{n} (shown, not in __all__)" for n in sorted(shown - set(mod.__all__))]
    assert not missing, missing  # each package's reference lists exactly its __all__
    keys = (tmp_path / "site" / "reference" / "recipe-keys" / "index.html").read_text()
    for cfg in (GanRecipe(), AeRecipe()):
        flat = flatten(to_dict(cfg))
        for key in flat:
            shown = re.sub(r"^networks\.\w+\.", "networks.&lt;name&gt;.", key)
            shown = re.sub(r"^phases\.\d+\.", "phases[].", shown)
            assert f"<code>{shown}</code>" in keys or f"<code>{key.split('.')[0]}</code>" in keys, key
    sys.path.insert(0, str(DOCS))
    try:
        import hooks
        rows = hooks.key_rows()
        assert all(meaning.strip() for _, meaning in rows)  # every key says what it means
    finally:
        sys.path.remove(str(DOCS))
    # Each key linkable (an id per row, the key a link to it) and on one line (a browser showed
    # "train.chec / kpoint_eve / ry" in a narrow column): the site's stylesheet keeps it whole.
    ids = re.findall(r'<span id="([^"]+)"></span><a href="#([^"]+)"><code>', keys)
    assert len(ids) == len(rows) == len({i for i, _ in ids}) and all(i == h for i, h in ids)
    css = (tmp_path / "site" / "stylesheets" / "extra.css").read_text()
    assert re.search(r"td:first-child code\s*{\s*white-space:\s*nowrap", css)
    assert "stylesheets/extra.css" in keys
    # No link to a repository that is not this project's.
    assert not [p for p in (tmp_path / "site").rglob("*.html") if "github.com/multinet" in p.read_text()]


def test_every_public_class_and_function_has_a_docstring():
    """The reference is generated from docstrings: a public name without one would be an empty entry
    (a dataclass's generated ``Name(field=...)`` text counts as none)."""
    import importlib
    import inspect
    bare = []
    for pkg in PACKAGES:
        mod = importlib.import_module(f"multinet.{pkg}")
        for n in mod.__all__:
            o = getattr(mod, n)
            if inspect.isclass(o) or inspect.isfunction(o):
                doc = (o.__doc__ or "").strip()
                if not doc or doc.startswith(f"{o.__name__}("):
                    bare.append(f"multinet.{pkg}.{n}")
    assert not bare, bare


def test_every_multinet_name_the_docs_and_readme_mention_imports():
    """A dotted ``multinet.x.y`` name in a guide, the tutorial, the reference pages or the README is
    a module, or a name in one, that exists now (a path that moved or went stays in the CHANGELOG)."""
    import importlib
    pages = [*DOCS.rglob("*.md"), DOCS.parent / "README.md"]
    names = {m for p in pages for m in re.findall(r"\bmultinet(?:\.[A-Za-z_][A-Za-z0-9_]*)+", p.read_text())}
    assert len(names) > 10
    broken = []
    for name in sorted(names):
        parts = name.split(".")
        for i in range(len(parts), 0, -1):  # the longest prefix that imports, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ModuleNotFoundError:
                continue
            try:
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                broken.append(name)
            break
        else:
            broken.append(name)
    assert not broken, broken


def test_the_own_system_pages_class_trains_from_the_command_line_as_written(tmp_path):
    """A newcomer's path: the page's block saved as a module, named on the command line (its demo
    does not run on import)."""
    from .cli_run import spawn
    block = next(code for kind, _, code in _blocks("guides/own-system.md") if kind == "python" and "class RingGan" in code)
    (tmp_path / "mysys.py").write_text(block)
    r = spawn("multinet", ["train", "mysys:RingGan", "--steps", "20", "--no-progress", "--out", str(tmp_path / "r")],
              cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "step limit at step 150" not in r.stdout + r.stderr  # the demo stayed out of the import
    assert json.loads(r.stdout.splitlines()[-1])["steps"] == 20
