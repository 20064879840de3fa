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

import importlib.util
import inspect
import io
import pickle
from pathlib import Path
from typing import Any

from ..config import ConfigError, error_line
from ..state.runfiles import regular_file

__all__ = ["open_storage", "make_sampler", "sampler_state", "STATE_GLOBALS", "TRUST_STORAGE_HINT"]

TRUST_STORAGE_HINT = "pass --trust-storage only if you trust everyone who can write to this storage"

# What a CMA-ES optimizer's pickle is built from (cmaes >= 0.10, NumPy 1 and 2); nothing else.
STATE_GLOBALS = frozenset({
    ("cmaes._cma", "CMA"), ("cmaes._sepcma", "SepCMA"), ("cmaes._cmawm", "CMAwM"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
})
_MAX_STATE = 64 << 20  # hex characters: an optimizer over a few hundred dimensions is well under 1 MiB


def open_storage(url: str) -> Any:
    """The Optuna storage at ``url``: an SQLAlchemy URL, or ``journal:FILE``. A file-backed one
    (journal, SQLite) must be a regular file or not exist yet: a FIFO or a device there would
    block or never end."""
    import optuna
    path = None
    if url.startswith("journal:"):
        path = url[len("journal:"):]
    elif url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):].partition("?")[0]
    if path and path != ":memory:":
        try:
            regular_file(path)
        except ValueError as e:
            raise ConfigError(f"--storage {url}: {e}") from None
    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}}
                                          if url.startswith("sqlite") else {})
    except Exception as e:  # a driver missing, a host unreachable, a path not writable
        raise ConfigError(f"--storage {url}: cannot open it ({error_line(e, 160)})") from None


class _Restricted(pickle.Unpickler):
    """Builds only ``STATE_GLOBALS``; any other global is refused before it is imported."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in STATE_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name}")
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("a persistent id")


def sampler_state(hex_text: str, source: str) -> Any:
    """A CMA-ES optimizer from its hex pickle, built by the restricted unpickler; one line naming
    ``source`` when the text holds anything else."""
    import cmaes
    if not isinstance(hex_text, str) or len(hex_text) > _MAX_STATE:
        raise ConfigError(f"{source}: not a CMA-ES state (text of at most {_MAX_STATE:,} characters)")
    try:
        state = _Restricted(io.BytesIO(bytes.fromhex(hex_text))).load()
    except pickle.UnpicklingError as e:
        raise ConfigError(f"{source}: holds code ({error_line(e, 120)}), not only the CMA-ES optimizer's arrays; "
                          f"refused, since a study is data: continue with another --sampler or a new --study, or "
                          f"{TRUST_STORAGE_HINT}") from None
    except Exception as e:  # noqa: BLE001 - not hex, truncated, a malformed build of an allowed class
        raise ConfigError(f"{source}: not a readable CMA-ES state ({type(e).__name__}: {error_line(e, 120)})") from None
    if not isinstance(state, (cmaes.CMA, cmaes.SepCMA, cmaes.CMAwM)):
        raise ConfigError(f"{source}: not a CMA-ES state (a {type(state).__name__}); refused")
    return state


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


def default_storage(out: Path) -> str:
    """The study's URL when no ``--storage`` is given: ``OUT/sweep.db``."""
    return f"sqlite:///{(out / 'sweep.db').resolve()}"
