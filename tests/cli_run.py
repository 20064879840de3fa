"""The two ways tests run the command line: in this process (``run``) or in a fresh one (``spawn``)."""
import contextlib
import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parent.parent
# One thread per run: these runs are compared bit for bit, and two fresh two-thread CPU runs were
# seen to differ in the last digits about once in 20 repeats (README, "Known limits"); a single
# thread fixes the summation order completely.
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
       "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def from_a_terminal():
    """Run in a child before it starts: Ctrl-C reaches it as from a terminal, even when this suite
    runs with SIGINT ignored (a background job or ``nohup``: ignored signals are inherited, and a
    program rightly leaves them ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(module, args, cwd=None):
    """The command line in a fresh interpreter: for what only a separate process shows (signals,
    run-folder locks, start-up)."""
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env=ENV, preexec_fn=from_a_terminal)


def run(module, args, cwd=None):
    """The command line in this process, on one thread like ``spawn``'s runs: the same code path
    from argument parsing to exit status without paying an interpreter, torch and torch._dynamo
    start-up per call (about 5 s each on 2 cores). A CompletedProcess-like result."""
    from multinet.cli import main, system_main
    out, err, here, threads = io.StringIO(), io.StringIO(), os.getcwd(), torch.get_num_threads()
    try:
        if cwd is not None:
            os.chdir(cwd)
        torch.set_num_threads(1)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args) if module == "multinet" else system_main(module.split(".")[1], args)
            except SystemExit as e:  # argparse's --help and usage errors
                code = e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(here)
        torch.set_num_threads(threads)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


class Deadline(BaseException):
    """A command run by ``run_within`` outlived its deadline."""


def run_within(seconds, module, args, cwd=None):
    """``run`` in this process under a deadline: a command that blocks (a FIFO opened for reading
    waits for a writer forever) fails the test after ``seconds`` instead of hanging the suite."""
    import signal as _signal

    def expired(*_):  # a BaseException: the command line's own handlers (OSError included) cannot swallow it
        raise Deadline(f"{module} {' '.join(map(str, args))}: still running after {seconds} s")
    previous = _signal.signal(_signal.SIGALRM, expired)
    _signal.alarm(seconds)
    try:
        return run(module, [str(a) for a in args], cwd)
    finally:
        _signal.alarm(0)
        _signal.signal(_signal.SIGALRM, previous)
