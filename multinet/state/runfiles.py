"""The text files a run or a sweep leaves (``summary.json``, ``metrics.jsonl``, ``recipe.toml``,
``bler.csv``, tracker ids, lock files), read back as data.

A run folder may come from anyone (a colleague's sweep, an archive) and a file in it may be
anything: a FIFO (opening it for reading waits for a writer forever), a device (``/dev/zero``
never ends), a link to a file outside the folder, a JSON document nested 200,000 deep (the
parser's recursion overflows) or gigabytes long. Every reader of a run folder goes through this
module, which accepts a regular file only (opened without blocking; its type and size are checked
on the open descriptor, so a FIFO swapped in after a check is still refused), inside its folder
when one is named (checked on the path with every link followed, before opening), of at most
``limit`` bytes, with JSON nested at most ``MAX_DEPTH`` deep and numbers that fit a float64 or
an int64. A refusal is one ``ValueError`` line naming the file.
"""
from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from ..config import error_line

__all__ = ["read_text", "read_json", "parse_json", "regular_file", "inside", "MAX_TEXT", "MAX_METRICS", "MAX_DEPTH"]

MAX_TEXT = 16 << 20  # a summary, recipe or id is kilobytes; 16 MiB is not one of them
MAX_METRICS = 256 << 20  # metrics.jsonl: a million steps of a few hundred bytes each
MAX_DEPTH = 64  # a summary nests figures two or three deep


def inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path``, with every link followed, resolves inside ``folder``."""
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    return True


def regular_file(path: str | Path, folder: str | Path | None = None, what: str = "") -> bool:
    """Whether ``path`` exists; if it does, it must be a regular file (inside ``folder`` when
    given, links followed), else one ``ValueError`` line. Nothing is opened."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    except OSError as e:
        raise ValueError(f"{path}: unreadable{_what(what)}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path}: {_kind(st.st_mode)}, not a regular file{_what(what)}; refused")
    if folder is not None and not inside(path, folder):
        raise ValueError(f"{path}: links outside {folder}{_what(what)}; refused")
    return True


def read_text(path: str | Path, folder: str | Path | None = None, limit: int = MAX_TEXT, what: str = "") -> str:
    """The UTF-8 text of the regular file ``path`` (inside ``folder`` when given), at most ``limit``
    bytes. A FIFO is opened without blocking and refused on its descriptor."""
    path = Path(path)
    if folder is not None and not inside(path, folder):
        raise ValueError(f"{path}: links outside {folder}{_what(what)}; refused")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file{_what(what)}") from None
    except OSError as e:
        raise ValueError(f"{path}: unreadable{_what(what)}: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path}: {_kind(st.st_mode)}, not a regular file{_what(what)}; refused")
        if st.st_size > limit:
            raise ValueError(f"{path}: {st.st_size:,} bytes, over the {limit:,} a run's file may hold{_what(what)}; "
                             "refused")
        data = f.read(limit + 1)
    if len(data) > limit:  # grew while it was read
        raise ValueError(f"{path}: over the {limit:,} bytes a run's file may hold{_what(what)}; refused")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text{_what(what)}") from None


def read_json(path: str | Path, folder: str | Path | None = None, kind: type = dict, limit: int = MAX_TEXT,
              what: str = "") -> Any:
    """The JSON document in ``path`` (``read_text``'s rules), which must be a ``kind`` nested at most
    ``MAX_DEPTH`` deep."""
    text = read_text(path, folder, limit, what)
    value = parse_json(text, f"{path}")
    if not isinstance(value, kind):
        raise ValueError(f"{path}: expected JSON {_json_name(kind)}, got {_json_name(type(value))}{_what(what)}")
    return value


def parse_json(text: str, source: str) -> Any:
    """``text`` as JSON nested at most ``MAX_DEPTH`` deep; one ``ValueError`` line naming ``source``."""
    try:
        value = json.loads(text, parse_int=_whole, parse_float=_real, parse_constant=_constant)
    except (ValueError, RecursionError) as e:  # RecursionError: nested deeper than the parser goes
        raise ValueError(f"{source}: not valid JSON ({error_line(e, 120)})") from None
    level, depth = [value], 0
    while level:  # breadth first, so that what reads it later (flatten) cannot recurse too deep
        depth += 1
        if depth > MAX_DEPTH:
            raise ValueError(f"{source}: JSON nested over {MAX_DEPTH} deep; refused")
        level = [x for v in level for x in (v.values() if isinstance(v, dict) else v if isinstance(v, list) else ())]
    return value


def _whole(text: str) -> int:
    if len(text.lstrip("-")) > 19 or abs(value := int(text)) >= 1 << 63:  # what a float64 or an int64 holds
        raise ValueError(f"the number {text[:24]}{'...' if len(text) > 24 else ''} is out of range")
    return value


def _real(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: a run writes a non-finite figure as null, never as a number
        raise ValueError(f"the number {text[:24]} is out of range")
    return value


def _constant(text: str) -> float:
    raise ValueError(f"{text} is not a number JSON knows (a run writes non-finite figures as null)")


def _json_name(kind: type) -> str:
    return {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
            bool: "a boolean", type(None): "null"}.get(kind, f"a {kind.__name__}")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a plain file"


def _what(what: str) -> str:
    return f" ({what})" if what else ""
