"""The package as users get it: ``python -m build`` makes an sdist and, from it, a wheel; both pass
``twine check``; the wheel installed into a fresh virtual environment (its dependencies taken from
this one) trains the README's default recipe, shortened, from a folder outside the repository. A
module or recipe file missing from the package fails here."""
import json
import shutil
import subprocess
import sys
import zipfile

import pytest

from .cli_run import ENV, ROOT

pytest.importorskip("build")
pytest.importorskip("twine")


def test_the_sdist_and_wheel_build_pass_twine_check_and_the_wheel_trains_the_default(tmp_path):
    dist = tmp_path / "dist"
    src = tmp_path / "src"  # a clean copy of what git tracks: no build leftovers, no runs
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in filter(None, files.stdout.split("\0")):
        target = src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, target)
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    sdist, wheel = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
    assert len(sdist) == 1 and len(wheel) == 1, list(dist.iterdir())
    check = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, [*sdist, *wheel])],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    names = zipfile.ZipFile(wheel[0]).namelist()
    packaged = {n for n in names if n.startswith("multinet/") and n.endswith(".py")}
    tracked = {f"multinet/{p.relative_to(ROOT / 'multinet')}" for p in (ROOT / "multinet").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert tracked <= packaged, sorted(tracked - packaged)  # every module ships
    recipes = {p.name for p in (ROOT / "recipes").glob("*.toml")}
    assert recipes == {n.rsplit("/", 1)[1] for n in names if n.startswith("multinet/_recipes/") and
                       n.endswith(".toml")}  # every recipe ships
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed",
                              str(wheel[0])],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    away = tmp_path / "elsewhere"  # not the repository: only the installed wheel can be imported
    away.mkdir()
    env = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(py), "-c", "import multinet; print(multinet.__file__)"], cwd=away, env=env,
                           capture_output=True, text=True, timeout=120)
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    r = subprocess.run([str(py), "-m", "multinet.gan", "--steps", "30", "--out", "run", "--no-progress",
                        "eval.samples=200", "eval.classifier_epochs=1", "eval.standard_metrics=false"],
                       cwd=away, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((away / "run" / "summary.json").read_text())
    assert summary["steps"] == 30 and (away / "run" / "checkpoints" / "last.pt").is_file()
