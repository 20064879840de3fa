"""Objects named by import path (``"my_pkg.nets:Generator"``), and the trust boundary around them.

The boundary, in one place:

- **A saved file is data.** A checkpoint is read with ``torch.load(weights_only=True)`` and an
  export's weights are safetensors; neither format can hold code. But a saved *config* (the one in
  a checkpoint, or an export's ``class_path``) may name classes and functions, and rebuilding from
  it would import and call them. So while a system is rebuilt from a saved file (``--resume``,
  ``evaluate``, ``sample``, ``export``, ``load_exported``), the only import paths honoured are
  multinet's own and those the user names now (a recipe, a ``key=value`` override, ``--system``).
  Anything else the file names is refused in one line *before its module is imported* (import-time
  code never runs), unless the user passes ``--trust-code`` (``trust_code=True``): the way model
  hubs gate remote code. The check is a context (``saved_file``), like
  ``torch.serialization.safe_globals``: every import made through this module while a saved file is
  being rebuilt is checked, whichever config key asked for it.
- **Some modules are never a network, a system or a schedule**, trusted or not: the standard
  library's process, file-system, network and ``ctypes`` modules (``REFUSED``). A path into them,
  or to an object defined in them (``"my_pkg:run"`` where ``my_pkg`` did ``from subprocess import
  run``), is refused before anything is called.
- Beyond that, the object must be what its key promises (a subclass of the expected base, or a
  function written in Python), checked before it is called. From a saved file, multinet's own
  objects are held to the key's *role* too (``role``): a schedule's ``fn`` must be a function
  registered as a schedule, a feature network a ``FeatureNet``, so that ``fn = "multinet.cli:main"``
  is refused although it lives in multinet. Named now (a recipe, an override) or trusted, any
  object of the right kind is accepted: writing a class or function into a recipe, or trusting a
  file, runs that code, as Hydra's ``_target_`` does; the ``REFUSED`` list still holds then.
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from ..config.fields import failure_line, migration_hint

__all__ = ["import_object", "import_class", "import_function", "object_path", "saved_file", "CodeRefused",
           "REFUSED", "TRUST_HINT"]

# Top-level modules whose objects are never what a config names: processes and the interpreter,
# files, the network, raw memory. Checked on the path's module and on the object's own module.
REFUSED = frozenset({
    # processes, the interpreter, code loading
    "os", "posix", "nt", "subprocess", "_posixsubprocess", "pty", "multiprocessing", "concurrent", "signal",
    "sys", "builtins", "importlib", "runpy", "code", "codeop", "pdb", "platform", "webbrowser", "threading",
    "_thread", "atexit", "gc", "inspect", "marshal", "pickle", "_pickle", "shelve", "dbm", "cloudpickle", "dill",
    # files
    "io", "_io", "pathlib", "shutil", "tempfile", "glob", "fileinput", "posixpath", "ntpath", "genericpath",
    "zipfile", "tarfile", "mmap", "sqlite3", "_sqlite3",
    # the network
    "socket", "_socket", "ssl", "_ssl", "select", "selectors", "asyncio", "http", "urllib", "ftplib", "smtplib",
    "poplib", "imaplib", "telnetlib", "socketserver", "xmlrpc", "requests", "urllib3", "httpx",
    # raw memory and foreign functions
    "ctypes", "_ctypes", "cffi",
})

# What a refusal tells the user to do.
TRUST_HINT = "pass --trust-code (trust_code=True) only if you trust who made it"


class CodeRefused(ValueError):
    """An import path refused by the trust boundary (one line, like every config error)."""


@dataclass(frozen=True)
class _SavedFile:
    source: str
    named_now: frozenset[str]


_SAVED: contextvars.ContextVar[_SavedFile | None] = contextvars.ContextVar("multinet_saved_file", default=None)


def _canonical(path: str) -> str:
    return path.strip().replace(":", ".")


@contextlib.contextmanager
def saved_file(source: Any, named_now: Iterable[Any] = (), trust_code: bool = False) -> Iterator[None]:
    """Inside this block, objects are being rebuilt from the saved file ``source``: import paths
    outside multinet are honoured only when named now (``named_now``: values the user gave now;
    non-strings are ignored) or with ``trust_code``."""
    if trust_code:
        yield
        return
    names = frozenset(_canonical(v) for v in named_now if isinstance(v, str))
    token = _SAVED.set(_SavedFile(str(source), names))
    try:
        yield
    finally:
        _SAVED.reset(token)


def _own(module: str | None) -> bool:
    return bool(module) and (module == "multinet" or module.startswith("multinet."))


def _refused(module: str | None) -> bool:
    return bool(module) and module.split(".")[0] in REFUSED


def _split(path: Any, key: str) -> tuple[str, str]:
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"{key}: expected 'package.module:Name', got {path!r}")
    module_name, sep, attr = path.strip().partition(":")
    if not sep:
        module_name, _, attr = path.strip().rpartition(".")
    if not module_name or not attr or module_name.startswith("."):  # a relative path has no package here
        raise ValueError(f"{key}: expected 'package.module:Name', got {path!r}")
    return module_name, attr


def import_object(path: str, key: str = "class_path", role: Callable[[Any], bool] | None = None,
                  role_name: str = "") -> Any:
    """``"package.module:Name"`` (or ``"package.module.Name"``) → the object, within the trust
    boundary (module docstring); one-line errors. ``role``: what an object named by a saved file
    (not named now, not trusted) must also pass, multinet's own included; ``role_name`` says it."""
    module_name, attr = _split(path, key)
    if _refused(module_name):
        raise CodeRefused(f"{key}: {path!r} is refused: {module_name.split('.')[0]!r} is a process, file, network "
                          "or raw-memory module, never a network, system or schedule")
    saved = _SAVED.get()
    untrusted = saved is not None and _canonical(path) not in saved.named_now
    if untrusted and not _own(module_name):
        raise CodeRefused(f"{key}: {saved.source} names code outside multinet ({path!r}); refused, since a saved "
                          f"file is data: name it yourself now, or {TRUST_HINT}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"{key}: cannot import {module_name!r} for {path!r} ({e}){migration_hint(e)}") from None
    except Exception as e:  # the module itself failed while importing: its own line, not a traceback
        raise ValueError(f"{key}: importing {module_name!r} failed: {failure_line(e)}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{key}: {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    home = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", None)
    if inspect.ismodule(obj) or _refused(home):
        raise CodeRefused(f"{key}: {path!r} is refused: it is {'a module' if inspect.ismodule(obj) else 'defined in'} "
                          f"{home!r}, never a network, system or schedule")
    if untrusted and not _own(home):  # e.g. "multinet.some_module:torch.load": reached through multinet
        raise CodeRefused(f"{key}: {saved.source} names code outside multinet ({path!r} is {home}'s); refused, "
                          f"since a saved file is data: name it yourself now, or {TRUST_HINT}")
    if untrusted and role is not None and not role(obj):
        raise CodeRefused(f"{key}: {saved.source} names {path!r}, which is not {role_name}; refused, since a saved "
                          f"file is data: name it yourself now, or {TRUST_HINT}")
    return obj


def import_class(path: str, base: type, key: str = "class_path", role: type | None = None) -> type:
    """The class at ``path``, which must subclass ``base`` (and, named by a saved file, ``role``)."""
    obj = import_object(path, key, None if role is None else (lambda c: isinstance(c, type) and issubclass(c, role)),
                        f"a {role.__module__}.{role.__qualname__}" if role is not None else "")
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise ValueError(f"{key}: {path!r} is not a subclass of {base.__module__}.{base.__qualname__}")
    return obj


def import_function(path: str, key: str = "fn", registered: Iterable[Any] | None = None,
                    role_name: str = "") -> Callable[..., Any]:
    """The Python function at ``path`` (builtins and other callables are refused); named by a saved
    file, one of ``registered`` (when given)."""
    allowed = None if registered is None else (lambda f: any(f is r for r in registered))
    obj = import_object(path, key, allowed, role_name)
    if not inspect.isfunction(obj):
        raise ValueError(f"{key}: {path!r} is not a Python function")
    return obj


def object_path(obj: Any) -> str:
    """The import path of a class or function (``module:qualname``)."""
    return f"{obj.__module__}:{obj.__qualname__}"
