"""The surfaces added after the first trust work, attacked (``benchmarks/attacks.py`` runs these
groups after its own): crafted studies and sweep folders, tracking addresses in checkpoints,
imports of the wrong role, bad run folders, crafted counters and timers, and oversized exports.

Each attack is one command run in this process under a 60 s watchdog. It is tallied as:
"refused" (exit code 2, one line, no traceback), "safe" (it finished without using what was
planted), "traceback", "hang" (the watchdog fired), or "silent" (it accepted a bad value and went
on: a resume finishing at step 10^30, a run's time reported as inf); a storage on a FIFO and the
bad run folders run in a process of their own, also stopped as "memory" past 4 GiB. Besides, each group counts
code that ran (a marker folder), files written outside the sweep folder, and TCP connections to
a loopback server that a crafted file names.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import signal
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

WATCHDOG = 60
AE = ["ae_2_2", "eval.max_blocks=2000", "eval.batch=2000", "channel.eval_db=[4.0]", "--steps", "20"]
FIG = "curves/autoencoder after 1_decoder/4"
GRID = "networks.decoder.lr=1e-3,3e-3"


class Hang(BaseException):
    """The watchdog fired: the command was still running after ``WATCHDOG`` seconds."""


def _alarm(*_: Any) -> None:
    raise Hang()


def run_cli(cli: Callable[..., tuple[int, str]], *args: Any) -> tuple[str, int, str]:
    """(outcome, exit code, stderr) of one command, with the watchdog armed."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(WATCHDOG)
    try:
        code, err = cli(*args)
    except Hang:
        return "hang", -1, ""
    except Exception as e:  # noqa: BLE001 - escaped the command line: a traceback for a user
        return "traceback", -1, f"{type(e).__name__}: {e}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    lines = [x for x in err.strip().splitlines() if not x.startswith(("warning:", "note:", "[I ", "[W "))]
    if "Traceback" in err:
        return "traceback", code, err
    if code == 2 and len(lines) == 1:
        return "refused", code, err
    return ("safe" if code == 0 else "traceback"), code, err


def run_spawned(*args: Any, max_rss: int = 4 << 30) -> str:
    """The outcome of ``python -m multinet ARGS`` in a process of its own, stopped after
    ``WATCHDOG`` seconds ("hang") or at ``max_rss`` bytes of memory ("memory")."""
    import subprocess
    import sys
    root = str(Path(__file__).resolve().parent.parent)  # this checkout's multinet, not an installed one
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.Popen([sys.executable, "-m", "multinet", *map(str, args)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, env=env)
    start, outcome = time.monotonic(), None
    while p.poll() is None and outcome is None:
        time.sleep(0.2)
        try:
            rss = int(next(x for x in Path(f"/proc/{p.pid}/status").read_text().splitlines()
                           if x.startswith("VmRSS")).split()[1]) * 1024
        except (OSError, StopIteration):
            rss = 0
        if rss > max_rss:
            outcome = "memory"
        elif time.monotonic() - start > WATCHDOG:
            outcome = "hang"
    if outcome is not None:
        p.kill()
        p.wait()
        return outcome
    err = p.stderr.read()
    if p.returncode < 0:  # killed by a signal of its own making: a segmentation fault
        return "crash"
    lines = [x for x in err.strip().splitlines() if not x.startswith(("warning:", "note:", "[I ", "[W "))]
    if "Traceback" in err:
        return "traceback"
    return "refused" if p.returncode == 2 and len(lines) == 1 else ("safe" if p.returncode == 0 else "traceback")


class Listener:
    """A loopback TCP server counting the connections made to it."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port, self.connections, self.done = self.server.getsockname()[1], 0, threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.done.set()
        self.server.close()


def _sweep_args(out: Path, *extra: Any) -> list[Any]:
    return ["sweep", "autoencoder", *AE, GRID, "--objective", FIG, "--direction", "minimize", "--out", out, *extra]


def _plant(db: Path, attr: str, value: Any, running: bool = False) -> None:
    """Write a user attribute of trial 0 straight into ``sweep.db``, as anyone with the file can."""
    with sqlite3.connect(db) as c:
        (trial_id,), = c.execute("SELECT trial_id FROM trials WHERE number = 0")
        c.execute("DELETE FROM trial_user_attributes WHERE trial_id = ? AND key = ?", (trial_id, attr))
        c.execute("INSERT INTO trial_user_attributes (trial_id, key, value_json) VALUES (?, ?, ?)",
                  (trial_id, attr, json.dumps(value)))
        if running:
            c.execute("UPDATE trials SET state = 'RUNNING' WHERE trial_id = ?", (trial_id,))


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def crafted_studies(cli: Callable[..., tuple[int, str]], work: Path, payload: Callable[[Path], Any]) -> dict:
    import optuna
    base = work / "studies" / "grid"
    assert cli(*_sweep_args(base))[0] == 0
    marker, victim = work / "studies" / "ran", work / "studies" / "victim"
    results: dict[str, dict[str, str]] = {}

    def attack(name: str, plant: Callable[[Path, Any], None], commands: tuple[str, ...] = ("sweep", "report"),
               silent: Callable[[Path], bool] = lambda out: False) -> None:
        outcomes = {}
        for command in commands:
            out = work / "studies" / f"{len(results)}-{command}" / "grid"
            shutil.copytree(base, out)
            shutil.rmtree(victim, ignore_errors=True)
            victim.mkdir()
            (victim / "metrics.jsonl").write_text('{"step": 1}\n' * 60)
            plant(out, optuna.load_study(study_name="grid", storage=f"sqlite:///{out}/sweep.db"))
            before = _listing(work / "studies")
            outcome, code, err = run_cli(cli, *_sweep_args(out, *(["--report"] if command == "report" else [])))
            outside = {p for p in _listing(work / "studies") - before if not p.startswith(str(out.parent.name))}
            changed = (victim / "metrics.jsonl").read_text() != '{"step": 1}\n' * 60 or len(list(victim.iterdir())) > 1
            if outcome == "safe" and silent(out):
                outcome = "silent"
            outcomes[command] = outcome + (" + wrote outside --out" if outside or changed else "")
        results[name] = outcomes

    def waiting(folder: Any) -> Callable[[Path, Any], None]:
        return lambda out, study: study.enqueue_trial({"networks.decoder.lr": "1e-3"}, user_attrs={
            "queued": True, "params": {"networks.decoder.lr": "1e-3", "seed": 3}, "folder": folder})

    def seconds_shown(out: Path) -> bool:  # the planted time came out as a run's time
        text = (out / "sweep.csv").read_text() if (out / "sweep.csv").exists() else ""
        return any(x in text for x in (",nan,", ",inf,", ",-1000000000.0,", ",1e+308,"))

    for folder in (str(victim), "../../victim", "trials/../../../victim", 7):
        attack(f"waiting trial, folder {folder!r}", waiting(folder), ("sweep",))
    for name, attr, value, running in (
            ("params a list", "params", [1, 2], False), ("params: a value outside the grid", "params",
                                                        {"networks.decoder.lr": "9e-9", "seed": 0}, False),
            ("seed -4", "params", {"networks.decoder.lr": "1e-3", "seed": -4}, False),
            ("pid a string (running trial)", "pid", "1234", True), ("surplus a string", "surplus", "yes", False),
            ("retries 10^9", "retries", 10 ** 9, False)):
        attack(name, lambda out, study, a=attr, v=value, r=running: _plant(out / "sweep.db", a, v, r),
               ("sweep",) if running else ("sweep", "report"))
    for value in ("nan", math.inf, -1e9, 1e308):
        attack(f"seconds {value!r}", lambda out, study, v=value: _plant(out / "sweep.db", "seconds/seed-0", v),
               ("report",), silent=seconds_shown)
    for definition in ("[1, 2]", "{not json", 5):
        attack(f"definition {definition!r}", lambda out, study, d=definition: study.set_user_attr("definition", d))

    def trials_link(out: Path, study: Any) -> None:
        shutil.move(out / "trials", out.parent / "elsewhere")
        (out / "trials").symlink_to(out.parent / "elsewhere")
    attack("trials/ a link out of --out", trials_link, ("report",))

    def fifo_summary(out: Path, study: Any) -> None:
        (out / "trials/0000/seed-0/summary.json").unlink()
        os.mkfifo(out / "trials/0000/seed-0/summary.json")
    attack("summary.json a FIFO", fifo_summary, ("report",))

    # A CMA-ES search whose study holds crafted sampler state in a completed trial (each in a
    # process of its own: a chosen pointer crashes it, a chosen size may take all memory).
    search = ["--search", "networks.decoder.lr=loguniform:1e-4:1e-2", "--objective", FIG, "--direction", "minimize"]
    dist = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    for name, state in (("a pickle payload", pickle.dumps(payload(marker))),
                        ("an object-dtype array holding a chosen pointer", _cma_with(_object_array())),
                        ("an array of 200 million numbers", _cma_with(_sized_array(200_000_000)))):
        out = work / "studies" / f"cma{len(results)}"
        out.mkdir(parents=True)
        study = optuna.create_study(study_name=out.name, storage=f"sqlite:///{out}/sweep.db")
        study.add_trial(optuna.trial.create_trial(params={"networks.decoder.lr": 1e-3}, value=0.5,
                                                  distributions={"networks.decoder.lr": dist},
                                                  system_attrs={"cma:optimizer:0": state.hex()}))
        outcome = run_spawned("sweep", "autoencoder", *AE, *search, "--trials", "2", "--sampler", "cmaes", "--out", out)
        results[f"CMA-ES state: {name}"] = {"sweep --sampler cmaes": outcome}
    # A search config fixed in the study outside the search's range: trained, or refused?
    out = work / "studies" / "fixed"
    assert cli("sweep", "autoencoder", *AE, *search, "--trials", "1", "--out", out)[0] == 0
    optuna.load_study(study_name="fixed", storage=f"sqlite:///{out}/sweep.db").enqueue_trial({"networks.decoder.lr": 50.0})
    outcome, _, _ = run_cli(cli, "sweep", "autoencoder", *AE, *search, "--trials", "2", "--out", out)
    results["a search config fixed at lr=50 (range 1e-4..1e-2)"] = {
        "sweep": "silent" if (out / "trials" / "0001").exists() else outcome}
    for kind, url in (("journal", "journal:{}"), ("sqlite", "sqlite:///{}")):
        fifo = work / "studies" / f"{kind}.fifo"
        os.mkfifo(fifo)  # in a process of its own: reading a FIFO has taken all memory (23 GB) here
        outcome = run_spawned(*_sweep_args(work / "studies" / f"{kind}-out", "--storage", url.format(fifo)))
        results[f"--storage {kind} on a FIFO"] = {"sweep": outcome}
    return _group("crafted studies and sweep folders", results, marker)


def _cma_with(array: bytes) -> bytes:
    """A pickle of a ``cmaes.CMA`` whose covariance is ``array`` (pickle opcodes)."""
    import struct
    key = b"_c_1d"
    return b"\x80\x04ccmaes._cma\nCMA\n)\x81}X" + struct.pack("<I", len(key)) + key + array + b"sb."


def _object_array(pointer: int = 0x4141414141414141) -> bytes:
    """``numpy.ndarray((1,), dtype('O'), buffer=<8 bytes>)``: an array of one object at ``pointer``."""
    import struct
    return (b"cnumpy\nndarray\n(K\x01\x85cnumpy\ndtype\nX\x01\x00\x00\x00O\x85RC\x08" + struct.pack("<Q", pointer)
            + b"t\x81")


def _sized_array(n: int) -> bytes:
    """``numpy.ndarray.__new__(ndarray, (n,))``: n float64 numbers from a few bytes of pickle."""
    import struct
    return b"cnumpy\nndarray\n(J" + struct.pack("<i", n) + b"\x85t\x81"


def _group(name: str, results: dict[str, dict[str, str]], marker: Path | None = None, **extra: Any) -> dict:
    outcomes = [o for r in results.values() for o in r.values()]
    kinds = ("refused", "safe", "traceback", "hang", "memory", "crash", "silent")
    return {"group": name, "attacks": len(results), "commands": len(outcomes),
            **{k: sum(o.split(" + ")[0] == k for o in outcomes) for k in kinds},
            "wrote_outside": sum("wrote outside" in o for o in outcomes),
            "code_ran": bool(marker and marker.exists()), **extra, "details": results}


def tracking_addresses(cli: Callable[..., tuple[int, str]], work: Path, trained: Path, craft: Callable) -> dict:
    listener = Listener()
    results = {}
    try:
        for name, change in (
                ("mlflow_uri names a server", {"trackers": ["mlflow"], "mlflow_uri": f"http://127.0.0.1:{listener.port}"}),
                ("wandb_mode online", {"trackers": ["wandb"], "wandb_mode": "online"}),
                ("mlflow_uri a file store elsewhere", {"trackers": ["mlflow"], "mlflow_uri": (work / "elsewhere").as_uri()})):
            path = craft(trained, work / "track" / name.replace(" ", "_"), lambda c, ch=change: c["config"]["train"].update(ch))
            t = time.monotonic()
            outcome, _, _ = run_cli(cli, "train", "gan", "--resume", path, "--steps", "4", "--no-progress")
            results[name] = {"resume": outcome, "seconds": round(time.monotonic() - t, 1)}
        # Named now, a tracker whose server does not answer: one line within a bounded time.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        t = time.monotonic()
        outcome, _, _ = run_cli(cli, "train", "gan", "gan_digits", "--steps", "2", "--no-progress", "--out",
                                work / "track" / "now", "train.trackers=['mlflow']",
                                f"train.mlflow_uri='http://127.0.0.1:{closed}'", "train.tensorboard=false")
        results["mlflow_uri named now, nothing listening"] = {"train": outcome, "seconds": round(time.monotonic() - t, 1)}
    finally:
        listener.close()
    written = (work / "elsewhere").exists()
    flat = {k: {c: o for c, o in v.items() if c != "seconds"} for k, v in results.items()}
    g = _group("tracking addresses", flat, connections=listener.connections, wrote_outside_by_file_store=written)
    g["details"] = results
    return g


def role_imports(cli: Callable[..., tuple[int, str]], work: Path, trained: Path, craft: Callable) -> dict:
    gen = ("networks", "generator")
    attacks = {
        "schedule fn = multinet.cli:main": lambda c: c["config"][gen[0]][gen[1]].update(
            schedule={"name": "lambda", "fn": "multinet.cli:main"}),
        "eval.features = multinet.gan.networks:MLPDiscriminator": lambda c: c["config"]["eval"].update(
            standard_metrics=True, features="multinet.gan.networks:MLPDiscriminator"),
        "meta.system = multinet.gan.networks:MLPGenerator": lambda c: c["meta"].update(
            system="multinet.gan.networks:MLPGenerator"),
        "class_path = multinet.cli:main": lambda c: c["config"][gen[0]][gen[1]].update(
            class_path="multinet.cli:main", init_args={}),
    }
    results = {}
    for name, change in attacks.items():
        path = craft(trained, work / "roles" / str(len(results)), change)
        fresh = work / "roles" / f"{len(results)}-out"
        results[name] = {c: run_cli(cli, *args)[0] for c, args in {
            "resume": ("train", "gan", "--resume", path, "--steps", "4", "--out", fresh / "r", "--no-progress"),
            "evaluate": ("evaluate", path), "sample": ("sample", path, "--n", "2", "--out", fresh / "s.npy"),
            "export": ("export", path, "--out", fresh / "x")}.items()}
    return _group("imports of the wrong role", results)


def bad_run_folders(cli: Callable[..., tuple[int, str]], work: Path) -> dict:
    def folder(name: str) -> Path:
        run = work / "folders" / name / "run"
        run.mkdir(parents=True)
        (run / "recipe.toml").write_text('task = "gan"\n')
        (run / "summary.json").write_text('{"fid": 1.0}')
        (run / "metrics.jsonl").write_text('{"step": 1, "eval/fid": 1.0}\n')
        return run

    def link(target: str) -> Callable[[Path], None]:
        return lambda p: (p.unlink(), p.symlink_to(target))
    plants = {"summary.json a list": ("summary.json", lambda p: p.write_text("[1, 2]")),
              "summary.json a string": ("summary.json", lambda p: p.write_text('"x"')),
              "summary.json nested 200k deep": ("summary.json", lambda p: p.write_text("[" * 200_000 + "]" * 200_000)),
              "summary.json a link to /dev/zero": ("summary.json", link("/dev/zero")),
              "summary.json a FIFO": ("summary.json", lambda p: (p.unlink(), os.mkfifo(p))),
              "metrics.jsonl a link to /dev/zero": ("metrics.jsonl", link("/dev/zero")),
              "metrics.jsonl a FIFO": ("metrics.jsonl", lambda p: (p.unlink(), os.mkfifo(p))),
              "recipe.toml a FIFO": ("recipe.toml", lambda p: (p.unlink(), os.mkfifo(p))),
              "summary.json with a 400-digit number": ("summary.json", lambda p: p.write_text('{"fid": 1' + "0" * 400 + "}"))}
    results = {}
    for name, (file, plant) in plants.items():
        run = folder(str(len(results)))
        plant(run / file)
        # In a process of its own: reading /dev/zero has taken all memory here.
        results[name] = {"compare --out": run_spawned("compare", run, "--out", run.parent / "c.png")}
    return _group("bad run folders", results)


def counters(cli: Callable[..., tuple[int, str]], work: Path, trained: Path, craft: Callable) -> dict:
    from multinet.gan import GanSystem
    from multinet.run.runner import Runner
    results = {}
    for state in (5, None, {"seconds": "nan"}, {"seconds": math.inf}, {"seconds": -1e9}, {"seconds": 1e308}):
        path = craft(trained, work / "counters" / str(len(results)), lambda c, s=state: c["stateful"].update(timer=s))

        def fit(p: Path = path) -> tuple[int, str]:
            result = Runner(GanSystem, out=p.parent.parent, resume=True, progress=False, echo=False, stop_at=3).fit()
            bad = not (math.isfinite(result.seconds) and 0 <= result.seconds < 1e6)
            return (result.code if not bad else 0), ("" if not bad else "silent")
        outcome, _, err = run_cli(lambda *_: _as_cli(fit), None)
        results[f"timer state {state!r}"] = {"resume": "silent" if err == "silent" else outcome}
    for name, change in (("iteration 10^30", {"iteration": 10 ** 30}), ("world_size 0", {"world_size": 0}),
                         ("a phase planned to stop before it starts", {"plan": {"discriminator": [5, 3]}})):
        path = craft(trained, work / "counters" / str(len(results)), lambda c, ch=change: c["engine"].update(ch))
        outcome, code, err = run_cli(cli, "train", "gan", "--resume", path, "--steps", "4", "--no-progress")
        results[name] = {"resume": "silent" if outcome == "safe" else outcome,
                         "evaluate": (lambda o: "silent" if o == "safe" else o)(run_cli(cli, "evaluate", path)[0])}
    return _group("counters and timers", results)


def _as_cli(fit: Callable[[], tuple[int, str]]) -> tuple[int, str]:
    """A Python-API call tallied as a command: a ValueError is its one-line refusal."""
    try:
        code, said = fit()
    except ValueError as e:
        return 2, f"error: {e}\n"
    return code, said


def sizes(cli: Callable[..., tuple[int, str]], work: Path, trained: Path) -> dict:
    import resource
    assert cli("export", trained, "--out", work / "sizes" / "x")[0] == 0
    spec = json.loads((work / "sizes/x/generator.json").read_text())
    spec["init_args"]["hidden"] = 10 ** 12
    (work / "sizes/x/generator.json").write_text(json.dumps(spec))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome, _, _ = run_cli(cli, "sample", work / "sizes/x/generator.json", "--n", "2", "--out", work / "sizes/s.npy")
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    results = {"export init_args.hidden = 10^12": {"sample": outcome}}
    run = work / "sizes" / "feat"
    t = time.monotonic()
    outcome, _, _ = run_cli(cli, "train", "gan", "gan_digits", "--steps", "2", "--no-progress", "--out", run,
                            "eval.features='torch_fidelity:GenerativeModelBase'", "train.tensorboard=false")
    results["eval.features = torch-fidelity's GenerativeModelBase in a recipe"] = {
        "train": outcome if outcome != "refused" or not (run / "checkpoints").exists() else "refused after training"}
    return _group("sizes and feature networks", results, peak_rss_growth_mib=round(grew, 1),
                  feature_check_seconds=round(time.monotonic() - t, 1))
