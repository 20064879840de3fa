"""Two "nodes" on this machine, each a torchrun agent of two gloo processes, meeting through a c10d
rendezvous (not ``--standalone``), as two machines would, and torchrun's elastic agent bringing the
job back after one node is lost (its agent and workers killed), from the last checkpoint."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from multinet import load_checkpoint

from ..cli_run import ENV, ROOT
from .test_distributed import AE, launch, max_diff, share_differing, weights

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="process groups and /proc: Linux")


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node(host, port, run_id, args, max_restarts=0):
    """One node's torchrun agent; ``host``: whether this node serves the rendezvous store."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=2",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id={run_id}",
               f"--rdzv-conf=is_host={str(host).lower()},join_timeout=120", f"--max-restarts={max_restarts}",
               "--monitor-interval=0.5", "-m", "multinet.autoencoder", *args]
    # A surviving rank-0 agent keeps its first round's store address and never publishes it for a later
    # round, so a replacement node waits for it forever: without the shared store, every round does.
    env = {**ENV, "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def lose(agent):
    """What losing a machine does to its processes: the agent and every worker it started (each in a
    session of its own) killed with SIGKILL at once."""
    parents = {}
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as f:
                    parents.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(stat))
            except OSError:
                pass
    tree, todo = [], [agent.pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += parents.get(pid, [])
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    agent.wait()
    return len(tree)


def finish(*nodes, timeout=300):
    try:
        outs = [n.communicate(timeout=timeout) for n in nodes]
    finally:
        for n in nodes:
            if n.poll() is None:
                lose(n)
    for n, (out, err) in zip(nodes, outs):
        assert n.returncode == 0, out[-2000:] + err[-4000:]
    return outs


def test_a_lost_node_is_restarted_by_the_elastic_agent_and_the_run_resumes_from_its_checkpoint(tmp_path):
    """Two nodes of two processes meet through a c10d rendezvous (not ``--standalone``). Node B
    (agent and workers) is killed with SIGKILL once the run has a checkpoint; node A's workers fail
    on their next collective and its agent (``--max-restarts=2``) starts a new round; node B is
    started again (as a scheduler would), both rejoin, and the same command continues from the last
    checkpoint (``--resume auto``) to the weights of an uninterrupted one-process run with the
    global batch, which four ranks train like."""
    steps = ["--steps", "100", "train.checkpoint_every=25", "train.log_every=25"]
    args = [*AE, *steps, "link.batch_size=32", "--out", str(tmp_path / "cut"), "--resume", "auto"]
    port = _port()
    a = node(True, port, "lost-node", args, max_restarts=2)
    b = node(False, port, "lost-node", args, max_restarts=2)
    checkpoints = tmp_path / "cut" / "checkpoints"
    deadline = time.monotonic() + 180
    while not list(checkpoints.glob("step_*.pt")) and time.monotonic() < deadline and a.poll() is None:
        time.sleep(0.1)
    assert list(checkpoints.glob("step_*.pt")), "no checkpoint before the deadline"
    assert lose(b) >= 3  # node B is lost: its agent and both its workers
    lost_at = time.monotonic()
    b = node(False, port, "lost-node", args, max_restarts=2)  # its replacement joins the next round
    (out_a, err_a), _ = finish(a, b)
    recovered = time.monotonic() - lost_at
    assert "Restarting worker group" in err_a or "restart" in err_a.lower(), err_a[-3000:]
    ck = load_checkpoint(checkpoints / "last.pt")
    assert ck["engine"]["iteration"] == 100 and ck["engine"]["world_size"] == 4
    rows = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    steps_logged = [r["step"] for r in rows if any(k.startswith("loss/") for k in r)]
    assert steps_logged == list(range(25, 101, 25))  # resumed from a checkpoint: no step logged twice
    print(f"lost node to finished run: {recovered:.1f} s")
    # The uninterrupted run: one process with the global batch (128), which four ranks of 32 train like.
    launch("multinet.autoencoder", [*AE, *steps, "link.batch_size=128", "--out", str(tmp_path / "whole")], nproc=1)
    launch("multinet.autoencoder", [*AE, *steps, "link.batch_size=32", "--out", str(tmp_path / "quarter")], nproc=1)
    cut, ref = weights(tmp_path / "cut"), weights(tmp_path / "whole")
    assert share_differing(cut, weights(tmp_path / "quarter")) > 0.5  # control: the other ranks' rows counted
    print(f"largest difference to the uninterrupted run: {max_diff(cut, ref):.2g}")
    # The same weights to float rounding (measured: at most 2.1e-7 apart, none by more than 1e-6).
    assert max_diff(cut, ref) < 1e-5 and share_differing(cut, ref) == 0


def test_resume_auto_starts_a_run_then_continues_it_with_the_same_command(tmp_path):
    """What a restarted job runs (torchrun's agent, a Slurm requeue): one command for both."""
    from ..cli_run import run
    out = tmp_path / "run"
    command = [*AE, "--steps", "6", "train.checkpoint_every=2", "--out", str(out), "--resume", "auto"]
    first = run("multinet.autoencoder", [*command, "--stop-at", "4"])
    assert first.returncode == 0, first.stderr
    assert load_checkpoint(out / "checkpoints" / "last.pt")["engine"]["iteration"] == 4
    second = run("multinet.autoencoder", command)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout.splitlines()[-1])["resumed"] is True
    assert load_checkpoint(out / "checkpoints" / "last.pt")["engine"]["iteration"] == 6
    no_out = run("multinet.autoencoder", [*AE, "--steps", "6", "--resume", "auto"])
    assert no_out.returncode == 2 and no_out.stderr.strip().endswith(
        "--resume auto needs --out DIR: the run folder to continue, or to start")


def test_a_lock_of_an_earlier_round_of_the_same_elastic_job_is_taken_over_and_no_other(tmp_path, monkeypatch):
    from multinet.run.lock import LockedError, RunLock
    lock = tmp_path / ".lock"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-7")
    lock.write_text("4242 a-lost-machine 2026-12-07T00:00:00 job=elastic:job-7\n")  # the lost node's rank 0
    RunLock(tmp_path).acquire()
    assert lock.read_text().split()[3] == "job=elastic:job-7" and lock.read_text().split()[0] == str(os.getpid())
    lock.write_text("4242 another-machine 2026-12-07T00:00:00 job=elastic:job-8\n")  # another job's live run
    with pytest.raises(LockedError):
        RunLock(tmp_path).acquire()
    lock.write_text(f"{os.getpid()} {socket.gethostname()} 2026-12-07T00:00:00 job=elastic:job-7\n")  # alive, here
    with pytest.raises(LockedError):
        RunLock(tmp_path).acquire()
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")  # torchrun's default id names no job
    lock.write_text("4242 another-machine 2026-12-07T00:00:00\n")
    assert "job=" not in RunLock(tmp_path)._owner()[3]
    with pytest.raises(LockedError):
        RunLock(tmp_path).acquire()
    monkeypatch.setenv("SLURM_JOB_ID", "9001")  # a requeued Slurm job keeps its id; its old node may be gone
    lock.write_text("4242 a-failed-node 2026-12-07T00:00:00 job=slurm:9001\n")
    RunLock(tmp_path).acquire()
    assert lock.read_text().split()[3] == "job=slurm:9001"
