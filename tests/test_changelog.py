"""The CHANGELOG's release entry: one entry for the version the package says it is, and a
migration table whose every line is true when followed (each 1.0 name imports, each 0.1 name is
gone, and no 1.0 name is moved again by the same table)."""
import importlib
import re
import tomllib
from pathlib import Path

import multinet

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "CHANGELOG.md").read_text()
NAME = re.compile(r"`(multinet(?:\.\w+)+)")


def resolves(name: str, home: bool = False) -> bool:
    """Whether a dotted ``multinet...`` name is a module or an attribute of one; with ``home``, only
    where it is defined or exported (not a name its module merely imports for its own use)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            if not hasattr(obj, part):
                return False
            owner, obj = obj, getattr(obj, part)
            if home and isinstance(owner, type(importlib)) and part not in getattr(owner, "__all__", ()) \
                    and getattr(obj, "__module__", owner.__name__) != owner.__name__:
                return False
        return True
    return False


def table() -> list[tuple[str, str]]:
    section = TEXT.split("### Migrating from 0.1", 1)[1].split("\n### ", 1)[0]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    return [(old.strip(), new.strip()) for old, new in rows[1:]]  # rows[0] is the header


def test_one_entry_for_the_packages_version():
    releases = re.findall(r"(?m)^## (.+)$", TEXT)
    assert releases[0].startswith(f"{multinet.__version__} "), releases[0]
    assert not [r for r in releases if "Unreleased" in r or r.startswith(multinet.__version__ + " ")][1:], releases
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["dynamic"] == ["version"] and "version" not in project["project"]  # one home: __version__
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "multinet.__version__"}


def test_every_line_of_the_migration_table_is_true_when_followed():
    rows = table()
    assert len(rows) > 30, rows
    new = {n for _, w in rows for n in NAME.findall(w)}
    assert not [n for n in sorted(new) if not resolves(n)], "1.0 names that do not import"
    # A row names a 0.1 name on its right too when only its signature changed (build_pair).
    gone = {n for o, w in rows for n in set(NAME.findall(o)) - set(NAME.findall(w))}
    assert not [n for n in sorted(gone) if resolves(n, home=True)], "0.1 names that still have a home"
    assert not gone & new, "a 1.0 name the same table moves again"


def test_every_name_the_changelog_mentions_imports_or_is_a_migrated_one():
    old = {n for o, _ in table() for n in NAME.findall(o)}
    stale = sorted({n for n in NAME.findall(TEXT) if n not in old and not resolves(n)})
    assert not stale, f"names that neither import nor appear in the migration table: {stale}"
