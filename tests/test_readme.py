"""The README's example runs as written, and its top holds exactly the two commands."""
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1
    ns: dict = {"__name__": "readme"}
    exec(compile(blocks[0], str(README), "exec"), ns)
    assert capsys.readouterr().out.splitlines()[-1] == "0 300"
    assert 150 <= len(README.read_text().splitlines()) <= 250


def test_readme_top_has_exactly_two_commands():
    text = README.read_text()
    top = text[: text.index("## ")]
    cmds = re.findall(r"```bash\n(.*?)```", top, flags=re.S)
    assert [c.strip() for c in cmds] == ['pip install . && python -m multinet.gan',
                                         'pip install ".[test]" && python -m pytest -n 2']
    assert 'pip install ".[test]" && python -m pytest -n 2' in (README.parent / ".ci" / "run").read_text()


def test_every_package_is_installed():
    """A subpackage missing from pyproject's list installs a multinet that cannot import."""
    import tomllib
    listed = set(tomllib.loads((README.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(README.parent).parts) for p in (README.parent / "multinet").rglob("__init__.py")}
    assert found <= listed, found - listed
