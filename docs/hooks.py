"""Pages the docs build writes from the code and from BENCHMARKS.md, so they cannot drift:

- ``reference/recipe-keys.md``: every key of every shipped system's recipe (type, default, allowed
  values, meaning), read from the config dataclasses: a field's meaning is the ``doc`` that
  ``multinet.config.key`` gave it (a field without one stops the build);
- ``benchmarks/<topic>.md``: BENCHMARKS.md cut at its ``##`` headings, one page per topic.

``recipe_keys()`` and ``benchmark_pages()`` are plain functions: the test suite calls them too.
"""
from __future__ import annotations

import dataclasses
import re
import sys
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _type_name(t: Any) -> tuple[str, str]:
    """(type, allowed values) of an annotation."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is typing.Literal:
        return "choice", ", ".join(f"`{a!r}`".replace("'", '"') for a in args)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        names = [_type_name(a)[0] for a in args]
        allowed = ", ".join(x for a in args for x in [_type_name(a)[1]] if x)
        return " or ".join(n.replace("NoneType", "none") for n in names), allowed
    if origin in (list, tuple, dict):
        inner = ", ".join(_type_name(a)[0] for a in args if a is not Ellipsis)
        return f"{origin.__name__}[{inner}]", ""
    return getattr(t, "__name__", str(t)), ""


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _show(v: Any) -> str:
    if isinstance(v, str):
        return f'`"{v}"`'
    if isinstance(v, bool):
        return f"`{str(v).lower()}`"
    if v is None:
        return "none"
    if dataclasses.is_dataclass(v):
        return "(table)"
    return f"`{v!r}`".replace("'", '"')


def _rows(cls: type, prefix: str, rows: list[tuple[str, str, str, str, str]]) -> None:
    """A row per field of ``cls`` (the keys of its tables after it), its meaning the field's ``doc``."""
    from multinet.config import key_meaning
    from multinet.nets import NetConfig
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name.startswith("_"):
            continue
        t, key, meaning = hints[f.name], f"{prefix}{f.name}", key_meaning(cls, f.name)
        value = _default(f)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        item = typing.get_args(t)[0] if typing.get_origin(t) is list and typing.get_args(t) else None
        if t is NetConfig and cls is not NetConfig:  # every network's table has the same keys: listed once
            rows.append((key, "table", "", "", f"{meaning} A `NetConfig`: the keys of "
                                               "[networks.&lt;name&gt;](#networks) below."))
        elif dataclasses.is_dataclass(t) and isinstance(t, type):
            rows.append((key, "table", "", "", meaning))
            _rows(t, key + ".", rows)
        elif item is not None and dataclasses.is_dataclass(item):
            rows.append((key, f"list of tables ([[{key}]])", _show(value), "", meaning))
            _rows(item, f"{key}[].", rows)
        else:
            name, allowed = _type_name(t)
            rows.append((key, name, "(required)" if required else _show(value), allowed, meaning))


def shipped_configs() -> dict[str, type]:
    from multinet.autoencoder import AeRecipe
    from multinet.gan import GanRecipe
    return {"gan": GanRecipe, "autoencoder": AeRecipe}


def recipe_keys() -> str:
    """The recipe-keys reference page (Markdown)."""
    from multinet.config import list_recipes
    parts = ["# Recipe keys\n",
             "Every key a recipe of a shipped system takes, generated from the config dataclasses when the "
             "site is built: type, default, allowed values and meaning. A recipe (TOML) sets any of them; "
             "on the command line `key=value` does (`networks.generator.lr=1e-4`). Range checks run when a "
             "config is built and stop with one line naming the key. `[networks.<name>]` tables are "
             "`multinet.NetConfig`; your own system's config extends `multinet.RunConfig`.\n"]
    from multinet.nets import NetConfig
    tables = {f"{system}": (cls, f"`python -m multinet.{system} RECIPE key=value ...` (recipes: "
                                 f"{', '.join(f'`{r}`' for r in list_recipes(system))})")
              for system, cls in shipped_configs().items()}
    tables["networks"] = (NetConfig, "Every `[networks.<name>]` table (`generator`, `discriminator`; `encoder`, "
                                     "`decoder`; your system's own names): `multinet.NetConfig`. A shipped recipe "
                                     "sets its own values; these are the dataclass defaults.")
    for title, (cls, intro) in tables.items():
        rows: list[tuple[str, str, str, str, str]] = []
        _rows(cls, "networks.<name>." if cls is NetConfig else "", rows)
        parts.append(f"## {title}\n\n{intro}\n")
        parts.append("| key | type | default | allowed | meaning |\n|---|---|---|---|---|")
        for key, t, d, allowed, meaning in rows:
            cell = meaning.replace("|", "\\|")
            anchor = key_anchor(title, key)  # each key linkable: its own id, the key a link to itself
            parts.append(f'| <span id="{anchor}"></span>[`{key}`](#{anchor}) | {t} | {d.replace("|", "/")} | '
                         f"{allowed} | {cell} |")
        parts.append("")
    return "\n".join(parts)


def key_anchor(table: str, key: str) -> str:
    """The id of a key's row: its table and key (``gan-train.steps``), ``<name>`` as ``name``."""
    return f"{table}-{key}".replace("<", "").replace(">", "").replace("[]", "")


def key_rows() -> list[tuple[str, str]]:
    """(key, meaning) of every row of the page, for the test that none lacks a meaning."""
    return [(m.group(1), m.group(2))
            for m in re.finditer(r"^\| <span id=\"[^\"]+\"></span>\[`([^`]+)`\]\(#[^)]+\) \|.*\| ([^|]*) \|$",
                                 recipe_keys(), re.M)]


def benchmark_pages() -> dict[str, str]:
    """``{file name: Markdown}``: BENCHMARKS.md cut at its ``##`` headings, and an index page."""
    text = (ROOT / "BENCHMARKS.md").read_text()
    head, *sections = re.split(r"(?m)^## ", text)
    pages, links = {}, []
    for s in sections:
        title = s.splitlines()[0].strip()
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60]
        pages[f"{slug}.md"] = f"# {title}\n" + s[len(s.splitlines()[0]):]
        links.append(f"- [{title}]({slug}.md)")
    intro = head.replace("# Benchmarks", "").strip()
    pages["index.md"] = "# Benchmarks\n\n" + intro + "\n\nBy topic:\n\n" + "\n".join(links) + "\n"
    return pages


# -- mkdocs hooks ---------------------------------------------------------------------------------
def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File
    files.append(File.generated(config, "reference/recipe-keys.md", content=recipe_keys()))
    for name, content in benchmark_pages().items():
        # The tables link back to files of the repository; on the site they are plain text.
        content = re.sub(r"\]\((?!https?:)([^)#]+\.(?:md|py|json|sh|jsonl))\)", r"](#) `\1`", content) \
            if name != "index.md" else content
        files.append(File.generated(config, f"benchmarks/{name}", content=content))
    return files
