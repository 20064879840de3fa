"""Each config field carries its meaning (``key``), and the recipe-keys page shows it whole: every key
of every shipped table says what it means, in its own words, not cut, and a choice lists its values."""
from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest

from multinet.config import key, key_meaning
from multinet.nets import NetConfig
from multinet.nets.schedules import SCHEDULES

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def hooks(monkeypatch):
    import importlib
    monkeypatch.syspath_prepend(str(DOCS))
    return importlib.import_module("hooks")


@dataclasses.dataclass
class _Example:
    name: str = key(doc="Required.")
    steps: int = key(3, "Steps.")
    milestones: list[int] = key(factory=list, doc="Milestones.")
    hidden: int = key(1, "Hidden.", repr=False, metadata={"unit": "px"})
    plain: int = 0


def test_key_is_a_dataclass_field_with_its_meaning():
    a, b = _Example("a"), _Example(name="b")
    assert (a.steps, a.milestones) == (3, []) and a.milestones is not b.milestones
    with pytest.raises(TypeError):
        _Example()  # no default: required
    assert "hidden" not in repr(a)
    hidden = {f.name: f for f in dataclasses.fields(_Example)}["hidden"]
    assert dict(hidden.metadata) == {"unit": "px", "doc": "Hidden."}
    assert typing.get_type_hints(_Example)["milestones"] == list[int]  # string annotations resolve
    assert key_meaning(_Example, "milestones") == key_meaning(a, "milestones") == "Milestones."
    with pytest.raises(ValueError, match=r"_Example.plain has no meaning"):
        key_meaning(_Example, "plain")
    with pytest.raises(ValueError, match=r"_Example has no field 'nothing'"):
        key_meaning(_Example, "nothing")
    with pytest.raises(TypeError, match="needs its meaning"):
        key(3)
    with pytest.raises(ValueError, match="mutable default"):  # as dataclasses.field: a list needs a factory
        @dataclasses.dataclass
        class _Bad:
            items: list[int] = key([], "Items.")


def _walk(cls: type, prefix: str = ""):
    """(key, class, field, type) of every field of ``cls`` and of its tables, as the page lists them."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        t, name = hints[f.name], prefix + f.name
        yield name, cls, f, t
        args = typing.get_args(t)
        if t is NetConfig and cls is not NetConfig:
            continue  # listed once, under networks.<name>
        if dataclasses.is_dataclass(t) and isinstance(t, type):
            yield from _walk(t, name + ".")
        elif typing.get_origin(t) is list and args and dataclasses.is_dataclass(args[0]):
            yield from _walk(args[0], name + "[].")


def _tables(hooks) -> dict[str, tuple[type, str]]:
    return {**{s: (c, "") for s, c in hooks.shipped_configs().items()}, "networks": (NetConfig, "networks.<name>.")}


def _page(hooks) -> dict[str, dict[str, list[str]]]:
    """The page's rows by section: key → [type, default, allowed, meaning]."""
    out = {}
    for section in hooks.recipe_keys().split("\n## ")[1:]:
        title, rows = section.split("\n", 1)[0], {}
        for line in section.splitlines():
            m = re.match(r"\| <span id=\"[^\"]+\"></span>\[`([^`]+)`\]\(#[^)]+\) \| (.*) \|$", line)
            if m:
                rows[m.group(1)] = m.group(2).split(" | ")
        out[title] = rows
    return out


def test_every_field_of_every_shipped_config_says_its_own_meaning(hooks):
    """A field declared without ``key`` (or with a stub) in any table a shipped recipe or a
    ``NetConfig`` reaches fails here, naming it; so does text shared with another key of its table
    or pointing at another key instead of saying what this one means."""
    bad, seen = [], set()
    for cls, prefix in _tables(hooks).values():
        for name, owner, f, _ in _walk(cls, prefix):
            try:
                doc = key_meaning(owner, f.name)
            except ValueError as e:
                bad.append(f"{name}: {e}")
                continue
            siblings = {g.name for g in dataclasses.fields(owner)}
            pointer = set(re.findall(r"\bsee `(\w+)`", doc, re.I)) & siblings
            if pointer or not re.match(r"[A-Z0-9`\"]", doc) or not doc.endswith("."):
                bad.append(f"{name}: {doc!r} is not a sentence of its own")
            seen.add(owner)
    for owner in seen:
        docs = [key_meaning(owner, f.name) for f in dataclasses.fields(owner)]
        bad += [f"{owner.__name__}: {d!r} twice" for d in set(docs) if docs.count(d) > 1]
    assert not bad, bad
    assert len(seen) >= 19  # the recipes, their tables, NetConfig and its rule tables


def test_the_page_shows_each_meaning_whole_and_each_choice(hooks):
    """Each row's meaning is its field's text, uncut; a ``Literal`` key's allowed column lists exactly
    its values, in order."""
    page, problems = _page(hooks), []
    for title, (cls, prefix) in _tables(hooks).items():
        rows = page[title]
        keys = [name for name, *_ in _walk(cls, prefix)]
        assert list(rows) == keys, title  # one row per key, in declaration order
        for name, owner, f, t in _walk(cls, prefix):
            kind, default, allowed, meaning = rows[name]
            doc = key_meaning(owner, f.name).replace("|", "\\|")
            if not (meaning == doc or t is NetConfig and meaning.startswith(doc + " A `NetConfig`")):
                problems.append(f"{title} {name}: {meaning!r} is not {doc!r}")
            values = [str(v) for v in typing.get_args(t)] if typing.get_origin(t) is typing.Literal else []
            if re.findall(r'`"([^"]*)"`', allowed) != values:
                problems.append(f"{title} {name}: allowed {allowed!r}, the type says {values}")
    assert not problems, problems
    assert [m for _, m in hooks.key_rows()] == [r[3] for rows in page.values() for r in rows.values()]


def test_the_rows_that_once_read_another_keys_text_say_their_own(hooks):
    page = _page(hooks)
    gan, ae, net = page["gan"], page["autoencoder"], page["networks"]

    def says(rows, name, *words):
        text = rows[name][3]
        assert all(w in text for w in words), (name, text)
        return text

    assert "channels_last" not in says(net, "networks.<name>.ema", "moving average", "(0 = none)")
    assert "ema" not in says(gan, "gan.reuse_fake", "reuses the last D step's fake batch")
    says(gan, "model.latent_dim", "Size of z")
    says(gan, "model.hidden", "width of the hidden layers")
    says(gan, "model.layers", "number of hidden layers")
    says(gan, "model.width", "base channel count")
    says(gan, "model.pack", "PacGAN", "data.batch_size")
    assert "model_free" not in says(ae, "link.policy_sigma", "standard deviation", "perturbations")
    name = says(net, "networks.<name>.schedule.name", "The schedule")
    assert re.findall(r"`([a-z_]+)` \(", name) == list(SCHEDULES)  # every schedule the code accepts, each explained
    says(net, "networks.<name>.schedule.interval", "`step`", "`epoch`")
    says(gan, "eval.fid_reference", "Real training examples")  # was "see `standard_metrics`"


def test_a_shipped_field_without_a_meaning_stops_the_page(hooks):
    with pytest.raises(ValueError, match="plain has no meaning"):
        hooks._rows(_Example, "", [])
