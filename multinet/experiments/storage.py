"""A sweep's Optuna storage and sampler, opened as data.

A study is a saved file like a checkpoint: ``sweep.db`` may come with a folder someone handed
over, and a shared ``--storage`` is written by every worker that joins it. Optuna's CMA-ES
sampler keeps its optimizer in the study as a pickle (hex strings in each trial's system
attributes) and unpickles the newest one when it proposes a config: a planted one would run
code. So, unless the user says ``--trust-storage`` now, that state is read as
``torch.load(weights_only=True)`` reads a checkpoint: an unpickler that can build only what the
state is made of (the ``cmaes`` optimizers, NumPy arrays and scalars) and refuses anything else in
one line, before anything it names is imported or called. Optuna's other samplers store plain
JSON; the journal file backend used here keeps no pickled snapshot (only its Redis backend does).
"""
from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import pickle
import warnings
from pathlib import Path
from typing import Any, Iterator

from ..config import ConfigError, error_line
from ..state.runfiles import regular_file

__all__ = ["open_storage", "storage_errors", "asking_alone", "heartbeat_of", "make_sampler", "sampler_state", "STATE_GLOBALS", "TRUST_STORAGE_HINT"]

TRUST_STORAGE_HINT = "pass --trust-storage only if you trust everyone who can write to this storage"

# What a CMA-ES optimizer's pickle is built from (cmaes >= 0.10, NumPy 1 and 2), and nothing else.
# NumPy's own builders are handed out only through the checked stand-ins below: an object dtype
# (an array of pointers the pickle chose) or an array built at a size of the pickle's choosing
# would reach past what a restricted unpickler can vouch for.
STATE_GLOBALS = frozenset({
    ("cmaes._cma", "CMA"), ("cmaes._sepcma", "SepCMA"), ("cmaes._cmawm", "CMAwM"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
})
NUMERIC = frozenset({"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"})
_MAX_STATE = 64 << 20  # hex characters: an optimizer over a few hundred dimensions is well under 1 MiB
_NDARRAY = object()  # what the pickle gets for numpy.ndarray: a token for _reconstruct, never called


class _Refused(pickle.UnpicklingError):
    """Something the restricted unpickler will not build (named in the message)."""


def _dtype(code: Any, align: Any = False, copy: Any = True) -> Any:
    import numpy as np
    if not isinstance(code, str) or code not in NUMERIC:
        raise _Refused(f"numpy.dtype({code!r})")
    return np.dtype(code, bool(align), bool(copy))


def _reconstruct(cls: Any, shape: Any, dtype: Any) -> Any:
    """NumPy's array builder as a pickle calls it: an empty array that ``__setstate__`` fills from
    the pickle's own bytes (so its size is the pickle's), of a numeric dtype."""
    import numpy as np
    if cls is not _NDARRAY or tuple(shape) != (0,) or dtype != b"b":
        raise _Refused("numpy _reconstruct with other arguments than a pickled array's")
    return np.ndarray.__new__(np.ndarray, (0,), "b")


def _scalar(dtype: Any, data: Any = b"") -> Any:
    import numpy as np
    if not isinstance(dtype, np.dtype) or dtype.str[1:] not in NUMERIC or not isinstance(data, bytes) \
            or len(data) != dtype.itemsize:
        raise _Refused("a numpy scalar of another dtype or size")
    return np.frombuffer(data, dtype)[0]


def open_storage(url: str, folder: Path | None = None, heartbeat: int = 0) -> Any:
    """The Optuna storage at ``url``: an SQLAlchemy URL, or ``journal:FILE``. A file-backed one
    (journal, SQLite) must be a regular file or not exist yet, a FIFO or a device there would
    block or never end; inside ``folder`` when given (the sweep folder's own ``sweep.db``).
    ``heartbeat`` (seconds, 0: off): a database storage takes a running trial whose heartbeat is
    older than 4 x ``heartbeat`` as stale (Optuna's heartbeat; a journal file has none)."""
    import optuna
    path = url[len("journal:"):] if url.startswith("journal:") else None
    if url.startswith("sqlite"):
        from sqlalchemy.engine import make_url
        try:
            path = make_url(url).database
        except Exception as e:  # noqa: BLE001 - SQLAlchemy's ArgumentError and kin
            raise ConfigError(f"--storage {url}: not a database URL ({error_line(e, 120)})") from None
    if path and path != ":memory:" and not path.startswith("file:"):
        try:
            regular_file(path, folder)
        except ValueError as e:
            raise ConfigError(f"--storage {url}: {e}") from None
    given, url = url, _with_driver(url)
    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        beat = {"heartbeat_interval": heartbeat, "grace_period": 4 * heartbeat} if heartbeat > 0 else {}
        with warnings.catch_warnings():  # Optuna calls its heartbeat experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}}
                                              if url.startswith("sqlite") else {}, **beat)
    except Exception as e:  # a driver missing, a host unreachable, a path not writable
        raise ConfigError(f"--storage {given}: cannot open it ({error_line(e, 160)})") from None


def _with_driver(url: str) -> str:
    """``postgresql://...`` names no driver, and SQLAlchemy's default (psycopg2) is not the one the
    ``postgres`` extra installs: use psycopg 3 when psycopg2 is absent, or say what to install."""
    if url.startswith("postgres://"):  # Heroku's and libpq's spelling; SQLAlchemy knows only postgresql
        url = "postgresql://" + url[len("postgres://"):]
    if not url.startswith("postgresql://"):
        return url
    if importlib.util.find_spec("psycopg2") is not None:
        return url
    if importlib.util.find_spec("psycopg") is not None:
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    raise ConfigError(f'--storage {url}: no PostgreSQL driver is installed: pip install "multinet[postgres]"')


class _Restricted(pickle.Unpickler):
    """Builds only ``STATE_GLOBALS`` (NumPy's through the checked stand-ins); any other global is
    refused before it is imported."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in STATE_GLOBALS:
            raise _Refused(f"{module}.{name}")
        if module.startswith("numpy"):
            return {"ndarray": _NDARRAY, "dtype": _dtype, "_reconstruct": _reconstruct, "scalar": _scalar}[name]
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("a persistent id")


def sampler_state(hex_text: str, source: str) -> Any:
    """A CMA-ES optimizer from its hex pickle, built by the restricted unpickler; one line naming
    ``source`` when the text holds anything else."""
    import cmaes
    if not isinstance(hex_text, str) or len(hex_text) > _MAX_STATE:
        raise ConfigError(f"{source}: not a CMA-ES state (text of at most {_MAX_STATE:,} characters)")
    try:
        state = _Restricted(io.BytesIO(bytes.fromhex(hex_text))).load()
    except _Refused as e:
        raise ConfigError(f"{source}: holds {error_line(e, 120)}, not only the CMA-ES optimizer's numbers; "
                          f"refused, since a study is data: continue with another --sampler or a new --study, or "
                          f"{TRUST_STORAGE_HINT}") from None
    except Exception as e:  # noqa: BLE001 - not hex, truncated, a malformed build of an allowed class
        raise ConfigError(f"{source}: not a readable CMA-ES state ({type(e).__name__}: {error_line(e, 120)})") from None
    if not isinstance(state, (cmaes.CMA, cmaes.SepCMA, cmaes.CMAwM)):
        raise ConfigError(f"{source}: not a CMA-ES state (a {type(state).__name__}); refused")
    _check_state(state, source)
    return state


def _check_state(state: Any, source: str) -> None:
    """Its sizes and counters are an optimizer's: what Optuna reads next must be sane."""
    import numpy as np
    try:
        dim, pop, gen = state.dim, state.population_size, state.generation
        mean = getattr(state, "_mean", getattr(getattr(state, "_cma", None), "_mean", None))
    except Exception as e:  # noqa: BLE001 - a built object without what an optimizer holds
        raise ConfigError(f"{source}: not a CMA-ES state ({type(e).__name__}); refused") from None
    counts = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (dim, pop, gen))
    if not counts or not (1 <= dim <= 10_000 and 1 <= pop <= 100_000 and 0 <= gen <= 10 ** 9) \
            or not isinstance(mean, np.ndarray) or mean.shape != (dim,) or not np.isfinite(mean).all():
        raise ConfigError(f"{source}: not a CMA-ES state (dimension, population, generation or mean out of range); "
                          "refused")


def make_sampler(name: str, trust_storage: bool) -> Any:
    """A search's sampler. Unseeded: workers sharing a study (here or elsewhere) must not all draw the
    same first configs. TPE's constant_liar keeps running trials from being proposed again; the
    Sobol sequence is unscrambled, so every worker walks the same one by trial number. CMA-ES reads
    its state back through ``sampler_state`` unless ``trust_storage``."""
    import optuna
    if name == "cmaes":
        if importlib.util.find_spec("cmaes") is None:
            raise ConfigError('--sampler cmaes needs the cmaes package: pip install "multinet[sweep]"')
        return optuna.samplers.CmaEsSampler() if trust_storage else _checked_cmaes(optuna)
    return {"tpe": lambda: optuna.samplers.TPESampler(constant_liar=True),
            "random": lambda: optuna.samplers.RandomSampler(),
            "gp": lambda: optuna.samplers.GPSampler(),
            "qmc": lambda: optuna.samplers.QMCSampler(scramble=False)}[name]()


def _checked_cmaes(optuna: Any) -> Any:
    """Optuna's CMA-ES sampler whose one read of its saved state goes through ``sampler_state``."""
    base = optuna.samplers.CmaEsSampler
    hook = getattr(base, "_restore_optimizer", None)
    if hook is None or list(inspect.signature(hook).parameters) != ["self", "completed_trials"] \
            or not isinstance(getattr(base, "_attr_key_optimizer", None), property):
        raise ConfigError(f"--sampler cmaes: this Optuna ({optuna.__version__}) keeps its CMA-ES state in a way "
                          f"multinet does not check; {TRUST_STORAGE_HINT}")

    class CheckedCmaEsSampler(base):  # type: ignore[misc, valid-type]
        """CMA-ES whose saved optimizer is rebuilt by the restricted unpickler."""

        def _restore_optimizer(self, completed_trials: list[Any]) -> Any:
            prefix = self._attr_key_optimizer
            for trial in reversed(completed_trials):  # the newest state, as Optuna's own reads it
                parts = {k: v for k, v in trial.system_attrs.items() if k.startswith(prefix + ":")}
                if parts:
                    try:
                        text = "".join(parts[f"{prefix}:{i}"] for i in range(len(parts)))
                    except (KeyError, TypeError):
                        raise ConfigError(f"study trial {trial.number}: its CMA-ES state ({prefix}:*) is broken "
                                          "(missing or non-text pieces)") from None
                    return sampler_state(text, f"study trial {trial.number}'s CMA-ES state ({prefix}:*)")
            return None

    return CheckedCmaEsSampler()


def heartbeat_of(storage: Any) -> int:
    """Seconds between a running trial's heartbeats on ``storage`` (0: it keeps none)."""
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()  # a journal file has no heartbeat
    return int(interval or 0)


def default_storage(out: Path) -> str:
    """The study's URL when no ``--storage`` is given: ``OUT/sweep.db``."""
    return f"sqlite:///{(out / 'sweep.db').absolute()}"


def storage_errors() -> tuple[type[BaseException], ...]:
    """What a storage that stops answering raises mid-sweep (a database server down or unreachable)."""
    import optuna
    errors: list[type[BaseException]] = [optuna.exceptions.StorageInternalError]
    try:
        import sqlalchemy.exc
        errors.append(sqlalchemy.exc.SQLAlchemyError)
    except ImportError:  # a journal storage only
        pass
    return tuple(errors)


@contextlib.contextmanager
def asking_alone(storage: Any) -> Iterator[None]:
    """Workers on one SQLite file take a trial in turn. SQLite has no ``SELECT ... FOR UPDATE``, which
    Optuna relies on to hand a queued trial to one worker only, and two workers asking at the same
    moment were seen to take the same one (both then ran it into one run folder). The turn is a lock
    on a file beside the database (``DB.ask-lock``); other storages need none."""
    url = str(getattr(getattr(storage, "_backend", storage), "url", ""))
    if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
        yield
        return
    import fcntl
    with open(url[len("sqlite:///"):] + ".ask-lock", "a") as turn:
        fcntl.flock(turn, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(turn, fcntl.LOCK_UN)
