"""The README's Python examples run as written, in order, in one namespace."""
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_examples_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 7
    ns: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), ns)
    out = capsys.readouterr().out
    assert "loaded 3/4 tensors (75.0%)" in out
    assert ns["engine"].iteration == 200


def test_readme_top_has_exactly_two_commands():
    text = README.read_text()
    top = text[: text.index("## ")]
    cmds = re.findall(r"```bash\n(.*?)```", top, flags=re.S)
    assert [c.strip() for c in cmds] == ['pip install . && python -m multinet.gan',
                                         'pip install ".[test]" && python -m pytest']
    assert 'pip install ".[test]" && python -m pytest' in (README.parent / ".ci" / "run").read_text()
