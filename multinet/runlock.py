"""One run per run folder: a lock file naming its owner, released on exit, stale ones detected.

Two runs writing one folder interleave their ``metrics.jsonl`` rows and overwrite each other's
checkpoints and summary; the second run must stop instead. The lock is ``<out>/.lock`` created
with ``O_EXCL`` (atomic on local and NFSv3+ filesystems) and holding ``pid host start-time``. A
lock whose process is gone (same host, no such pid) is stale: a run killed with ``kill -9``
left it, and the next run takes it over. Under torchrun rank 0 alone takes it.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

__all__ = ["RunLock", "LockedError"]


class LockedError(OSError):
    """The run folder is in use by another live run."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / ".lock"
        self.held = False

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OSError(f"--out {self.path.parent}: cannot create the run folder ({e.strerror or e})") from None
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._stale():
                    raise LockedError(self._message()) from None
                self.path.unlink(missing_ok=True)  # its owner is gone: take it over
                continue
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
            except OSError as e:  # a full disk: no empty lock left behind for the next run to puzzle over
                self.path.unlink(missing_ok=True)
                raise OSError(f"--out {self.path.parent}: cannot write {self.path.name} "
                              f"({e.strerror or e})") from None
            self.held = True
            return
        raise LockedError(self._message())

    def _owner(self) -> tuple[int, str, str] | None:
        try:
            pid, host, since = self.path.read_text().split()[:3]
            return int(pid), host, since
        except (OSError, ValueError):
            return None

    def _stale(self) -> bool:
        owner = self._owner()
        if owner is None:  # unreadable or half-written: its writer died while writing it
            return time.time() - self.path.stat().st_mtime > 10 if self.path.exists() else True
        pid, host, _ = owner
        return host == socket.gethostname() and not _alive(pid)

    def _message(self) -> str:
        owner = self._owner()
        who = f"pid {owner[0]} on {owner[1]} since {owner[2]}" if owner else "another run"
        return (f"--out {self.path.parent}: in use by another run ({who}); wait for it to end, or remove "
                f"{self.path} if that run is gone")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
