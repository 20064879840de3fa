"""A 12-run grid on a real PostgreSQL server (started as the tests start it, ``tests/pg_server.py``):
wall time with one worker against three worker processes on the same study, and the storage's
cost per trial against the default SQLite file. Prints JSON; record it in BENCHMARKS.md.

    python benchmarks/postgres_sweep.py [--steps 3000]

Each run is the (2,2) autoencoder for ``--steps`` steps (3,000 by default) scored at one Eb/N0 on
2,000 blocks; the storage's per-trial cost is measured on 12 runs of 20 steps, where it shows. Three workers share this machine's cores, as three
processes of one machine would; on three machines each would have its own.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pg_server import postgres  # noqa: E402

GRID = "networks.decoder.lr=" + ",".join(f"{i}e-3" for i in range(1, 13))
COMMAND = [sys.executable, "-m", "multinet", "sweep", "autoencoder", "ae_2_2", "eval.max_blocks=2000",
           "eval.batch=2000", "channel.eval_db=[4.0]", GRID,
           "--objective", "curves/autoencoder after 1_decoder/4", "--direction", "minimize"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def sweep(out: Path, workers: int, storage: str | None, study: str, steps: int) -> float:
    extra = ["--steps", str(steps), "--out", str(out), *(["--storage", storage, "--study", study] if storage else [])]
    start = time.perf_counter()
    procs = [subprocess.Popen([*COMMAND, *extra], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(workers)]
    for p in procs:
        _, err = p.communicate()
        assert p.returncode == 0, err[-1000:]
    return time.perf_counter() - start


def main() -> None:
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 3000
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory(prefix="multinet-pg-", dir="/tmp") as pg:
        with postgres(Path(pg)) as url:
            results["short_sqlite_1_worker_s"] = sweep(Path(tmp) / "s-sqlite", 1, None, "", 20)
            results["short_postgres_1_worker_s"] = sweep(Path(tmp) / "s-pg", 1, url, "short", 20)
            results["postgres_1_worker_s"] = sweep(Path(tmp) / "pg1", 1, url, "one", steps)
            results["postgres_3_workers_s"] = sweep(Path(tmp) / "pg3", 3, url, "three", steps)
    results = {k: round(v, 1) for k, v in results.items()}
    results["postgres_over_sqlite_per_trial_s"] = round(
        (results["short_postgres_1_worker_s"] - results["short_sqlite_1_worker_s"]) / 12, 2)
    results["speedup_3_workers"] = round(results["postgres_1_worker_s"] / results["postgres_3_workers_s"], 2)
    print(json.dumps({"runs": 12, "steps": steps, "cores": os.cpu_count(), **results}, indent=1))


if __name__ == "__main__":
    main()
